-- bench/events/oc_one.sql: the same row with INSERT ... ON CONFLICT DO
-- NOTHING, the plain SQL that deduplicates as dd_track_event does.
\set u random(1, 1000)
\set r random(1, 1000000000000000)
INSERT INTO plain_oc (user_id, event, properties, event_id) VALUES ('user_' || :u, 'clip.viewed', '{"path": "/clips/42", "ms": 130}', 'ev-' || :r) ON CONFLICT (user_id, event_id) DO NOTHING RETURNING id;
