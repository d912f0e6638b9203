--
-- test/pgtap/schema_citus.sql -- schema checks of the scale-out functions
-- (version 1.1): dd_distribute() and dd_undistribute() exist, return void,
-- run with the caller's rights (Citus's functions check the caller), pin
-- their search_path, and PUBLIC may not execute them.  What they do on a
-- cluster is in test/citus/run.sh.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(8);

SELECT has_function('dd_distribute', ARRAY[]::text[]);
SELECT has_function('dd_undistribute', ARRAY[]::text[]);
SELECT function_returns('dd_distribute', ARRAY[]::text[], 'void');
SELECT function_returns('dd_undistribute', ARRAY[]::text[], 'void');
SELECT isnt_definer('dd_distribute', ARRAY[]::text[]);
SELECT isnt_definer('dd_undistribute', ARRAY[]::text[]);
SELECT is(
    (SELECT string_agg(p.proname || ':' || array_to_string(p.proconfig, ';'), ',' ORDER BY p.proname)
       FROM pg_proc p WHERE p.proname IN ('dd_distribute', 'dd_undistribute')),
    'dd_distribute:search_path=pg_catalog, pg_temp,dd_undistribute:search_path=pg_catalog, pg_temp',
    'both run with search_path pinned to pg_catalog, pg_temp');
SELECT is(
    (SELECT count(*)::int FROM pg_proc p
      WHERE p.proname IN ('dd_distribute', 'dd_undistribute')
        AND has_function_privilege('public', p.oid, 'EXECUTE')),
    0, 'PUBLIC may execute neither');

SELECT * FROM finish();
ROLLBACK;
