-- What a middleware sends for the same work: look the key up by its hash
-- (computed in the app), check it, charge, log, touch last_used_at when due
-- -- separate statements in one transaction, deciding in the app between them.
\set k random(1, :nkeys)
\set r random(1, 1000000000000000)
BEGIN;
SELECT id AS key_id, user_id,
       (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))::int AS key_ok,
       (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')::int AS due
FROM api_keys WHERE key_hash = (SELECT key_hash FROM bench_keys WHERE k = :k) \gset
\if :key_ok
UPDATE api_credits SET balance = balance - 1, updated_at = now()
WHERE user_id = :user_id AND balance >= 1 RETURNING balance \gset
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, api_key_id, balance_after)
VALUES (:user_id, :r, '/v1/clip', 1, :key_id, :balance);
\if :due
UPDATE api_keys SET last_used_at = now()
WHERE id = :key_id AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds');
\endif
\endif
COMMIT;
