--
-- test/pgtap/api_keys.sql -- what the API key functions do: invariants of
-- the key table after many keys (one SHA-256 per key, distinct, the display
-- prefix, no plaintext), each key's life (VALID, REVOKED, MALFORMED) and
-- the charge through it, checked against literal expectations.
-- Signatures, parameter names, result types, definer rights and privileges:
-- test/pgtap/schema_api_keys.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(17);

-- many keys: the table's invariants -------------------------------------
CREATE TEMP TABLE made AS
SELECT i, c.key_id, c.api_key
FROM generate_series(1, 200) i, LATERAL dd_create_api_key('tap_user_' || (i % 7), 'key ' || i) c;

SELECT is((SELECT count(DISTINCT api_key) FROM made), 200::bigint, '200 keys, all distinct');
SELECT is_empty(
    $$SELECT api_key FROM made WHERE api_key !~ '^ddk_[0-9A-Za-z]{49}$'$$,
    'every key has the documented shape');
SELECT is_empty(
    $$SELECT m.key_id FROM made m JOIN api_keys a ON a.id = m.key_id
      WHERE a.key_hash <> sha256(convert_to(m.api_key, 'UTF8'))
         OR a.prefix <> left(m.api_key, 12)
         OR a.name <> 'key ' || m.i$$,
    'every row holds its key''s SHA-256, display prefix and name');
SELECT is_empty(
    $$SELECT m.key_id FROM made m, api_keys a
      WHERE strpos(a::text, substr(m.api_key, 13)) > 0$$,
    'no row of api_keys holds any key''s secret part');
SELECT is((SELECT count(DISTINCT key_hash) FROM api_keys), 200::bigint, 'key hashes are distinct');

-- every one verifies, revoked ones do not ---------------------------------
SELECT is(
    (SELECT count(*) FROM made m, LATERAL dd_verify_api_key(m.api_key) v
     WHERE v.valid AND v.code = 'VALID' AND v.key_id = m.key_id
       AND v.user_id = 'tap_user_' || (m.i % 7)),
    200::bigint, 'every key verifies as VALID with its own id and user');
SELECT is(
    (SELECT count(*) FILTER (WHERE dd_revoke_api_key(key_id)) FROM made WHERE i % 2 = 0),
    100::bigint, 'revoking half of them: each revoke returns true');
SELECT results_eq(
    $$SELECT v.code, count(*) FROM made m, LATERAL dd_verify_api_key(m.api_key) v
      GROUP BY v.code ORDER BY v.code COLLATE "C"$$,
    $$VALUES ('REVOKED'::text, 100::bigint), ('VALID', 100)$$,
    'the revoked half answers REVOKED, the rest VALID');
SELECT is(
    (SELECT count(*) FILTER (WHERE dd_revoke_api_key(key_id)) FROM made WHERE i % 2 = 0),
    0::bigint, 'revoking them again returns false');
SELECT is(
    (SELECT count(*) FROM made m, LATERAL dd_verify_api_key(substr(m.api_key, 2) || 'x') v
     WHERE v.code = 'MALFORMED' AND v.key_id IS NULL),
    200::bigint, 'every key shifted by one character is MALFORMED');

-- charging through a key -------------------------------------------------
SELECT is(dd_grant_credit('tap_payer', 5), 5::bigint, 'the payer has 5 credits');
CREATE TEMP TABLE payer AS SELECT * FROM dd_create_api_key('tap_payer');
SELECT results_eq(
    $$SELECT code, ok, balance, replayed
      FROM payer, LATERAL dd_authorize_and_charge(payer.api_key, 2, 'tap-1')
      UNION ALL
      SELECT code, ok, balance, replayed
      FROM payer, LATERAL dd_authorize_and_charge(payer.api_key, 2, 'tap-1')$$,
    $$VALUES ('VALID'::text, true, 3::bigint, false), ('VALID', true, 3, true)$$,
    'a charge, then its replay');
SELECT results_eq(
    $$SELECT user_id, request_id, credits, api_key_id = (SELECT key_id FROM payer)
      FROM api_usage_log WHERE user_id = 'tap_payer'$$,
    $$VALUES ('tap_payer'::text, 'tap-1'::text, 2::bigint, true)$$,
    'one usage row, with the key that paid');
SELECT results_eq(
    $$SELECT valid, code, balance
      FROM payer, LATERAL dd_authorize_and_charge(payer.api_key, 4, 'tap-2')$$,
    $$VALUES (false, 'INSUFFICIENT_CREDITS'::text, 3::bigint)$$,
    'more than the balance: INSUFFICIENT_CREDITS');
SELECT throws_ok(
    $$SELECT dd_authorize_and_charge('x', -1)$$,
    '22023', 'amount must be zero or positive', 'a negative amount is an error, whatever the key');
SELECT throws_ok(
    $$SELECT dd_revoke_api_key(-1)$$,
    'P0002', 'key_id -1 does not exist', 'revoking an unknown key is an error');
SELECT is_empty($$SELECT * FROM dd_credit_audit()$$, 'the ledger balances');

SELECT * FROM finish();
ROLLBACK;
