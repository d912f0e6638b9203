--
-- test/pgtap/schema_migrations.sql -- schema checks of the migrations
-- (version 1.1): the functions' signatures and result types, that they run
-- with their caller's rights (SECURITY INVOKER: a migration's batches must
-- never get the extension owner's), that PUBLIC can execute none of them,
-- the bookkeeping table (registered with pg_dump) and the progress view.
-- What the functions do is in sql/migrations.sql, specs/migrations_*.spec
-- and test/t/016_migrations_worker.sh.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(19);

SELECT has_function('dd_migration_create', ARRAY['text', 'regclass', 'text', 'text', 'integer', 'text', 'boolean']);
SELECT function_returns('dd_migration_create', ARRAY['text', 'regclass', 'text', 'text', 'integer', 'text', 'boolean'], 'void');
SELECT has_function('dd_migration_run', ARRAY['text', 'integer']);
SELECT has_function('dd_migration_start', ARRAY['text']);
SELECT function_returns('dd_migration_start', ARRAY['text'], 'integer');
SELECT has_function('dd_migration_cancel', ARRAY['text']);
SELECT function_returns('dd_migration_cancel', ARRAY['text'], 'boolean');
SELECT has_function('dd_migration_drop', ARRAY['text']);
SELECT has_function('dd_migration_dry_run', ARRAY['text']);
SELECT function_returns('dd_migration_dry_run', ARRAY['text'], 'jsonb');
SELECT has_function('dd_migration_remaining', ARRAY['text']);
SELECT has_function('dd_grant_migration_role', ARRAY['name']);
SELECT is(
    (SELECT pg_get_function_identity_arguments('dd_migration_create(text,regclass,text,text,integer,text,boolean)'::regprocedure)),
    'name text, relation regclass, set_sql text, where_sql text, batch_size integer, run_after text, keep_in_step boolean',
    'dd_migration_create takes its parameters by the names DESIGN.md gives');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
      WHERE p.proname LIKE 'dd\_migration\_%' AND p.prosecdef$$,
    'no migration function runs with its owner''s rights');
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
      WHERE (p.proname LIKE 'dd\_migration\_%' OR p.proname = 'dd_grant_migration_role')
        AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC cannot execute any migration function');
SELECT has_table('migrations');
SELECT col_is_pk('migrations', 'name');
SELECT has_view('dd_migration_progress');
SELECT columns_are('dd_migration_progress', ARRAY[
    'name', 'relation', 'status', 'processed', 'remaining', 'rows_per_second', 'eta',
    'batches', 'passes', 'error', 'runner_pid', 'run_after', 'keep_in_step',
    'created_at', 'started_at', 'updated_at', 'completed_at']);

SELECT * FROM finish();
ROLLBACK;
