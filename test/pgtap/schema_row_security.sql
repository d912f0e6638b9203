--
-- test/pgtap/schema_row_security.sql -- schema checks of row security by
-- signed claim and of the cursor key rotation (version 1.1): the
-- functions, who may execute them (PUBLIC only the three that verify and
-- read a claim), which run with their owner's rights, that the claim's
-- function is PARALLEL RESTRICTED, the key table (readable by nobody but
-- the owner, not dumped) and the policies that read the claim.  What they
-- do is in test/t/075_row_security.sh and test/t/076_cursor_key_rotation.sh.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(16);

SELECT has_function('dd_sign_claim', ARRAY['text', 'timestamp with time zone']);
SELECT has_function('dd_set_claim', ARRAY['text']);
SELECT has_function('dd_claim_user_id', ARRAY[]::text[]);
SELECT has_function('dd_clear_claim', ARRAY[]::text[]);
SELECT has_function('dd_rotate_claim_key', ARRAY[]::text[]);
SELECT has_function('dd_retire_claim_key', ARRAY['integer']);
SELECT has_function('dd_rotate_cursor_key', ARRAY['boolean']);
SELECT is_definer('dd_sign_claim', ARRAY['text', 'timestamp with time zone']);
SELECT is_definer('dd_set_claim', ARRAY['text']);
SELECT isnt_definer('dd_claim_user_id', ARRAY[]::text[]);
SELECT is(
    (SELECT proparallel::text FROM pg_proc WHERE oid = 'dd_claim_user_id()'::regprocedure),
    'r', 'dd_claim_user_id is PARALLEL RESTRICTED (the claim lives in the leader)');
SELECT is(
    (SELECT string_agg(p.proname::text, ',' ORDER BY p.proname::text COLLATE "C")
       FROM pg_proc p
      WHERE p.proname LIKE 'dd\_%' AND has_function_privilege('public', p.oid, 'EXECUTE')),
    'dd_claim_user_id,dd_clear_claim,dd_set_claim',
    'PUBLIC executes only the three functions that verify and read a claim');
SELECT has_table('row_security_keys');
SELECT ok(NOT has_table_privilege('public', 'row_security_keys', 'SELECT'),
          'PUBLIC cannot read the row security keys');
SELECT is(
    (SELECT count(*)::int FROM pg_policy
      WHERE pg_get_expr(polqual, polrelid) LIKE '%dd_claim_user_id()%'),
    5, 'the five policies compare user_id with dd_claim_user_id()');
SELECT is(
    (SELECT count(*)::int FROM pg_policy
      WHERE pg_get_expr(polqual, polrelid) LIKE '%current_setting%'
         OR pg_get_expr(polwithcheck, polrelid) LIKE '%current_setting%'),
    0, 'no policy reads a setting');

SELECT * FROM finish();
ROLLBACK;
