--
-- test/pgtap/schema_api_keys.sql -- schema checks of the API key
-- functions: signatures by type, parameter names (callers use named
-- notation), result types and their fields, definer rights, volatility,
-- and that PUBLIC can execute none of them.  These only read the catalog;
-- what the functions do is in test/pgtap/api_keys.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(17);

SELECT has_function('dd_create_api_key', ARRAY['text', 'text', 'timestamp with time zone']);
SELECT has_function('dd_verify_api_key', ARRAY['text']);
SELECT has_function('dd_revoke_api_key', ARRAY['bigint']);
SELECT has_function('dd_authorize_and_charge', ARRAY['text', 'bigint', 'text', 'text', 'jsonb']);
SELECT results_eq(
    $$SELECT proname::text COLLATE "C", proargnames::text COLLATE "C" FROM pg_proc
      WHERE proname IN ('dd_create_api_key', 'dd_verify_api_key', 'dd_revoke_api_key',
                        'dd_authorize_and_charge')
      ORDER BY proname COLLATE "C"$$,
    $$VALUES ('dd_authorize_and_charge' COLLATE "C", '{api_key,amount,request_id,endpoint,metadata}' COLLATE "C"),
             ('dd_create_api_key', '{user_id,name,expires_at,key_id,api_key}'),
             ('dd_revoke_api_key', '{key_id}'),
             ('dd_verify_api_key', '{api_key}')$$,
    'parameter names are the contract of DESIGN.md');
SELECT function_returns('dd_verify_api_key', ARRAY['text'], 'dd_key_check');
SELECT function_returns('dd_revoke_api_key', ARRAY['bigint'], 'boolean');
SELECT function_returns('dd_authorize_and_charge', ARRAY['text', 'bigint', 'text', 'text', 'jsonb'], 'dd_authorization');
SELECT has_composite('dd_key_check');
SELECT has_composite('dd_authorization');
SELECT results_eq(
    $$SELECT attname::text COLLATE "C" FROM pg_attribute
      WHERE attrelid = 'dd_authorization'::regclass AND attnum > 0 ORDER BY attnum$$,
    $$VALUES ('valid' COLLATE "C"), ('code'), ('key_id'), ('user_id'), ('ok'), ('balance'), ('usage_id'), ('replayed')$$,
    'dd_authorization has the fields of DESIGN.md, in order');
SELECT is_definer('dd_create_api_key', ARRAY['text', 'text', 'timestamp with time zone']);
SELECT is_definer('dd_verify_api_key', ARRAY['text']);
SELECT is_definer('dd_revoke_api_key', ARRAY['bigint']);
SELECT is_definer('dd_authorize_and_charge', ARRAY['text', 'bigint', 'text', 'text', 'jsonb']);
SELECT volatility_is('dd_verify_api_key', ARRAY['text'], 'volatile');
SELECT is_empty(
    $$SELECT proname FROM pg_proc
      WHERE proname IN ('dd_create_api_key', 'dd_verify_api_key', 'dd_revoke_api_key',
                        'dd_authorize_and_charge')
        AND has_function_privilege('public', oid, 'EXECUTE')$$,
    'no key function is executable by PUBLIC');

SELECT * FROM finish();
ROLLBACK;
