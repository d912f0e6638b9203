--
-- test/pgtap/schema_clips.sql -- schema checks of the clips objects: the
-- feed's tables and indexes, the triggers, the functions' volatility and
-- security, and that PUBLIC can execute none of them nor read the cursor
-- key.  These only read the catalog; what they do is in
-- test/pgtap/clips.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(14);

SELECT has_table('clip_tombstones');
SELECT col_is_pk('clip_tombstones', ARRAY['user_id', 'clip_id']);
SELECT has_index('clip_tombstones', 'clip_tombstones_user_id_version_idx');
SELECT has_index('clips', 'clips_user_id_version_idx', ARRAY['user_id', 'version']);
SELECT has_table('clip_cursor_key');
SELECT trigger_is('clips', 'clips_stamp', 'dd_clips_stamp');
SELECT trigger_is('clips', 'clips_publish', 'dd_clips_publish');
SELECT trigger_is('clips', 'clips_no_truncate', 'dd_clips_refuse_truncate');
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

SELECT * FROM finish();
ROLLBACK;
