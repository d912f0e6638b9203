--
-- test/pgtap/schema_credits.sql -- schema checks of the credit functions:
-- that each exists with its signature, result type, definer rights and
-- volatility, that PUBLIC can execute none of them, and the usage log's
-- balance_after column.  These only read the catalog; what the functions
-- do is in test/pgtap/credits.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(16);

SELECT has_composite('dd_charge');
SELECT has_function('dd_grant_credit', ARRAY['text', 'bigint', 'text', 'text']);
SELECT has_function('dd_charge_credit', ARRAY['text', 'bigint', 'text', 'text', 'bigint', 'jsonb']);
SELECT has_function('dd_refund_credit', ARRAY['text', 'text', 'text']);
SELECT has_function('dd_credit_balance', ARRAY['text']);
SELECT has_function('dd_credit_audit', ARRAY[]::text[]);
SELECT has_function('dd_log_usage', ARRAY['text', 'text', 'text', 'bigint', 'jsonb']);
SELECT function_returns('dd_charge_credit', ARRAY['text', 'bigint', 'text', 'text', 'bigint', 'jsonb'], 'dd_charge');
SELECT function_returns('dd_credit_audit', ARRAY[]::text[], 'setof record');
SELECT is_definer('dd_charge_credit', ARRAY['text', 'bigint', 'text', 'text', 'bigint', 'jsonb']);
SELECT is_definer('dd_grant_credit', ARRAY['text', 'bigint', 'text', 'text']);
SELECT is_definer('dd_refund_credit', ARRAY['text', 'text', 'text']);
SELECT volatility_is('dd_credit_balance', ARRAY['text'], 'stable');
SELECT volatility_is('dd_charge_credit', ARRAY['text', 'bigint', 'text', 'text', 'bigint', 'jsonb'], 'volatile');
SELECT is(
    (SELECT count(*)::int FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proname IN ('dd_grant_credit', 'dd_charge_credit', 'dd_refund_credit',
                         'dd_credit_balance', 'dd_credit_audit', 'dd_log_usage')
       AND has_function_privilege('public', p.oid, 'EXECUTE')),
    0, 'PUBLIC cannot execute any credit function');
SELECT has_column('api_usage_log', 'balance_after');

SELECT * FROM finish();
ROLLBACK;
