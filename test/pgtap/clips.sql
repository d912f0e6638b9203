--
-- test/pgtap/clips.sql -- clips objects and their invariants: the feed's
-- tables and indexes, the triggers, the functions' volatility, security
-- and privileges, errors by SQLSTATE, pages equal to the plain ORDER BY,
-- versions stamped from the writing transaction, and a poll inside a
-- writing transaction never handing out its own uncommitted changes.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(26);

-- objects -----------------------------------------------------------------
SELECT has_table('clip_tombstones');
SELECT col_is_pk('clip_tombstones', ARRAY['user_id', 'clip_id']);
SELECT has_index('clip_tombstones', 'clip_tombstones_user_id_version_idx');
SELECT has_index('clips', 'clips_user_id_version_idx', ARRAY['user_id', 'version']);
SELECT has_table('clip_cursor_key');
SELECT is((SELECT count(*) FROM clip_cursor_key WHERE octet_length(key) = 16), 1::bigint,
          'one 16-byte cursor key');
SELECT trigger_is('clips', 'clips_stamp', 'dd_clips_stamp');
SELECT trigger_is('clips', 'clips_publish', 'dd_clips_publish');
SELECT trigger_is('clips', 'clips_no_truncate', 'dd_clips_refuse_truncate');

-- functions: volatility, security, privileges ------------------------------
SELECT volatility_is('dd_clips_page', ARRAY['text', 'integer', 'text', 'text', 'text[]', 'text', 'text'], 'stable');
SELECT volatility_is('dd_clip_changes', ARRAY['text', 'bigint', 'integer'], 'stable');
SELECT isnt_definer('dd_clips_page', ARRAY['text', 'integer', 'text', 'text', 'text[]', 'text', 'text'],
                    'dd_clips_page runs as its caller (row-level security applies)');
SELECT is_definer('dd_clips_publish', 'the tombstone trigger runs as the owner');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
      JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
      WHERE p.proname LIKE 'dd_clip%' AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'no clips function is executable by PUBLIC');
SELECT ok(NOT has_table_privilege('public', 'clip_cursor_key', 'SELECT'),
          'PUBLIC cannot read the cursor key');

-- errors --------------------------------------------------------------------
SELECT throws_ok($$SELECT dd_clips_page('u', cursor => 'x')$$, '22P02', NULL, 'a garbage cursor is 22P02');
SELECT throws_ok($$SELECT dd_clips_page('u', sort => 'relevance')$$, '22023', NULL, 'relevance without search is 22023');
SELECT throws_ok($$SELECT dd_clip_changes('u', -1)$$, '22023', NULL, 'a negative since is 22023');
SELECT throws_ok($$TRUNCATE clips$$, '0A000', NULL, 'TRUNCATE clips is refused');

-- pages -----------------------------------------------------------------------
INSERT INTO clips (user_id, title, created_at)
SELECT 'tap', 'clip ' || i, '2025-01-01'::timestamptz + (i % 5) * interval '1 day'
FROM generate_series(1, 23) i;
CREATE FUNCTION pg_temp.walk(s text) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE c text; r jsonb;
BEGIN
    LOOP
        r := dd_clips_page('tap', 4, c, sort => s);
        RETURN QUERY SELECT (e->>'id')::bigint FROM jsonb_array_elements(r->'page') e;
        EXIT WHEN (r->>'isDone')::boolean;
        c := r->>'continueCursor';
    END LOOP;
END $$;
SELECT results_eq('SELECT * FROM pg_temp.walk(''newest'')',
    'SELECT id FROM clips WHERE user_id = ''tap'' ORDER BY created_at DESC, id DESC',
    'pages of 4, newest first, equal the plain ORDER BY (ties in created_at)');
SELECT results_eq('SELECT * FROM pg_temp.walk(''oldest'')',
    'SELECT id FROM clips WHERE user_id = ''tap'' ORDER BY created_at, id',
    'pages of 4, oldest first, equal the plain ORDER BY');

-- versions ---------------------------------------------------------------------
SELECT is((SELECT count(*) FROM clips WHERE user_id = 'tap'
           AND version >> 20 = pg_current_xact_id()::text::bigint), 23::bigint,
          'every version carries the writing transaction id');
SELECT is((SELECT count(DISTINCT version) FROM clips WHERE user_id = 'tap'), 23::bigint,
          'versions are unique within the transaction');
UPDATE clips SET title = 'edited' WHERE user_id = 'tap' AND title = 'clip 1';
SELECT is((SELECT version & 1048575 FROM clips WHERE title = 'edited'), 24::bigint,
          'an update takes the next version of the transaction');
DELETE FROM clips WHERE title = 'edited';
SELECT is((SELECT version & 1048575 FROM clip_tombstones WHERE user_id = 'tap'), 25::bigint,
          'a hard delete leaves a tombstone with the next version');

-- the feed inside a writing transaction -------------------------------------------
SELECT is(dd_clip_changes('tap')->'changes', '[]'::jsonb,
          'a poll inside the writing transaction hands out none of its uncommitted changes');

SELECT * FROM finish();
ROLLBACK;
