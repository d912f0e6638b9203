-- The bare indexed SELECT by hash (hash computed in the app; no checks, no touch).
\set k random(1, :nkeys)
SELECT id, user_id, revoked_at, expires_at, last_used_at
FROM api_keys WHERE key_hash = (SELECT key_hash FROM bench_keys WHERE k = :k);
