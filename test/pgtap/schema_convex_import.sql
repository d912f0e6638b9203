--
-- test/pgtap/schema_convex_import.sql -- schema checks of the Convex import
-- (version 1.1): dd_convex_import_table's signature and result, that it
-- runs with its caller's rights behind a fixed search_path and that PUBLIC
-- cannot execute it, the two bookkeeping tables (keys, registered with
-- pg_dump, nothing granted to PUBLIC), the mapping view, and the
-- dd_clipper.legacy_keys setting.  What the import does is in
-- test/t/080_convex_import.sh.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(17);

SELECT has_function('dd_convex_import_table', ARRAY['text', 'regclass']);
SELECT function_returns('dd_convex_import_table', ARRAY['text', 'regclass'], 'jsonb');
SELECT is(
    (SELECT pg_get_function_identity_arguments('dd_convex_import_table(text,regclass)'::regprocedure)),
    'table_name text, documents regclass',
    'dd_convex_import_table takes its parameters by name');
SELECT isnt_definer('dd_convex_import_table', ARRAY['text', 'regclass']);
SELECT is(
    (SELECT proconfig FROM pg_proc WHERE oid = 'dd_convex_import_table(text,regclass)'::regprocedure),
    ARRAY['search_path=pg_catalog, pg_temp'],
    'dd_convex_import_table runs with search_path pg_catalog, pg_temp');
SELECT ok(NOT has_function_privilege('public', 'dd_convex_import_table(text,regclass)', 'EXECUTE'),
    'PUBLIC cannot execute dd_convex_import_table');
SELECT has_table('convex_unmapped');
SELECT col_is_pk('convex_unmapped', ARRAY['user_id', 'table_name', 'convex_id']);
SELECT col_type_is('convex_unmapped', 'fields', 'jsonb');
SELECT has_table('convex_opening_balances');
SELECT col_is_pk('convex_opening_balances', 'user_id');
SELECT set_eq(
    $$SELECT c::regclass::text FROM pg_extension, unnest(extconfig) c WHERE extname = 'dd_clipper'
      AND c::regclass::text IN ('convex_unmapped', 'convex_opening_balances')$$,
    ARRAY['convex_unmapped', 'convex_opening_balances'],
    'both bookkeeping tables are registered with pg_extension_config_dump');
SELECT ok(NOT has_table_privilege('public', 'convex_unmapped', 'SELECT')
      AND NOT has_table_privilege('public', 'convex_opening_balances', 'SELECT'),
    'PUBLIC cannot read the imported unknown fields or opening balances');
SELECT has_view('dd_convex_mapping');
SELECT columns_are('dd_convex_mapping', ARRAY['convex_table', 'convex_field', 'target_table', 'target_column', 'conversion']);
SELECT is((SELECT count(*) FROM dd_convex_mapping WHERE convex_field = 'legacyRating'), 0::bigint,
    'the mapping names no field it does not read (unknown ones go to convex_unmapped)');
SELECT is(current_setting('dd_clipper.legacy_keys'), 'off', 'dd_clipper.legacy_keys is off by default');

SELECT * FROM finish();
ROLLBACK;
