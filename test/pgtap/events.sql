--
-- test/pgtap/events.sql -- what the events and retention functions do:
-- error SQLSTATEs, deduplication, and the rollup invariant of
-- dd_purge_usage_log (logged + rolled-up credits are the same before and
-- after a purge).  Signatures, definer rights and privileges:
-- test/pgtap/schema_events.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(13);

-- errors ----------------------------------------------------------------
SELECT throws_ok($$SELECT dd_track_events('{}')$$, '22023',
    'events must be a JSON array', 'a non-array batch is refused');
SELECT throws_ok($$SELECT dd_track_events('[{"user_id": "u", "event": "e"}, {"user_id": "u"}]')$$,
    '22004', 'events[1].event must be a string', 'a missing event names its position');
SELECT throws_ok($$SELECT dd_track_events('[{"user_id": "u", "event": "e", "occurred_at": "soon"}]')$$,
    '22007', 'events[0].occurred_at is not a valid timestamp', 'a bad occurred_at names its position');
SELECT throws_ok($$SELECT dd_track_event('u', 'e', '[]')$$, '22023',
    'properties must be a JSON object', 'properties must be an object');
SELECT throws_ok($$SELECT dd_purge_usage_events('-1 day')$$, '22023',
    'older_than must be a positive interval', 'a negative age is refused');
SELECT throws_ok($$SELECT dd_purge_usage_log('1 day', 0)$$, '22023',
    'batch_size must be greater than zero', 'a zero batch size is refused');

-- dedup -----------------------------------------------------------------
SELECT is(dd_track_events('[{"user_id": "u", "event": "e", "event_id": "x"},
                            {"user_id": "u", "event": "e", "event_id": "x"},
                            {"user_id": "v", "event": "e", "event_id": "x"}]'), 2::bigint,
    'a duplicate inside a batch is dropped, another user''s same id is kept');
SELECT is(dd_track_event('u', 'e', '{}', 'x'), NULL::bigint,
    'a duplicate single event returns NULL');
SELECT results_eq(
    $$SELECT user_id, event_id FROM usage_events ORDER BY 1, 2$$,
    $$VALUES ('u'::text, 'x'::text), ('v', 'x')$$,
    'each (user_id, event_id) stored once');

-- retention keeps the ledger ---------------------------------------------
INSERT INTO api_usage_log (user_id, request_id, credits, created_at)
SELECT 'u' || (i % 4), 'r' || i, i % 3, now() - interval '10 days' FROM generate_series(1, 100) i;
INSERT INTO api_usage_log (user_id, request_id, credits)
SELECT 'u' || (i % 4), 'n' || i, 1 FROM generate_series(1, 10) i;
CREATE TEMP TABLE before_purge AS
SELECT user_id, sum(credits) AS credits FROM api_usage_log GROUP BY user_id;
SELECT is(dd_purge_usage_log('1 day', 7), 100::bigint, 'every old usage row is purged, in batches of 7');
SELECT is(dd_purge_usage_log('1 day', 7), 0::bigint, 'a second purge finds nothing');
SELECT results_eq(
    $$SELECT l.user_id, l.credits + r.charged
      FROM (SELECT user_id, sum(credits) AS credits FROM api_usage_log GROUP BY user_id) l
      JOIN api_usage_rollup r USING (user_id) ORDER BY 1$$,
    $$SELECT user_id, credits FROM before_purge ORDER BY 1$$,
    'per user, logged + rolled-up credits equal the credits logged before the purge');
SELECT is((SELECT sum(usage_rows) FROM api_usage_rollup), 100::numeric,
    'the rollup counts every purged row once');

SELECT * FROM finish();
ROLLBACK;
