-- Clips: keyset pages, search, and a change feed with notifications.
\echo
\echo '==> a few clips, written with plain INSERT (triggers keep version and search)'
INSERT INTO clips (user_id, title, notes, tags, created_at)
SELECT 'demo_user', t.title, t.notes, t.tags, '2025-06-01'::timestamptz + t.n * interval '1 hour'
FROM (VALUES
    (1, 'Postgres locking explained', 'Row locks, SKIP LOCKED and deadlocks', '{postgres,talks}'::text[]),
    (2, 'Sourdough at home', 'Starter, flour and patience', '{cooking}'),
    (3, 'Vacuum deep dive', 'How postgres reclaims space', '{postgres}'),
    (4, 'Knife skills', 'Cooking basics, fast', '{cooking,video}'),
    (5, 'Indexes for busy people', 'B-tree, GIN and when postgres uses them', '{postgres,video}')
) AS t(n, title, notes, tags);

\echo '==> page 1 of the newest clips, two per page (Convex paginate() shape)'
SELECT dd_clips_page('demo_user', page_size => 2) AS p \gset
SELECT c->>'id' AS id, c->>'title' AS title FROM jsonb_array_elements(:'p'::jsonb->'page') c;
SELECT :'p'::jsonb->'isDone' AS "isDone", :'p'::jsonb->>'continueCursor' AS "continueCursor";

\echo '==> page 2, with the continueCursor of page 1'
SELECT c->>'id' AS id, c->>'title' AS title
FROM jsonb_array_elements(dd_clips_page('demo_user', 2, :'p'::jsonb->>'continueCursor')->'page') c;

\echo '==> search "postgres", best match first (title counts more than notes)'
SELECT c->>'id' AS id, c->>'title' AS title, c->'tags' AS tags
FROM jsonb_array_elements(dd_clips_page('demo_user', search => 'postgres', sort => 'relevance')->'page') c;

\echo '==> the same search, only clips tagged video, newest first'
SELECT c->>'id' AS id, c->>'title' AS title, c->'tags' AS tags
FROM jsonb_array_elements(dd_clips_page('demo_user', search => 'postgres', tags => '{video}')->'page') c;

\echo '==> a cursor used with another query is refused'
\set ON_ERROR_STOP 0
SELECT dd_clips_page('demo_user', 2, :'p'::jsonb->>'continueCursor', sort => 'oldest');
\set ON_ERROR_STOP 1

\echo '==> the change feed: everything so far, and the version to poll with next'
SELECT jsonb_array_length(f->'changes') AS changes, f->'version' AS version
FROM dd_clip_changes('demo_user') f \gset feed_
SELECT :feed_changes AS changes, :feed_version AS version;

\echo '==> listening on dd_clipper_clips; an edit and a delete arrive as notifications at commit'
LISTEN dd_clipper_clips;
UPDATE clips SET title = 'Sourdough, revisited' WHERE user_id = 'demo_user' AND title = 'Sourdough at home';
DELETE FROM clips WHERE user_id = 'demo_user' AND title = 'Knife skills';
UNLISTEN dd_clipper_clips;

\echo '==> polling with the version we were given: exactly those two changes'
SELECT c->>'op' AS op, c->>'id' AS id, c->'clip'->>'title' AS title
FROM jsonb_array_elements(dd_clip_changes('demo_user', :feed_version)->'changes') c;
