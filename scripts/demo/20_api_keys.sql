-- API keys: create one, verify it, charge through it, and see what a
-- malformed and a revoked key get.
\echo
\echo '==> create an API key: the only time its text exists'
SELECT key_id, api_key FROM dd_create_api_key(user_id => 'user_keys', name => 'demo laptop') \gset
SELECT :key_id AS key_id, :'api_key' AS api_key;

\echo '==> the table keeps only its SHA-256 and a display prefix'
SELECT id, user_id, name, prefix, encode(key_hash, 'hex') AS key_hash
FROM api_keys WHERE id = :key_id;

\echo '==> verify it'
SELECT * FROM dd_verify_api_key(:'api_key');

\echo '==> charge through it: verify, charge and log in one call'
SELECT dd_grant_credit(user_id => 'user_keys', amount => 10) AS balance;
SELECT * FROM dd_authorize_and_charge(:'api_key', amount => 3, request_id => 'keys-demo-1', endpoint => '/v1/clip');

\echo '==> the same request_id again: replayed, not charged twice'
SELECT * FROM dd_authorize_and_charge(:'api_key', amount => 3, request_id => 'keys-demo-1', endpoint => '/v1/clip');

\echo '==> amount 0 checks without spending; more than the balance is refused'
SELECT * FROM dd_authorize_and_charge(:'api_key', amount => 0);
SELECT * FROM dd_authorize_and_charge(:'api_key', amount => 50, request_id => 'keys-demo-2');

\echo '==> the usage log: one row, with the key that paid'
SELECT request_id, endpoint, credits, api_key_id FROM api_usage_log
WHERE user_id = 'user_keys' ORDER BY id;

\echo '==> one character changed: MALFORMED, decided by the checksum without reading a table'
SELECT * FROM dd_verify_api_key(
    overlay(:'api_key' PLACING CASE WHEN substr(:'api_key', 20, 1) = 'A' THEN 'B' ELSE 'A' END
            FROM 20 FOR 1));
SELECT * FROM dd_verify_api_key('hello');

\echo '==> revoke it: verification and charging answer REVOKED, nothing is charged'
SELECT dd_revoke_api_key(:key_id) AS revoked;
SELECT * FROM dd_verify_api_key(:'api_key');
SELECT * FROM dd_authorize_and_charge(:'api_key', amount => 1, request_id => 'keys-demo-3');
SELECT dd_credit_balance('user_keys') AS balance;
