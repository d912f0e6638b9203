--
-- Migrations: backfills in batches (dd_migration_create, CALL
-- dd_migration_run, dd_migration_dry_run, dd_migration_cancel,
-- dd_migration_drop, the progress view).  The background worker, its
-- privileges and its crashes are in test/t/016_migrations_worker.sh; one
-- runner at a time and cancel mid-batch in specs/migrations_*.spec.
--
CREATE EXTENSION dd_clipper;
\set VERBOSITY default

-- A table keyed like the extension's own: (user_id, id).
CREATE TABLE notes (
    user_id text NOT NULL,
    id      bigint NOT NULL,
    title   text NOT NULL,
    slug    text,
    PRIMARY KEY (user_id, id)
);
INSERT INTO notes SELECT 'u' || (g % 3), g, 'Note ' || g FROM generate_series(1, 250) g;

--
-- dd_migration_create checks everything when it is created.
--
CREATE TABLE no_key (a int, b int);
SELECT dd_migration_create('m', 'no_key', 'b = a', 'b IS NULL');
CREATE VIEW notes_view AS SELECT * FROM notes;
SELECT dd_migration_create('m', 'notes_view', 'slug = title', 'slug IS NULL');
SELECT dd_migration_create('m', 'pg_class', 'relname = relname', 'false');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL', 0);
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL', -5);
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL', NULL);
SELECT dd_migration_create(NULL, 'notes', 'slug = title', 'slug IS NULL');
SELECT dd_migration_create('', 'notes', 'slug = title', 'slug IS NULL');
SELECT dd_migration_create(repeat('n', 201), 'notes', 'slug = title', 'slug IS NULL');
SELECT dd_migration_create('m', NULL, 'slug = title', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', NULL, 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', '');
-- Each expression must be what it says, and nothing more.
SELECT dd_migration_create('m', 'notes', 'slug = title WHERE false', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title RETURNING 1', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title; DROP TABLE notes', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL; DROP TABLE notes');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL) OR (true');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'true UNION SELECT 1');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL ORDER BY 1');
-- (a trailing comment ends with its line: it cannot reach past it)
SELECT dd_migration_create('commented', 'notes', 'slug = title', 'slug IS NULL -- comment');
SELECT dd_migration_drop('commented');
SELECT dd_migration_create('m', 'notes', 'slug = $1', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'id > $2');
-- Names and types are checked, each against its argument.
SELECT dd_migration_create('m', 'notes', 'slug = no_such_column', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'no_such_column IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'id');
SELECT dd_migration_create('m', 'notes', 'id = 1', 'slug IS NULL');
SELECT dd_migration_create('m', 'notes', 'slug = title', 'slug IS NULL', run_after => 'nope');
SELECT count(*) AS migrations_after_errors FROM migrations;

-- A composite primary key is walked in key order: (user_id, id).
SELECT dd_migration_create('slugs', 'notes',
    $$slug = lower(replace(title, ' ', '-'))$$, 'slug IS NULL', 100);
SELECT dd_migration_create('slugs', 'notes', 'slug = title', 'slug IS NULL');
SELECT name, relation, key_columns, batch_size, status, processed, cursor
FROM migrations;

--
-- A dry run shows the next batch's changes and leaves nothing behind.
--
SELECT d -> 'rows' AS rows, d -> 'still_selected' AS still_selected,
       jsonb_array_length(d -> 'changes') AS changes, d -> 'changes' -> 0 AS first
FROM dd_migration_dry_run('slugs') d;
SELECT count(*) AS still_null FROM notes WHERE slug IS NULL;
SELECT status, processed, batches FROM dd_migration_progress;

--
-- CALL dd_migration_run commits after every batch and can stop and resume.
--
BEGIN;
CALL dd_migration_run('slugs');
ROLLBACK;
CALL dd_migration_run('slugs', 0);
-- dd_clipper.migration_batch_pause waits between batches: one pause here,
-- between the two (none after the last batch of a run).
SET dd_clipper.migration_batch_pause = '300ms';
SELECT clock_timestamp() AS t0 \gset
CALL dd_migration_run('slugs', 2);
SELECT clock_timestamp() - :'t0' >= interval '300ms' AS paused_between_batches;
RESET dd_clipper.migration_batch_pause;
-- At most a minute, never negative (22023; the message varies by version).
DO $$
DECLARE v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['61s', '-1', 'soon'] LOOP
        BEGIN
            PERFORM set_config('dd_clipper.migration_batch_pause', v, false);
            RAISE NOTICE '% accepted', v;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE NOTICE '% refused: %', v, SQLSTATE;
        END;
    END LOOP;
END
$$;
SHOW dd_clipper.migration_batch_pause;
SELECT status, processed, batches, passes, remaining >= 0 AS has_estimate
FROM dd_migration_progress;
SELECT cursor FROM migrations;
-- Exactly the first 200 keys in (user_id, id) order were done, up to the cursor.
SELECT count(*) FILTER (WHERE slug IS NOT NULL) AS done,
       bool_and(slug IS NOT NULL) FILTER (WHERE (user_id, id) <= (c[1], c[2]::bigint)) AS all_done_up_to_cursor,
       bool_and(slug IS NULL) FILTER (WHERE (user_id, id) > (c[1], c[2]::bigint)) AS none_after
FROM notes, (SELECT cursor AS c FROM migrations WHERE name = 'slugs') m;
-- Rows written behind the cursor meanwhile are found by the final check.
INSERT INTO notes VALUES ('u0', 0, 'Written Behind');
CALL dd_migration_run('slugs');
SELECT status, processed, batches, passes, remaining, eta, error
FROM dd_migration_progress;
SELECT count(*) FILTER (WHERE slug IS NULL) AS left_over,
       count(*) FILTER (WHERE slug = lower(replace(title, ' ', '-'))) AS migrated
FROM notes;
-- Running a completed migration again re-scans and changes nothing.
CALL dd_migration_run('slugs');
SELECT status, processed, passes FROM dd_migration_progress;

--
-- A SET list that leaves its rows selected would never complete: the
-- batch is rolled back and the migration fails, with the error recorded.
--
SELECT dd_migration_create('never', 'notes', 'title = title', 'true', 50);
CALL dd_migration_run('never');
SELECT name, status, processed, error FROM dd_migration_progress WHERE name = 'never';

--
-- The expressions run with the search_path of dd_migration_create.
--
CREATE SCHEMA evil;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$SELECT 'EVIL'$$;
UPDATE notes SET slug = NULL WHERE user_id = 'u2';
SELECT dd_migration_create('again', 'notes',
    $$slug = lower(replace(title, ' ', '-'))$$, 'slug IS NULL');
SET search_path = evil, pg_catalog, public;
CALL public.dd_migration_run('again');
RESET search_path;
SELECT count(*) FILTER (WHERE slug = 'EVIL') AS evil, count(*) FILTER (WHERE slug IS NULL) AS left_over
FROM notes;

--
-- Migrations in order: the second starts when the first completes.
--
ALTER TABLE notes ADD COLUMN title_length int, ADD COLUMN shout text;
SELECT dd_migration_create('length', 'notes', 'title_length = length(title)', 'title_length IS NULL', 100);
SELECT dd_migration_create('shout', 'notes', $$shout = upper(title) || ' ' || title_length$$,
    'shout IS NULL', 100, run_after => 'length');
CALL dd_migration_run('shout');
CALL dd_migration_run('length');
SELECT name, status, processed FROM dd_migration_progress WHERE name IN ('length', 'shout') ORDER BY name;
SELECT count(*) FILTER (WHERE shout = upper(title) || ' ' || length(title)) AS shouted FROM notes;
SELECT dd_migration_drop('length');

--
-- keep_in_step: while a migration runs (or is paused), rows other writers
-- insert or update get the same SET list; its triggers go when it ends.
--
ALTER TABLE notes ADD COLUMN title_upper text;
SELECT dd_migration_create('upper', 'notes', 'title_upper = upper(title)',
    'title_upper IS DISTINCT FROM upper(title)', 100, keep_in_step => true);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND NOT tgisinternal ORDER BY 1;
CALL dd_migration_run('upper', 1);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND NOT tgisinternal ORDER BY 1;
INSERT INTO notes (user_id, id, title) VALUES ('u9', 1, 'new while paused');
UPDATE notes SET title = 'renamed' WHERE user_id = 'u2' AND id = 2;
SELECT user_id, id, title, title_upper FROM notes
WHERE (user_id, id) IN (('u9', 1), ('u2', 2)) ORDER BY 1, 2;
CALL dd_migration_run('upper');
SELECT status FROM dd_migration_progress WHERE name = 'upper';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT count(*) AS not_upper FROM notes WHERE title_upper IS DISTINCT FROM upper(title);
-- keep_in_step needs the table's owner (it adds and drops triggers).
CREATE ROLE dd_mig_user;
SELECT dd_grant_migration_role('dd_mig_user');
GRANT SELECT, UPDATE ON notes TO dd_mig_user;
SET ROLE dd_mig_user;
SELECT dd_migration_create('owned', 'notes', 'slug = title', 'slug IS NULL', keep_in_step => true);

--
-- Privileges: the batches run as the caller.
--
SELECT dd_migration_create('mine', 'notes', 'slug = title', 'slug IS NULL');
RESET ROLE;
REVOKE UPDATE ON notes FROM dd_mig_user;
UPDATE notes SET slug = NULL;
SET ROLE dd_mig_user;
SELECT dd_migration_create('no_update', 'notes', 'slug = title', 'slug IS NULL');
-- Another role's migration is not this role's to run, cancel or drop.
CALL dd_migration_run('upper');
SELECT dd_migration_cancel('upper');
SELECT dd_migration_drop('upper');
SELECT dd_migration_dry_run('upper');
-- Its own migration, after its UPDATE right was revoked: a failed run,
-- and not one row changed.
CALL dd_migration_run('mine');
RESET ROLE;
SELECT name, status, processed, error FROM dd_migration_progress WHERE name = 'mine';
SELECT count(*) AS changed FROM notes WHERE slug IS NOT NULL;
SELECT dd_grant_migration_role(NULL);
SELECT dd_grant_migration_role('no_such_role');

--
-- Cancel, and dropping.
--
SELECT dd_migration_cancel('upper');
SELECT dd_migration_cancel('never');
SELECT dd_migration_cancel('never');
SELECT dd_migration_cancel('no_such_migration');
SELECT dd_migration_drop('no_such_migration');
SELECT name, status FROM dd_migration_progress ORDER BY name;
SELECT dd_migration_drop('never');
SELECT count(*) AS migrations FROM migrations;

DROP EXTENSION dd_clipper;
DROP TABLE notes, no_key CASCADE;
DROP SCHEMA evil CASCADE;
DROP OWNED BY dd_mig_user;
DROP ROLE dd_mig_user;
