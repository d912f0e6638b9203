-- bench/events/track_one.sql: one event per call through dd_track_event.
\set u random(1, 1000)
\set r random(1, 1000000000000000)
SELECT dd_track_event('user_' || :u, 'clip.viewed', '{"path": "/clips/42", "ms": 130}', 'ev-' || :r);
