-- Analytics events: deduplicated ingest in one call, and retention.
\echo
\echo '==> one event: the id comes back'
SELECT dd_track_event(user_id => 'user_demo', event => 'clip.viewed',
                      properties => '{"clip": 1}', event_id => 'evt-1') IS NOT NULL AS stored;

\echo '==> the client retries it: the duplicate is dropped (NULL)'
SELECT dd_track_event('user_demo', 'clip.viewed', '{"clip": 1}', 'evt-1') AS id;

\echo '==> a batch of four in one call, one of them a duplicate inside the batch and one already stored: 2 stored'
SELECT dd_track_events('[
  {"user_id": "user_demo", "event": "clip.saved",  "event_id": "evt-2", "properties": {"clip": 1}},
  {"user_id": "user_demo", "event": "clip.saved",  "event_id": "evt-2", "properties": {"clip": 1}},
  {"user_id": "user_demo", "event": "clip.viewed", "event_id": "evt-1"},
  {"user_id": "user_demo", "event": "search", "occurred_at": "2026-03-01T10:00:00Z", "properties": {"q": "postgres"}}
]') AS stored;

SELECT event, event_id, properties, occurred_at FROM usage_events
WHERE user_id = 'user_demo' ORDER BY id;

\echo '==> a malformed batch names the bad element and stores nothing'
\set ON_ERROR_STOP 0
SELECT dd_track_events('[{"user_id": "user_demo", "event": "ok"}, {"user_id": "user_demo", "event": 42}]');
\set ON_ERROR_STOP 1

\echo '==> retention: 1,000 events received 100 days ago, purged in batches of 300, each committed'
INSERT INTO usage_events (user_id, event, received_at)
SELECT 'user_demo', 'old.event', now() - interval '100 days' FROM generate_series(1, 1000);
CALL dd_purge_usage_events_proc(older_than => '90 days', batch_size => 300);
SELECT count(*) AS events_left FROM usage_events WHERE user_id = 'user_demo';

\echo '==> purging old usage rows folds their credits into api_usage_rollup, so the credit audit still balances'
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
SELECT 'user_demo', 'old-req-' || i, '/v1/clips', 2, now() - interval '400 days'
FROM generate_series(1, 50) i;
SELECT dd_purge_usage_log(older_than => '365 days') AS usage_rows_deleted;
SELECT user_id, charged, usage_rows FROM api_usage_rollup WHERE user_id = 'user_demo';
