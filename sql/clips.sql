--
-- clips: keyset pages in every sort (ties in created_at included), filters,
-- search, every argument and cursor error with its SQLSTATE, the triggers
-- (version, updated_at, tombstones, refusals), the change feed, a hostile
-- search_path, a low-privilege role, and the plans of a first and a deep
-- page on a realistic table.
--
CREATE EXTENSION dd_clipper;

-- Errors are shown as SQLSTATE and message.
CREATE FUNCTION regress_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- Walk every page of a query; one row per page with the ids on it.
CREATE FUNCTION regress_walk(u text, size int, s text DEFAULT 'newest',
                             q text DEFAULT NULL, t text[] DEFAULT NULL,
                             st text DEFAULT NULL)
RETURNS TABLE (page int, ids bigint[]) LANGUAGE plpgsql AS $$
DECLARE
    c text;
    r jsonb;
    n int := 0;
BEGIN
    LOOP
        r := dd_clips_page(user_id => u, page_size => size, cursor => c,
                           search => q, tags => t, status => st, sort => s);
        n := n + 1;
        page := n;
        ids := ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements(r->'page') e);
        RETURN NEXT;
        EXIT WHEN (r->>'isDone')::boolean;
        c := r->>'continueCursor';
        IF n > 2000 THEN RAISE EXCEPTION 'runaway walk'; END IF;
    END LOOP;
END $$;

-- alice: 12 clips on 4 timestamps (3 clips share each), bob's clips
-- interleaved; one of alice's soft-deleted.
INSERT INTO clips (user_id, title, notes, transcript, tags, status, created_at)
SELECT CASE WHEN i % 4 = 0 THEN 'bob' ELSE 'alice' END,
       'clip ' || i,
       CASE WHEN i % 3 = 0 THEN 'postgres row locks' ELSE 'cooking notes' END,
       CASE WHEN i % 5 = 0 THEN 'postgres postgres postgres' END,
       CASE WHEN i % 2 = 0 THEN '{video,talk}'::text[] ELSE '{video}' END,
       CASE WHEN i % 6 = 0 THEN 'processing' ELSE 'ready' END,
       '2024-01-01 00:00:00+00'::timestamptz + ((i - 1) / 4) * interval '1 minute'
FROM generate_series(1, 16) i;
UPDATE clips SET deleted_at = now() WHERE id = 6;

SELECT id, user_id, created_at AT TIME ZONE 'UTC' AS created_at, tags, status,
       deleted_at IS NOT NULL AS deleted
FROM clips ORDER BY id;

-- newest, oldest: every live clip of the user once, in order, ties by id.
SELECT * FROM regress_walk('alice', 5, 'newest');
SELECT * FROM regress_walk('alice', 5, 'oldest');
SELECT * FROM regress_walk('alice', 1, 'newest');
SELECT * FROM regress_walk('alice', 100, 'oldest');
-- The same as the plain queries, for several page sizes.
SELECT size,
       (SELECT array_agg(i ORDER BY page, o) FROM regress_walk('alice', size, 'newest') w,
            unnest(w.ids) WITH ORDINALITY AS u(i, o))
     = (SELECT array_agg(id ORDER BY created_at DESC, id DESC) FROM clips
        WHERE user_id = 'alice' AND deleted_at IS NULL) AS newest_ok,
       (SELECT array_agg(i ORDER BY page, o) FROM regress_walk('alice', size, 'oldest') w,
            unnest(w.ids) WITH ORDINALITY AS u(i, o))
     = (SELECT array_agg(id ORDER BY created_at, id) FROM clips
        WHERE user_id = 'alice' AND deleted_at IS NULL) AS oldest_ok
FROM generate_series(1, 12) size ORDER BY size;

-- A page's shape: the clip's columns (not the search vector), isDone,
-- continueCursor (47 characters).
SELECT k AS clip_key FROM jsonb_object_keys(dd_clips_page('alice', 1)->'page'->0) k ORDER BY k COLLATE "C";
SELECT jsonb_typeof(r->'page') AS page, r->'isDone' AS is_done,
       length(r->>'continueCursor') AS cursor_length
FROM dd_clips_page('alice', 20) r;
-- An unknown user: an empty, done page.
SELECT r->'page' AS page, r->'isDone' AS is_done FROM dd_clips_page('nobody') r;
-- Continuing from a done page's cursor gives an empty, done page.
SELECT r2->'page' AS page, r2->'isDone' AS is_done
FROM dd_clips_page('alice', 20) r1,
     dd_clips_page('alice', 20, r1->>'continueCursor') r2;
-- A row inserted after the cursor's position shows up on a later page;
-- the position itself does not move.
BEGIN;
SELECT (dd_clips_page('alice', 3, sort => 'oldest')->>'continueCursor') AS c \gset
INSERT INTO clips (user_id, title, created_at) VALUES ('alice', 'late', '2030-01-01');
SELECT * FROM regress_walk('alice', 100, 'oldest');
SELECT ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements(
    dd_clips_page('alice', 100, :'c', sort => 'oldest')->'page') e) AS after_cursor;
ROLLBACK;

-- Filters: tags (all of them), status, search; combined.
SELECT * FROM regress_walk('alice', 2, 'newest', t => '{talk}');
SELECT * FROM regress_walk('alice', 2, 'newest', t => '{talk,video}');
SELECT * FROM regress_walk('alice', 2, 'newest', t => '{talk,nope}');
SELECT * FROM regress_walk('alice', 2, 'newest', t => '{}');
SELECT * FROM regress_walk('alice', 2, 'oldest', st => 'ready');
SELECT * FROM regress_walk('alice', 2, 'oldest', st => 'processing');
SELECT * FROM regress_walk('alice', 2, 'newest', q => 'postgres');
SELECT * FROM regress_walk('alice', 2, 'newest', q => 'postgres', t => '{talk}', st => 'ready');
SELECT * FROM regress_walk('alice', 2, 'newest', q => 'cooking -postgres');
-- websearch syntax never fails, whatever the user types.
SELECT * FROM regress_walk('alice', 2, 'newest', q => '"unclosed (or -');
-- relevance: by rank (deterministic: ts_rank of the stored vector), then id.
SELECT id, ts_rank(search, websearch_to_tsquery('english', 'postgres')) AS rank
FROM clips WHERE user_id = 'alice' AND deleted_at IS NULL
  AND search @@ websearch_to_tsquery('english', 'postgres')
ORDER BY 2 DESC, id DESC;
SELECT * FROM regress_walk('alice', 2, 'relevance', q => 'postgres');
SELECT * FROM regress_walk('alice', 1, 'relevance', q => 'postgres', t => '{talk}');
-- The tags of a query are a set: order and repetition do not matter.
SELECT dd_clips_page('alice', 1, dd_clips_page('alice', 1, tags => '{video,talk}')->>'continueCursor',
                     tags => '{talk,video,talk}')->'page'->0->'id' AS second_clip;

-- Argument errors.
SELECT regress_try($$SELECT dd_clips_page(NULL)$$);
SELECT regress_try($$SELECT dd_clips_page('')$$);
SELECT regress_try($$SELECT dd_clips_page(repeat('u', 257))$$);
SELECT regress_try($$SELECT dd_clips_page('alice', 0)$$);
SELECT regress_try($$SELECT dd_clips_page('alice', 1001)$$);
SELECT regress_try($$SELECT dd_clips_page('alice', NULL)$$);
SELECT regress_try($$SELECT dd_clips_page('alice', sort => 'alphabetical')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', sort => NULL)$$);
SELECT regress_try($$SELECT dd_clips_page('alice', sort => 'relevance')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', search => '')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', search => repeat('x', 1025))$$);
SELECT regress_try($$SELECT dd_clips_page('alice', tags => '{a,NULL}')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', tags => '{{a},{b}}')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', tags => '{""}')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', tags => (SELECT array_agg(i::text) FROM generate_series(1, 65) i))$$);
SELECT regress_try($$SELECT dd_clips_page('alice', status => '')$$);

-- Cursor errors: garbage, wrong length, a character outside base64url,
-- an empty cursor, a changed character, a cursor of another format, and a
-- good cursor used with another user, sort, search, tags or status.
SELECT dd_clips_page('alice', 2, tags => '{video}', status => 'ready')->>'continueCursor' AS c \gset
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L)',
                          'alice', :'c', '{video}', 'ready')) AS same_query;
SELECT regress_try($$SELECT dd_clips_page('alice', 2, 'garbage')$$);
SELECT regress_try($$SELECT dd_clips_page('alice', 2, '')$$);
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L)', 'alice', :'c' || 'A'));
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L)', 'alice', overlay(:'c' placing '*' from 10)));
-- Every character position changed to another base64url character (that
-- is not the one there): every cursor is refused, as tampered or malformed.
SELECT count(*) >= 4 * 47 AS enough_mutations,
       bool_and(err IN ('22P02: cursor failed its integrity check',
                        '22P02: cursor is of an unknown format',
                        '22P02: cursor is not a dd_clips_page cursor')) AS all_refused
FROM (SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L)',
                                'alice', overlay(:'c' placing ch from pos), '{video}', 'ready')) AS err
      FROM generate_series(1, 47) pos,
           unnest(ARRAY['A', 'Q', 'g', 'w', '_']) ch
      WHERE substr(:'c', pos, 1) <> ch) m;
-- The format byte changed to 2 (a cursor starts AQAB: format 1, sort 0,
-- flags 1; AgAB is format 2): the format is checked before the checksum.
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L)', 'alice', 'AgAB' || substr(:'c', 5)));
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L)',
                          'bob', :'c', '{video}', 'ready')) AS other_user;
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L, sort => %L)',
                          'alice', :'c', '{video}', 'ready', 'oldest')) AS other_sort;
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L)',
                          'alice', :'c', '{video}')) AS other_status;
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L)',
                          'alice', :'c', '{talk}', 'ready')) AS other_tags;
SELECT regress_try(format('SELECT dd_clips_page(%L, 2, %L, tags => %L, status => %L, search => %L)',
                          'alice', :'c', '{video}', 'ready', 'postgres')) AS other_search;
-- The page size may change between pages.
SELECT regress_try(format('SELECT dd_clips_page(%L, 7, %L, tags => %L, status => %L)',
                          'alice', :'c', '{video}', 'ready')) AS other_page_size;

-- Triggers: every write gets a new version (the writer's transaction id,
-- shifted, and a counter), an update sets updated_at.
WITH v AS (INSERT INTO clips (user_id, title) VALUES ('carol', 'one'), ('carol', 'two')
           RETURNING version)
SELECT version >> 20 = pg_current_xact_id()::text::bigint AS version_is_xid,
       version & 1048575 AS n
FROM v ORDER BY n;
SELECT id, title, version AS v0, updated_at AS u0 FROM clips WHERE user_id = 'carol' AND title = 'one' \gset
UPDATE clips SET title = 'one, edited', version = 1, updated_at = '2000-01-01' WHERE id = :id;
SELECT version > :v0 AS newer_version, updated_at > :'u0' AS updated_later,
       updated_at > '2000-01-01' AS not_the_callers_value
FROM clips WHERE id = :id;
SELECT regress_try(format('UPDATE clips SET user_id = %L WHERE id = %s', 'mallory', :id));
SELECT regress_try(format('UPDATE clips SET id = DEFAULT WHERE id = %s', :id));
SELECT regress_try('TRUNCATE clips');
SELECT regress_try($$INSERT INTO clips (user_id, title) VALUES (repeat('u', 257), 'x')$$);

-- The change feed.
SELECT jsonb_path_query_array(r, '$.changes[*].op') AS ops,
       jsonb_path_query_array(r, '$.changes[*].id') AS ids,
       (r->>'version')::bigint > 0 AS has_version
FROM dd_clip_changes('carol') r;
SELECT (dd_clip_changes('carol')->>'version')::bigint AS v \gset
-- Nothing new: the version given comes back, and no change.
SELECT r->'changes' AS changes, (r->>'version')::bigint = :v AS same_version
FROM dd_clip_changes('carol', :v) r;
-- A version from the future comes back unchanged.
SELECT r->'changes' AS changes, (r->>'version')::bigint = :v::bigint + 1000000000 AS same_version
FROM dd_clip_changes('carol', :v::bigint + 1000000000) r;
-- An update, a soft delete, a hard delete, an insert: each once, in
-- commit order of their transactions, with the clip for upserts only.
UPDATE clips SET notes = 'more' WHERE user_id = 'carol' AND title = 'two';
UPDATE clips SET deleted_at = now() WHERE user_id = 'carol' AND title = 'one, edited';
DELETE FROM clips WHERE user_id = 'carol' AND title = 'two';
INSERT INTO clips (user_id, title) VALUES ('carol', 'three');
SELECT c->>'op' AS op, c->'id' AS id, c->'clip'->>'title' AS title,
       (c->'clip'->>'version')::bigint = (c->>'version')::bigint AS clip_version_matches
FROM jsonb_array_elements(dd_clip_changes('carol', :v)->'changes') c;
-- Polling with the returned version: nothing again.
SELECT dd_clip_changes('carol', (dd_clip_changes('carol', :v)->>'version')::bigint)->'changes' AS again;
-- max cuts the list; the returned version continues exactly after it.
SELECT jsonb_path_query_array(r1, '$.changes[*].id') AS first,
       jsonb_path_query_array(dd_clip_changes('carol', (r1->>'version')::bigint, 1), '$.changes[*].id') AS second
FROM dd_clip_changes('carol', :v, 1) r1;
-- Un-deleting a clip is an upsert again.
UPDATE clips SET deleted_at = NULL WHERE user_id = 'carol' AND title = 'one, edited';
SELECT c->>'op' AS op, c->'clip'->>'title' AS title
FROM jsonb_array_elements(dd_clip_changes('carol', :v)->'changes') c;
-- Own uncommitted writes are never handed out (they could roll back).
BEGIN;
INSERT INTO clips (user_id, title) VALUES ('carol', 'maybe');
SELECT jsonb_path_query_array(dd_clip_changes('carol', :v), '$.changes[*].clip.title') AS titles;
ROLLBACK;
-- A transaction with more than 2^20 - 1 clip writes repeats its last
-- version; the feed never splits such a run between two polls.  Simulated
-- here with the triggers off: versions 100 (x2), 200 (x5), 300.
SET session_replication_role = replica;
INSERT INTO clips (user_id, title, version)
SELECT 'grace', 'g' || i, CASE WHEN i <= 2 THEN 100 WHEN i <= 7 THEN 200 ELSE 300 END
FROM generate_series(1, 8) i;
RESET session_replication_role;
SELECT jsonb_path_query_array(r, '$.changes[*].clip.title') AS titles, r->'version' AS version
FROM dd_clip_changes('grace', 0, 3) r;
SELECT jsonb_path_query_array(r, '$.changes[*].clip.title') AS titles, r->'version' AS version
FROM dd_clip_changes('grace', 100, 3) r;
SELECT jsonb_path_query_array(r, '$.changes[*].clip.title') AS titles
FROM dd_clip_changes('grace', 200, 3) r;
SELECT jsonb_path_query_array(r, '$.changes[*].clip.title') AS titles, r->'version' AS version
FROM dd_clip_changes('grace', 0, 2) r;
-- Feed argument errors.
SELECT regress_try($$SELECT dd_clip_changes(NULL)$$);
SELECT regress_try($$SELECT dd_clip_changes('carol', NULL)$$);
SELECT regress_try($$SELECT dd_clip_changes('carol', -1)$$);
SELECT regress_try($$SELECT dd_clip_changes('carol', 0, 0)$$);
SELECT regress_try($$SELECT dd_clip_changes('carol', 0, 1001)$$);
SELECT regress_try($$SELECT dd_clip_changes('carol', 0, NULL)$$);

-- Notifications (one per change on dd_clipper_clips, sent at commit) are
-- checked by test/t/041_clips_notify.sh, since their payload holds a
-- version.  The longest payload fits NOTIFY's limit: user_id is at most
-- 256 characters, each at most 6 bytes escaped.
SELECT octet_length(format('{"table":"clips","user_id":%s,"id":%s,"op":"upsert","version":%s}',
                           to_json(repeat(E'\u0001', 256)), 9223372036854775807,
                           9223372036854775807)) AS longest_payload_bytes;

-- A hostile search_path: a schema placed first that shadows the table,
-- functions and operators the functions use changes nothing.
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.clips (LIKE public.clips);
CREATE TABLE regress_evil.clip_tombstones (LIKE public.clip_tombstones);
CREATE FUNCTION regress_evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '1999-01-01'::timestamptz$$;
CREATE FUNCTION regress_evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$SELECT '"evil"'::jsonb$$;
CREATE FUNCTION regress_evil.ts_rank(tsvector, tsquery) RETURNS real LANGUAGE sql AS $$SELECT 0::real$$;
CREATE FUNCTION regress_evil.pg_current_snapshot() RETURNS pg_snapshot LANGUAGE sql AS $$SELECT '1:1:'::pg_snapshot$$;
CREATE FUNCTION regress_evil.evil_eq(text, text) RETURNS boolean LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.evil_eq);
CREATE FUNCTION regress_evil.evil_gt(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.evil_gt);
CREATE OPERATOR regress_evil.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.evil_gt);
SELECT dd_clips_page('alice', 100, sort => 'oldest') AS safe_page \gset
SELECT dd_clips_page('alice', 100, search => 'postgres', sort => 'relevance') AS safe_rel \gset
SELECT dd_clip_changes('carol', :v) AS safe_feed \gset
SET search_path = regress_evil, pg_catalog, public;
SELECT public.dd_clips_page('alice', 100, sort => 'oldest') = :'safe_page'::jsonb AS page_unchanged;
SELECT public.dd_clips_page('alice', 100, search => 'postgres', sort => 'relevance') = :'safe_rel'::jsonb AS relevance_unchanged;
SELECT public.dd_clip_changes('carol', :v) = :'safe_feed'::jsonb AS feed_unchanged;
-- Writes under the hostile path still stamp, tombstone and publish right.
INSERT INTO public.clips (user_id, title) VALUES ('erin', 'x');
DELETE FROM public.clips WHERE user_id OPERATOR(pg_catalog.=) 'erin';
SELECT count(*) AS evil_tombstones FROM regress_evil.clip_tombstones;
RESET search_path;
SELECT jsonb_path_query_array(dd_clip_changes('erin'), '$.changes[*].op') AS erin_ops;
DROP SCHEMA regress_evil CASCADE;

-- A column added to clips appears in pages and the feed at once (in this
-- session too, whose queries were prepared before); a dropped one goes.
ALTER TABLE clips ADD COLUMN regress_extra text DEFAULT 'extra';
SELECT dd_clips_page('alice', 1)->'page'->0->>'regress_extra' AS page_extra,
       dd_clip_changes('carol', :v)->'changes'->-1->'clip'->>'regress_extra' AS feed_extra;
ALTER TABLE clips DROP COLUMN regress_extra;
SELECT dd_clips_page('alice', 1)->'page'->0 ? 'regress_extra' AS page_has_extra,
       jsonb_array_length(dd_clips_page('alice', 100)->'page') AS alice_clips;

-- A low-privilege role with what an application role gets: it can write
-- clips with plain SQL and read pages and the feed, hard deletes leave
-- their tombstone (the trigger is SECURITY DEFINER), and it can neither
-- read the cursor key nor write tombstones itself.
CREATE ROLE regress_clips_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON clips TO regress_clips_app;
GRANT SELECT ON clip_tombstones TO regress_clips_app;
GRANT EXECUTE ON FUNCTION dd_clips_page(text, int, text, text, text[], text, text),
    dd_clip_changes(text, bigint, int) TO regress_clips_app;
SET ROLE regress_clips_app;
INSERT INTO clips (user_id, title) VALUES ('frank', 'a'), ('frank', 'b'), ('frank', 'c');
DELETE FROM clips WHERE user_id = 'frank' AND title = 'b';
SELECT * FROM regress_walk('frank', 1, 'oldest');
SELECT jsonb_path_query_array(dd_clip_changes('frank'), '$.changes[*].op') AS frank_ops;
SELECT regress_try('SELECT key FROM clip_cursor_key') AS read_key;
SELECT regress_try($$INSERT INTO clip_tombstones (user_id, clip_id, version) VALUES ('frank', 1, 1)$$) AS forge_tombstone;
RESET ROLE;
-- Nothing is granted to PUBLIC.
SELECT p.proname COLLATE "C" AS public_can_execute
FROM pg_proc p
WHERE p.proname LIKE 'dd_clip%' AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1;

-- Plans on a realistic table: one user with 20,000 clips among 200 users.
-- The first page and a deep page read the (user_id, created_at, id) index
-- for exactly page_size + 1 rows: a deep page costs what the first does.
INSERT INTO clips (user_id, title, created_at)
SELECT CASE WHEN i % 2 = 0 THEN 'heavy' ELSE 'user' || (i % 199) END, 'bulk ' || i,
       '2025-01-01'::timestamptz + (i / 3) * interval '1 second'
FROM generate_series(1, 40000) i;
ANALYZE clips;
-- The cursor of page 300 (rows 14,951 to 15,000 of "heavy").
CREATE FUNCTION regress_cursor_at(u text, size int, pages int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE c text;
BEGIN
    FOR i IN 1 .. pages - 1 LOOP
        c := dd_clips_page(u, size, c)->>'continueCursor';
    END LOOP;
    RETURN c;
END $$;
SELECT regress_cursor_at('heavy', 50, 300) AS deep \gset
-- The function itself, not a copy of its query: what dd_clips_page read
-- for page 1 and for page 300 (called twice), from this transaction's
-- statistics: index entries of (user_id, created_at, id), scans of that
-- index, and sequential scans of clips.  test/t/043_clips_plan.sh shows the
-- plans it ran, through auto_explain.
BEGIN;
SELECT pg_stat_get_xact_tuples_returned('clips_user_id_created_at_id_idx'::regclass) AS t0,
       pg_stat_get_xact_numscans('clips_user_id_created_at_id_idx'::regclass) AS i0,
       pg_stat_get_xact_numscans('clips'::regclass) AS s0 \gset
SELECT jsonb_array_length(dd_clips_page('heavy', 50)->'page') AS page_1_rows;
SELECT pg_stat_get_xact_tuples_returned('clips_user_id_created_at_id_idx'::regclass) AS t1,
       pg_stat_get_xact_numscans('clips_user_id_created_at_id_idx'::regclass) AS i1 \gset
SELECT jsonb_array_length(dd_clips_page('heavy', 50, :'deep')->'page') AS page_300_rows,
       dd_clips_page('heavy', 50, :'deep')->'page'->0->>'title' AS page_300_first;
SELECT pg_stat_get_xact_tuples_returned('clips_user_id_created_at_id_idx'::regclass) AS t2,
       pg_stat_get_xact_numscans('clips_user_id_created_at_id_idx'::regclass) AS i2,
       pg_stat_get_xact_numscans('clips'::regclass) AS s2 \gset
SELECT :t1 - :t0 AS page_1_index_rows, (:t2 - :t1) / 2 AS page_300_index_rows,
       :i1 - :i0 AS page_1_index_scans, (:i2 - :i1) / 2 AS page_300_index_scans,
       :s2 - :s0 AS clips_seq_scans;
COMMIT;
-- The order of "heavy" after page 300 is still exact.
SELECT (SELECT array_agg((e->>'id')::bigint) FROM jsonb_array_elements(dd_clips_page('heavy', 50, :'deep')->'page') e)
     = (SELECT array_agg(id) FROM (SELECT id FROM clips WHERE user_id = 'heavy' AND deleted_at IS NULL
                                   ORDER BY created_at DESC, id DESC OFFSET 14950 LIMIT 50) s) AS deep_page_exact;

-- Installed again in another schema, in the same session: the saved
-- queries follow the extension.
DROP EXTENSION dd_clipper;
CREATE SCHEMA regress_clips_elsewhere;
CREATE EXTENSION dd_clipper SCHEMA regress_clips_elsewhere;
INSERT INTO regress_clips_elsewhere.clips (user_id, title) VALUES ('zoe', 'moved');
SELECT regress_clips_elsewhere.dd_clips_page('zoe')->'page'->0->>'title' AS title,
       regress_clips_elsewhere.dd_clips_page('zoe', 1, regress_clips_elsewhere.dd_clips_page('zoe', 1)->>'continueCursor')->'page' AS next_page;
DROP EXTENSION dd_clipper;
DROP SCHEMA regress_clips_elsewhere;
DROP FUNCTION regress_try(text), regress_walk(text, int, text, text, text[], text),
    regress_cursor_at(text, int, int);
DROP ROLE regress_clips_app;
