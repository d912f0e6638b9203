--
-- events: dd_track_event and dd_track_events store analytics events, drop a
-- duplicate event_id of the same user (within a batch, across batches,
-- never across users), reject every malformed input with an error naming
-- the element's position and store nothing of that batch; the retention
-- functions and procedures delete old rows in batches and count them, and
-- purging api_usage_log keeps the credit audit balanced through
-- api_usage_rollup.  A hostile search_path changes nothing; a role without
-- EXECUTE can do nothing.
--
CREATE EXTENSION dd_clipper;
SET TimeZone = 'UTC';

-- try(sql): run sql and answer 'ok', or the error's SQLSTATE, message and
-- detail (so one table shows many errors).
CREATE FUNCTION pg_temp.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
END
$$;

------------------------------------------------------------------------
-- dd_track_event: one event
------------------------------------------------------------------------

-- Stored: the id comes back; every column as given, defaults filled in.
-- (In one transaction, so that now() is the same for every statement.)
BEGIN;
SELECT dd_track_event('u1', 'clip.viewed', '{"clip": 7}', 'e-1') IS NOT NULL AS stored;
SELECT dd_track_event(user_id => 'u1', event => 'login') IS NOT NULL AS stored;
-- The same event_id again for the same user: dropped, NULL comes back.
SELECT dd_track_event('u1', 'clip.viewed', '{"clip": 8}', 'e-1') AS dropped;
-- The same event_id for another user is another event.
SELECT dd_track_event('u2', 'clip.viewed', '{}', 'e-1') IS NOT NULL AS stored;
-- Without an event_id nothing is deduplicated.
SELECT dd_track_event('u1', 'login') IS NOT NULL AS stored;
-- The id returned is the row's id.
SELECT dd_track_event('u3', 'export', occurred_at => '2026-01-31 12:00:00+00') AS u3_id \gset
SELECT id = :u3_id AS returned_id_is_the_row, occurred_at
FROM usage_events WHERE user_id = 'u3';

SELECT user_id, event, properties, event_id,
       occurred_at = now() AS occurred_now, received_at = now() AS received_now
FROM usage_events ORDER BY id;
COMMIT;

-- Errors: every argument is checked; nothing is stored.
\set VERBOSITY default
SELECT dd_track_event(NULL, 'login');
SELECT dd_track_event('u1', '');
SELECT dd_track_event('u1', 'login', '[1, 2]');
SELECT dd_track_event('u1', 'login', '{}', repeat('x', 257));
SELECT dd_track_event('u1', 'login', '{}', 'e-9', NULL);
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    (1, 'user_id null',       $$SELECT dd_track_event(NULL, 'login')$$),
    (2, 'user_id empty',      $$SELECT dd_track_event('', 'login')$$),
    (3, 'user_id too long',   $$SELECT dd_track_event(repeat('u', 257), 'login')$$),
    (4, 'event null',         $$SELECT dd_track_event('u1', NULL)$$),
    (5, 'event too long',     $$SELECT dd_track_event('u1', repeat('é', 257))$$),
    (6, 'properties scalar',  $$SELECT dd_track_event('u1', 'login', '"x"')$$),
    (7, 'event_id empty',     $$SELECT dd_track_event('u1', 'login', '{}', '')$$),
    (8, 'occurred_at null',   $$SELECT dd_track_event('u1', 'login', '{}', NULL, NULL)$$),
    (9, 'limits are inclusive', $$SELECT dd_track_event(repeat('u', 256), repeat('é', 256), NULL, repeat('i', 256))$$)
) t(n, label, q) ORDER BY n;
-- NULL properties mean none.
SELECT properties FROM usage_events WHERE user_id = repeat('u', 256);

------------------------------------------------------------------------
-- dd_track_events: batches
------------------------------------------------------------------------
TRUNCATE usage_events;

-- A batch of five with a duplicate inside: four stored; the first of the
-- duplicates wins.  occurred_at as ISO 8601 or milliseconds since the epoch.
BEGIN;
SELECT dd_track_events($$[
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-1", "properties": {"n": 1},
   "occurred_at": "2026-03-01T10:00:00Z"},
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-2", "properties": {"n": 2},
   "occurred_at": 1772359200000},
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-1", "properties": {"n": 3}},
  {"user_id": "u2", "event": "clip.viewed", "event_id": "b-1", "properties": null},
  {"user_id": "u2", "event": "login", "occurred_at": "2026-03-01 11:00:00+02"}
]$$) AS stored;
-- A second batch overlapping the first: only the new ids are stored.
SELECT dd_track_events($$[
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-2"},
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-3"},
  {"user_id": "u2", "event": "clip.viewed", "event_id": "b-1"},
  {"user_id": "u3", "event": "clip.viewed", "event_id": "b-1", "occurred_at": null}
]$$) AS stored;
-- The same batch again: nothing new.
SELECT dd_track_events($$[
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-2"},
  {"user_id": "u1", "event": "clip.viewed", "event_id": "b-3"}
]$$) AS stored;
-- Without event ids nothing is deduplicated; an empty batch stores nothing.
SELECT dd_track_events('[{"user_id": "u4", "event": "e"}, {"user_id": "u4", "event": "e"}]') AS stored;
SELECT dd_track_events('[]') AS stored;

SELECT user_id, event, event_id, properties, occurred_at,
       received_at = now() AS received_now
FROM usage_events
WHERE occurred_at <> now()
ORDER BY user_id COLLATE "C", event_id COLLATE "C";
-- Missing occurred_at is the transaction's time, as in dd_track_event.
SELECT user_id, event_id, occurred_at = now() AS occurred_now
FROM usage_events WHERE occurred_at = now()
ORDER BY user_id COLLATE "C", event_id COLLATE "C";
-- Each (user_id, event_id) is stored once.
SELECT user_id, event_id, count(*) FROM usage_events
WHERE event_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1;
COMMIT;

-- A batch of 20,000 with 5,000 repeats inside and 1,000 ids already stored.
SELECT dd_track_events(jsonb_agg(jsonb_build_object(
           'user_id', 'bulk', 'event', 'tick', 'event_id', 'k-' || (i % 15000))))
       AS stored
FROM generate_series(1, 20000) i;
SELECT dd_track_events(jsonb_agg(jsonb_build_object(
           'user_id', 'bulk', 'event', 'tick', 'event_id', 'k-' || i)))
       AS stored
FROM generate_series(14000, 16999) i;
SELECT count(*), count(DISTINCT event_id) FROM usage_events WHERE user_id = 'bulk';

-- Malformed batches: an error naming the element (positions count from 0,
-- as in JSON paths and JavaScript); nothing of the batch is stored.
SELECT count(*) AS before FROM usage_events \gset
SELECT dd_track_events('[{"user_id": "u1", "event": "ok", "event_id": "m-1"}, {"user_id": "u1", "event": 5}]');
SELECT dd_track_events('{"user_id": "u1", "event": "x"}');
SELECT dd_track_events('[{"user_id": "u1", "event": "x", "eventId": "x"}]');
SELECT dd_track_events('[{"user_id": "u1", "event": "x", "occurred_at": "yesterday-ish"}]');
SELECT dd_track_events('[{"user_id": "u1"}]');
SELECT label, pg_temp.try(format('SELECT dd_track_events(%L)', j)) AS result FROM (VALUES
    (1,  'null',                   NULL),
    (2,  'an object',              '{"user_id": "u1", "event": "x"}'),
    (3,  'a string',               '"events"'),
    (4,  'a number',               '3'),
    (5,  'element a number',       '[{"user_id": "u1", "event": "x"}, 1]'),
    (6,  'element a string',       '[{"user_id": "u1", "event": "x"}, "x"]'),
    (7,  'element an array',       '[[{"user_id": "u1", "event": "x"}]]'),
    (8,  'element null',           '[{"user_id": "u1", "event": "x"}, {"user_id": "u1", "event": "x"}, null]'),
    (9,  'user_id missing',        '[{"event": "x"}]'),
    (10, 'user_id null',           '[{"user_id": null, "event": "x"}]'),
    (11, 'user_id a number',       '[{"user_id": 42, "event": "x"}]'),
    (12, 'user_id empty',          '[{"user_id": "", "event": "x"}]'),
    (13, 'user_id too long',       format('[{"user_id": "%s", "event": "x"}]', repeat('u', 257))),
    (14, 'event missing',          '[{"user_id": "u1"}]'),
    (15, 'event a boolean',        '[{"user_id": "u1", "event": true}]'),
    (16, 'event an object',        '[{"user_id": "u1", "event": {"name": "x"}}]'),
    (17, 'event empty',            '[{"user_id": "u1", "event": ""}]'),
    (18, 'event too long',         format('[{"user_id": "u1", "event": "%s"}]', repeat('é', 257))),
    (19, 'event_id a number',      '[{"user_id": "u1", "event": "x", "event_id": 7}]'),
    (20, 'event_id empty',         '[{"user_id": "u1", "event": "x", "event_id": ""}]'),
    (21, 'event_id too long',      format('[{"user_id": "u1", "event": "x", "event_id": "%s"}]', repeat('i', 257))),
    (22, 'properties an array',    '[{"user_id": "u1", "event": "x", "properties": [1]}]'),
    (23, 'properties a string',    '[{"user_id": "u1", "event": "x", "properties": "{}"}]'),
    (24, 'occurred_at bad string', '[{"user_id": "u1", "event": "x", "occurred_at": "2026-02-30T00:00:00Z"}]'),
    (25, 'occurred_at a word',     '[{"user_id": "u1", "event": "x", "occurred_at": "infinity"}]'),
    (26, 'occurred_at a boolean',  '[{"user_id": "u1", "event": "x", "occurred_at": false}]'),
    (27, 'occurred_at too big',    '[{"user_id": "u1", "event": "x", "occurred_at": 1e300}]'),
    (28, 'occurred_at year 300000', '[{"user_id": "u1", "event": "x", "occurred_at": "300000-01-01"}]'),
    (29, 'unknown key',            '[{"user_id": "u1", "event": "x", "userId": "u1"}]'),
    (30, 'the last of 1,001 bad',  (SELECT jsonb_agg(jsonb_build_object('user_id', 'u1', 'event', CASE WHEN i < 1000 THEN 'ok' END))::text
                                    FROM generate_series(0, 1000) i))
) t(n, label, j) ORDER BY n;
SELECT count(*) - :before AS stored_by_bad_batches FROM usage_events;

------------------------------------------------------------------------
-- Retention of usage_events
------------------------------------------------------------------------
TRUNCATE usage_events;
-- 25 rows received 40 days ago, 5 received 10 days ago, 3 now.
INSERT INTO usage_events (user_id, event, event_id, received_at)
SELECT 'u' || (i % 3), 'old', 'o-' || i, now() - interval '40 days' FROM generate_series(1, 25) i;
INSERT INTO usage_events (user_id, event, event_id, received_at)
SELECT 'u' || (i % 3), 'recent', 'r-' || i, now() - interval '10 days' FROM generate_series(1, 5) i;
SELECT dd_track_events('[{"user_id": "u1", "event": "now"}, {"user_id": "u2", "event": "now"}, {"user_id": "u3", "event": "now"}]');

-- Age is received_at (the database's clock), not the client's occurred_at.
UPDATE usage_events SET occurred_at = now() - interval '1 year' WHERE event = 'now';
-- Two batches of 10 at most: 20 go.
SELECT dd_purge_usage_events('30 days', batch_size => 10, max_batches => 2) AS deleted;
-- The rest, batch after batch until a batch comes back short: 5 go.
SELECT dd_purge_usage_events('30 days', 10) AS deleted;
SELECT dd_purge_usage_events('30 days') AS deleted;
SELECT event, count(*) FROM usage_events GROUP BY event ORDER BY event COLLATE "C";
-- The procedure commits after each batch of 2: 5 rows, 3 batches.
CALL dd_purge_usage_events_proc('1 week', 2);
CALL dd_purge_usage_events_proc(older_than => '1 week');
SELECT event, count(*) FROM usage_events GROUP BY event ORDER BY event COLLATE "C";
-- max_batches bounds the procedure too.
INSERT INTO usage_events (user_id, event, received_at)
SELECT 'u1', 'old', now() - interval '40 days' FROM generate_series(1, 7) i;
CALL dd_purge_usage_events_proc('30 days', 3, 2);
CALL dd_purge_usage_events_proc('30 days', 3, 2);
-- A purged event_id can be stored again: retention ends its dedup window.
SELECT dd_track_events('[{"user_id": "u1", "event": "old", "event_id": "o-1"}]') AS stored_again;

-- Errors.
SELECT dd_purge_usage_events('-1 day');
SELECT dd_purge_usage_events('30 days', 0);
SELECT label, pg_temp.try(q) AS result FROM (VALUES
    (1, 'older_than null',     $$SELECT dd_purge_usage_events(NULL)$$),
    (2, 'older_than zero',     $$SELECT dd_purge_usage_events('0')$$),
    (3, 'older_than negative', $$SELECT dd_purge_usage_events('-5 minutes')$$),
    (4, 'older_than mixed',    $$SELECT dd_purge_usage_events('1 month -40 days')$$),
    (5, 'batch_size null',     $$SELECT dd_purge_usage_events('1 day', NULL)$$),
    (6, 'batch_size negative', $$SELECT dd_purge_usage_events('1 day', -10)$$),
    (7, 'max_batches zero',    $$SELECT dd_purge_usage_events('1 day', 10, 0)$$),
    (8, 'log: older_than zero', $$SELECT dd_purge_usage_log('0 days')$$),
    (9, 'log: batch_size zero', $$SELECT dd_purge_usage_log('1 day', 0)$$),
    (10, 'log: max_batches negative', $$SELECT dd_purge_usage_log('1 day', 10, -1)$$)
) t(n, label, q) ORDER BY n;
CALL dd_purge_usage_log_proc('1 day', 0);
-- The procedures commit, so they refuse to run inside a transaction block.
BEGIN;
CALL dd_purge_usage_events_proc('30 days');
ROLLBACK;

------------------------------------------------------------------------
-- Retention of api_usage_log keeps the credit audit sound
------------------------------------------------------------------------
-- A ledger written by hand (the credit functions live elsewhere): grants,
-- charges logged in api_usage_log, one refund; balances consistent.
INSERT INTO credit_grants (user_id, amount) VALUES ('a', 100), ('b', 50), ('c', 10);
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
SELECT 'a', 'ra-' || i, '/v1/clip', 2, now() - interval '60 days' FROM generate_series(1, 30) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
SELECT 'a', 'na-' || i, '/v1/clip', 1, now() - interval '1 day' FROM generate_series(1, 4) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
SELECT 'b', 'rb-' || i, '/v1/clip', 3, now() - interval '45 days' FROM generate_series(1, 7) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, created_at)
SELECT 'b', 'free-' || i, '/v1/ping', now() - interval '45 days' FROM generate_series(1, 3) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
VALUES ('c', 'rc-1', '/v1/clip', 4, now());
INSERT INTO credit_refunds (user_id, request_id, usage_id, amount)
SELECT user_id, request_id, id, credits FROM api_usage_log WHERE request_id = 'ra-1';
-- a: 100 - 60 - 4 + 2 = 38; b: 50 - 21 = 29; c: 10 - 4 = 6
INSERT INTO api_credits (user_id, balance) VALUES ('a', 38), ('b', 29), ('c', 6);

-- The audit formula of dd_credit_audit: expected = grants - (logged
-- credits + rolled-up credits) + refunds.  Empty when the ledger is sound.
CREATE VIEW pg_temp.audit AS
SELECT c.user_id, c.balance,
       coalesce((SELECT sum(amount) FROM credit_grants g WHERE g.user_id = c.user_id), 0)
     - coalesce((SELECT sum(credits) FROM api_usage_log l WHERE l.user_id = c.user_id), 0)
     - coalesce((SELECT charged FROM api_usage_rollup r WHERE r.user_id = c.user_id), 0)
     + coalesce((SELECT sum(amount) FROM credit_refunds f WHERE f.user_id = c.user_id), 0)
       AS expected
FROM api_credits c;
SELECT * FROM pg_temp.audit WHERE balance <> expected;

-- 40 rows are older than 30 days: 12 batches of 3 take 36, the procedure
-- the last 4 (batches of 3 and 1, each committed).
SELECT dd_purge_usage_log('30 days', batch_size => 3, max_batches => 12) AS deleted;
SELECT * FROM pg_temp.audit WHERE balance <> expected;
CALL dd_purge_usage_log_proc('30 days', 3);
SELECT * FROM pg_temp.audit WHERE balance <> expected;
SELECT user_id, charged, usage_rows FROM api_usage_rollup ORDER BY user_id COLLATE "C";
SELECT user_id, count(*), sum(credits) FROM api_usage_log GROUP BY user_id ORDER BY user_id COLLATE "C";
-- Without the rollup the audit would report both users.
SELECT user_id, balance,
       expected + coalesce((SELECT charged FROM api_usage_rollup r WHERE r.user_id = a.user_id), 0)
       AS expected_without_rollup
FROM pg_temp.audit a
ORDER BY user_id COLLATE "C";
-- Retention ends the idempotency window: a purged request id is new again.
INSERT INTO api_usage_log (user_id, request_id, credits) VALUES ('a', 'ra-2', 2)
RETURNING user_id, request_id;
DELETE FROM api_usage_log WHERE request_id = 'ra-2';
-- A second purge with nothing old: rollup unchanged.
SELECT dd_purge_usage_log('30 days') AS deleted;
SELECT sum(charged), sum(usage_rows) FROM api_usage_rollup;

------------------------------------------------------------------------
-- A hostile search_path changes nothing
------------------------------------------------------------------------
-- A fresh session, so no plan was prepared under the normal search_path.
\c -
SET TimeZone = 'UTC';
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.usage_events (LIKE public.usage_events);
CREATE TABLE regress_evil.api_usage_log (LIKE public.api_usage_log);
CREATE TABLE regress_evil.api_usage_rollup (LIKE public.api_usage_rollup);
CREATE FUNCTION regress_evil.now() RETURNS timestamptz
    LANGUAGE sql AS $$SELECT '2000-01-01 00:00:00+00'::pg_catalog.timestamptz$$;
CREATE FUNCTION regress_evil.unnest(anyarray) RETURNS SETOF anyelement
    LANGUAGE sql AS $$SELECT NULL::anyelement WHERE false$$;
CREATE FUNCTION regress_evil.always(timestamptz, timestamptz) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz,
    FUNCTION = regress_evil.always);
CREATE FUNCTION regress_evil.tid_always(tid, tid) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.= (LEFTARG = tid, RIGHTARG = tid,
    FUNCTION = regress_evil.tid_always);
CREATE FUNCTION regress_evil.always2(bigint, integer) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.< (LEFTARG = bigint, RIGHTARG = integer,
    FUNCTION = regress_evil.always2);
CREATE FUNCTION regress_evil.always3(integer, integer) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.>= (LEFTARG = integer, RIGHTARG = integer,
    FUNCTION = regress_evil.always3);
CREATE FUNCTION regress_evil.zero(bigint, bigint) RETURNS bigint
    LANGUAGE sql AS $$SELECT 0::pg_catalog.int8$$;
CREATE OPERATOR regress_evil.+ (LEFTARG = bigint, RIGHTARG = bigint,
    FUNCTION = regress_evil.zero);
CREATE FUNCTION regress_evil.keep(bigint, bigint) RETURNS bigint
    LANGUAGE sql AS $$SELECT 0::pg_catalog.int8$$;
CREATE AGGREGATE regress_evil.sum(bigint) (SFUNC = regress_evil.keep, STYPE = bigint, INITCOND = '0');
CREATE AGGREGATE regress_evil.count(*) (SFUNC = pg_catalog.int8inc, STYPE = bigint, INITCOND = '1000');
SET search_path = regress_evil, pg_catalog, public;

SELECT public.dd_track_event('h1', 'evil', '{}', 'h-1') IS NOT NULL AS stored;
SELECT public.dd_track_event('h1', 'evil', '{}', 'h-1') IS NULL AS dropped;
SELECT public.dd_track_events('[{"user_id": "h1", "event": "evil", "event_id": "h-1"},
                                {"user_id": "h1", "event": "evil", "event_id": "h-2"},
                                {"user_id": "h1", "event": "evil", "event_id": "h-2"}]') AS stored;
SELECT public.dd_track_events('[{"user_id": "h2", "event": "evil"}]') AS stored;
-- One old event; three old usage rows of user c.
INSERT INTO public.usage_events (user_id, event, received_at)
VALUES ('h3', 'old', pg_catalog.now() OPERATOR(pg_catalog.-) '40 days'::pg_catalog.interval);
INSERT INTO public.api_usage_log (user_id, request_id, credits, created_at)
VALUES ('c', 'old-c', 0, pg_catalog.now() OPERATOR(pg_catalog.-) '40 days'::pg_catalog.interval),
       ('c', 'old-c2', 0, pg_catalog.now() OPERATOR(pg_catalog.-) '40 days'::pg_catalog.interval),
       ('c', 'old-c3', 0, pg_catalog.now() OPERATOR(pg_catalog.-) '40 days'::pg_catalog.interval);
SELECT public.dd_purge_usage_events('30 days', 1) AS deleted;
SELECT public.dd_purge_usage_log('30 days', 1, 1) AS deleted;
-- Two batches of one, then an empty one: 2.
CALL public.dd_purge_usage_log_proc('30 days', 1);
CALL public.dd_purge_usage_events_proc('30 days');
RESET search_path;
-- The real tables got exactly the right rows; the shadowing ones nothing.
SELECT user_id, event, event_id, occurred_at > '2020-01-01' AS real_now
FROM usage_events WHERE user_id IN ('h1', 'h2', 'h3')
ORDER BY user_id COLLATE "C", event_id COLLATE "C";
SELECT count(*) AS evil_rows FROM regress_evil.usage_events;
SELECT count(*) AS evil_rows FROM regress_evil.api_usage_log;
SELECT count(*) AS evil_rows FROM regress_evil.api_usage_rollup;
SELECT user_id, charged, usage_rows FROM api_usage_rollup ORDER BY user_id COLLATE "C";
SELECT count(*) AS recent_usage_kept FROM api_usage_log;
SET client_min_messages = warning;
DROP SCHEMA regress_evil CASCADE;
RESET client_min_messages;

------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; EXECUTE is all a role needs
------------------------------------------------------------------------
CREATE ROLE regress_events_app;
CREATE ROLE regress_events_maint;
GRANT EXECUTE ON FUNCTION dd_track_event(text, text, jsonb, text, timestamptz),
                          dd_track_events(jsonb) TO regress_events_app;
GRANT EXECUTE ON FUNCTION dd_purge_usage_events(interval, integer, integer),
                          dd_purge_usage_log(interval, integer, integer) TO regress_events_maint;
GRANT EXECUTE ON PROCEDURE dd_purge_usage_events_proc(interval, integer, integer, bigint),
                           dd_purge_usage_log_proc(interval, integer, integer, bigint) TO regress_events_maint;
-- PUBLIC executes only the three claim functions the row policies need.
SELECT p.proname COLLATE "C" AS public_can_execute
FROM pg_proc p
WHERE p.proname LIKE 'dd\_%' AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1;

SET ROLE regress_events_app;
SELECT dd_track_event('p1', 'login', '{}', 'p-1') IS NOT NULL AS stored;
SELECT dd_track_events('[{"user_id": "p1", "event": "login", "event_id": "p-1"}, {"user_id": "p1", "event": "login", "event_id": "p-2"}]') AS stored;
SELECT count(*) FROM usage_events;
INSERT INTO usage_events (user_id, event) VALUES ('p1', 'forged');
SELECT dd_purge_usage_events('1 day');
CALL dd_purge_usage_events_proc('1 day');
RESET ROLE;

INSERT INTO api_usage_log (user_id, request_id, credits, created_at)
VALUES ('c', 'old-c4', 1, now() - interval '40 days');
UPDATE api_credits SET balance = balance - 1 WHERE user_id = 'c';
SET ROLE regress_events_maint;
SELECT dd_track_event('p1', 'login');
DELETE FROM api_usage_log;
SELECT dd_purge_usage_events('30 days') AS deleted;
CALL dd_purge_usage_log_proc('30 days');
RESET ROLE;
SELECT user_id, charged, usage_rows FROM api_usage_rollup WHERE user_id = 'c';
SELECT user_id, event_id FROM usage_events WHERE user_id = 'p1' ORDER BY event_id COLLATE "C";

DROP EXTENSION dd_clipper;
DROP ROLE regress_events_app;
DROP ROLE regress_events_maint;
