-- bench/api_keys/setup.sql -- the data every contender works on.
-- :nkeys keys, each of its own user with a balance that never runs out.
-- bench_keys holds each key's text (for dd_authorize_and_charge and the
-- PL/pgSQL version) and its SHA-256 (what a middleware computes itself), so
-- every contender picks its key with the same indexed subquery.
CREATE EXTENSION dd_clipper;

CREATE TABLE bench_keys (
    k        int PRIMARY KEY,
    user_id  text NOT NULL,
    key_id   bigint NOT NULL,
    api_key  text NOT NULL,
    key_hash bytea NOT NULL
);
INSERT INTO bench_keys
SELECT i, 'user_' || i, c.key_id, c.api_key, sha256(convert_to(c.api_key, 'UTF8'))
FROM generate_series(1, :nkeys) i, LATERAL dd_create_api_key('user_' || i, 'bench') c;
SELECT count(dd_grant_credit(user_id, 1000000000)) AS users_granted FROM bench_keys;

-- The same work as dd_authorize_and_charge, in PL/pgSQL: look the key up by
-- hash, check it, touch last_used_at when due, charge with the request
-- id's idempotency, log.  It checks only the key's shape, not its checksum
-- (less work than the C function does).
CREATE FUNCTION bench_authorize_plpgsql(
    p_key text, p_amount bigint DEFAULT 1, p_request_id text DEFAULT NULL,
    p_endpoint text DEFAULT NULL, p_metadata jsonb DEFAULT NULL)
RETURNS dd_authorization
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    prior record;
    r dd_authorization;
    b bigint;
    uid bigint;
BEGIN
    r := ROW(false, 'MALFORMED', NULL, NULL, false, NULL, NULL, false)::dd_authorization;
    IF p_key IS NULL OR length(p_key) <> 53 OR left(p_key, 4) <> 'ddk_' THEN
        RETURN r;
    END IF;
    SELECT id, user_id, revoked_at, expires_at, last_used_at INTO k
    FROM api_keys WHERE key_hash = sha256(convert_to(p_key, 'UTF8'));
    IF NOT FOUND THEN
        r.code := 'NOT_FOUND';
        RETURN r;
    END IF;
    r.key_id := k.id;
    r.user_id := k.user_id;
    IF k.revoked_at IS NOT NULL THEN
        r.code := 'REVOKED';
        RETURN r;
    ELSIF k.expires_at <= now() THEN
        r.code := 'EXPIRED';
        RETURN r;
    END IF;
    IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '60 seconds' THEN
        UPDATE api_keys SET last_used_at = now()
        WHERE id = k.id AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds');
    END IF;
    IF p_request_id IS NOT NULL THEN
        SELECT id, balance_after INTO prior FROM api_usage_log
        WHERE user_id = k.user_id AND request_id = p_request_id;
        IF FOUND THEN
            RETURN ROW(true, 'VALID'::text, k.id, k.user_id, true, prior.balance_after, prior.id, true)::dd_authorization;
        END IF;
    END IF;
    UPDATE api_credits SET balance = balance - p_amount, updated_at = now()
    WHERE user_id = k.user_id AND balance >= p_amount
    RETURNING balance INTO b;
    IF NOT FOUND THEN
        r.code := 'INSUFFICIENT_CREDITS';
        RETURN r;
    END IF;
    INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, api_key_id, metadata, balance_after)
    VALUES (k.user_id, p_request_id, p_endpoint, p_amount, k.id, p_metadata, b)
    RETURNING id INTO uid;
    RETURN ROW(true, 'VALID'::text, k.id, k.user_id, true, b, uid, false)::dd_authorization;
END $$;

VACUUM ANALYZE;
