-- bench/events/plain_one.sql: the same row with a plain INSERT into a table
-- with the same columns and indexes as usage_events.
\set u random(1, 1000)
\set r random(1, 1000000000000000)
INSERT INTO plain_one (user_id, event, properties, event_id) VALUES ('user_' || :u, 'clip.viewed', '{"path": "/clips/42", "ms": 130}', 'ev-' || :r);
