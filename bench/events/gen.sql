-- bench/events/gen.sql: the rows every batch contender stores, fixed up
-- front, so dd_track_events, COPY and single-row INSERTs store the same rows.
-- :rounds rounds of :batches batches of 1,000 events; event ids unique.
DROP TABLE IF EXISTS src;
CREATE TABLE src AS
SELECT r AS round, b AS batch, n,
       'user_' || (1 + (hashint4(r * 1000000 + b * 1000 + n) & 1023)) AS user_id,
       (ARRAY['clip.viewed', 'clip.saved', 'search', 'login', 'export'])[1 + (n % 5)] AS event,
       jsonb_build_object('path', '/clips/' || n, 'ms', n % 400, 'ua', 'Mozilla/5.0') AS properties,
       'ev-' || r || '-' || b || '-' || n AS event_id,
       timestamptz '2026-11-01 00:00:00+00' + (r * 100000 + b * 1000 + n) * interval '1 second' AS occurred_at
FROM generate_series(1, :rounds) r, generate_series(1, :batches) b, generate_series(1, 1000) n;
CREATE INDEX ON src (round, batch, n);
