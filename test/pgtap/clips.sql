--
-- test/pgtap/clips.sql -- what the clips objects do: one cursor key,
-- errors by SQLSTATE, pages equal to the plain ORDER BY, versions stamped
-- from the writing transaction, and a poll inside a writing transaction
-- never handing out its own uncommitted changes.  Tables, indexes,
-- triggers, volatility, security and privileges: test/pgtap/schema_clips.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(12);

-- objects -----------------------------------------------------------------
SELECT is((SELECT count(*) FROM clip_cursor_key WHERE octet_length(key) = 16), 1::bigint,
          'one 16-byte cursor key');

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
