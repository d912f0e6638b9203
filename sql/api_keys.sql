--
-- api_keys: dd_create_api_key, dd_verify_api_key, dd_revoke_api_key and
-- dd_authorize_and_charge.  Every verification code, every malformed shape
-- (answered without table access), the plaintext nowhere in api_keys,
-- last_used_at written at most once per interval, every argument error with
-- its SQLSTATE, a hostile search_path and a low-privilege role.
--
CREATE EXTENSION dd_clipper;

-- try(sql): 'ok', or the SQLSTATE and message of the error sql raised.
CREATE FUNCTION regress_try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

------------------------------------------------------------------------
-- Creating keys
------------------------------------------------------------------------

SELECT key_id AS k1_id, api_key AS k1 FROM dd_create_api_key('user_a', 'laptop') \gset
SELECT key_id AS k2_id, api_key AS k2 FROM dd_create_api_key(user_id => 'user_b') \gset

-- The documented shape: ddk_, 43 base62 digits, 6 checksum digits.
SELECT length(:'k1') AS length,
       :'k1' ~ '^ddk_[0-9A-Za-z]{49}$' AS shape_ok,
       :'k1' <> :'k2' AS distinct_keys;

-- The row holds the SHA-256 of the key and a 12-character display prefix.
SELECT a.id, a.user_id, a.name, a.prefix = left(k.key, 12) AS prefix_is_key_start,
       length(a.prefix) AS prefix_length,
       a.key_hash = sha256(convert_to(k.key, 'UTF8')) AS hash_is_sha256,
       a.last_used_at, a.expires_at, a.revoked_at
FROM api_keys a JOIN (VALUES (:k1_id, :'k1'), (:k2_id, :'k2')) AS k(id, key) ON k.id = a.id
ORDER BY a.id;

-- The plaintext is nowhere in api_keys: not the key, not its secret part
-- (what follows the display prefix), in no column, as text or as bytes.
SELECT count(*) AS rows_holding_plaintext
FROM api_keys a, (VALUES (:'k1'), (:'k2')) AS k(key)
WHERE strpos(a::text, k.key) > 0
   OR strpos(a::text, substr(k.key, 13)) > 0
   OR strpos(a::text, encode(convert_to(substr(k.key, 13), 'UTF8'), 'hex')) > 0
   OR position(convert_to(substr(k.key, 13, 8), 'UTF8') IN a.key_hash) > 0;

------------------------------------------------------------------------
-- Every verification code
------------------------------------------------------------------------

-- VALID, with the key's id and user.
SELECT * FROM dd_verify_api_key(:'k1');
SELECT * FROM dd_verify_api_key(api_key => :'k2');

-- NOT_FOUND: well formed (checksum right), but no such key.  This is the
-- key of 32 zero bytes.
SELECT * FROM dd_verify_api_key('ddk_00000000000000000000000000000000000000000002TEw9T');

-- EXPIRED: a key whose expiry has passed (time is moved by hand).
SELECT key_id AS k3_id, api_key AS k3
FROM dd_create_api_key('user_c', 'short-lived', now() + interval '1 hour') \gset
SELECT * FROM dd_verify_api_key(:'k3');
UPDATE api_keys SET expires_at = now() - interval '1 second', last_used_at = NULL
WHERE id = :k3_id;
SELECT * FROM dd_verify_api_key(:'k3');
-- An expired key is not "used": last_used_at stays NULL.
SELECT last_used_at IS NULL AS not_touched FROM api_keys WHERE id = :k3_id;

-- REVOKED: the first revoke returns true, the second false.
SELECT key_id AS k4_id, api_key AS k4 FROM dd_create_api_key('user_d') \gset
SELECT dd_revoke_api_key(:k4_id) AS revoked;
SELECT dd_revoke_api_key(key_id => :k4_id) AS revoked_again;
SELECT * FROM dd_verify_api_key(:'k4');
SELECT revoked_at IS NOT NULL AS has_revoked_at FROM api_keys WHERE id = :k4_id;
-- Revoked and expired: REVOKED (the deliberate act wins).
SELECT dd_revoke_api_key(:k3_id) AS revoked;
SELECT * FROM dd_verify_api_key(:'k3');

-- Expired and not revoked, for the hostile search_path below.
SELECT key_id AS k8_id, api_key AS k8 FROM dd_create_api_key('user_h', NULL, 'infinity') \gset
UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE id = :k8_id;
SELECT * FROM dd_verify_api_key(:'k8');

-- MALFORMED: see the next section.
SELECT * FROM dd_verify_api_key('not a key');

------------------------------------------------------------------------
-- Every malformed shape is MALFORMED, never an error
------------------------------------------------------------------------

CREATE TEMP TABLE shapes (shape text, key text);
-- every position changed to another base62 character (53 keys)
INSERT INTO shapes
SELECT 'one character changed',
       overlay(:'k1' PLACING CASE WHEN substr(:'k1', i, 1) = 'a' THEN 'b' ELSE 'a' END
               FROM i FOR 1)
FROM generate_series(1, 53) i;
-- every position changed to a character outside base62 (53 keys)
INSERT INTO shapes
SELECT 'one character not base62', overlay(:'k1' PLACING '-' FROM i FOR 1)
FROM generate_series(1, 53) i;
-- every adjacent swap of two different characters
INSERT INTO shapes
SELECT 'two neighbours swapped',
       overlay(:'k1' PLACING substr(:'k1', i + 1, 1) || substr(:'k1', i, 1) FROM i FOR 2)
FROM generate_series(1, 52) i
WHERE substr(:'k1', i, 1) <> substr(:'k1', i + 1, 1);
-- every truncation, down to the empty string
INSERT INTO shapes SELECT 'truncated', left(:'k1', n) FROM generate_series(0, 52) n;
INSERT INTO shapes VALUES
    ('empty', ''),
    ('NULL', NULL),
    ('random text', 'hello world'),
    ('random text', 'Bearer ' || :'k1'),
    ('random text', md5('x') || md5('y')),
    ('random text', 'ddk_' || substr(md5('a') || md5('b'), 1, 49)),
    ('wrong prefix', 'sk__' || substr(:'k1', 5)),
    ('wrong prefix', 'DDK_' || substr(:'k1', 5)),
    ('wrong prefix', substr(:'k1', 5)),
    ('overlong', :'k1' || 'x'),
    ('overlong', :'k1' || :'k1'),
    ('overlong', :'k1' || repeat('0', 1000000)),
    ('whitespace', ' ' || :'k1'),
    ('whitespace', :'k1' || E'\n'),
    ('case changed', upper(:'k1')),
    ('case changed', lower(:'k1')),
    ('checksum of another key', left(:'k1', 47) || right(:'k2', 6));

-- No malformed shape reads a table: this backend's count of scans of
-- api_keys does not move until a well-formed key is verified (counted in
-- one transaction, where the counts are not flushed).
BEGIN;
SET LOCAL dd_clipper.key_touch_interval = '1h';
SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) AS scans0
FROM pg_stat_xact_user_tables WHERE relname = 'api_keys' \gset
-- (How many adjacent swaps there are depends on the random key.)
SELECT s.shape,
       CASE WHEN s.shape = 'two neighbours swapped' THEN 'all' ELSE count(*)::text END AS tried,
       count(*) FILTER (WHERE (v).code = 'MALFORMED' AND NOT (v).valid
                        AND (v).key_id IS NULL AND (v).user_id IS NULL)
         = count(*) AS all_malformed
FROM shapes s, LATERAL (SELECT dd_verify_api_key(s.key) AS v OFFSET 0) x
GROUP BY s.shape ORDER BY s.shape COLLATE "C";
SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) - :scans0 AS scans_by_malformed
FROM pg_stat_xact_user_tables WHERE relname = 'api_keys';
SELECT code FROM dd_verify_api_key(:'k1');
SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) - :scans0 AS scans_by_one_valid
FROM pg_stat_xact_user_tables WHERE relname = 'api_keys';
COMMIT;

------------------------------------------------------------------------
-- last_used_at: written at most once per dd_clipper.key_touch_interval
------------------------------------------------------------------------

SHOW dd_clipper.key_touch_interval;
SET dd_clipper.key_touch_interval = '1h';
SELECT key_id AS k5_id, api_key AS k5 FROM dd_create_api_key('user_e') \gset
SELECT last_used_at IS NULL AS never_used FROM api_keys WHERE id = :k5_id;
SELECT code FROM dd_verify_api_key(:'k5');
SELECT last_used_at AS first_use, xmin AS first_xmin FROM api_keys WHERE id = :k5_id \gset
SELECT :'first_use' >= now() - interval '1 minute' AS just_now;
-- Twenty more verifications, each its own transaction: the row is not written.
SELECT code FROM dd_verify_api_key(:'k5') \g /dev/null
SELECT code FROM dd_verify_api_key(:'k5') \g /dev/null
SELECT code FROM dd_verify_api_key(:'k5') \g /dev/null
SELECT count(*) FILTER (WHERE (dd_verify_api_key(:'k5')).valid) AS valid
FROM generate_series(1, 17);
SELECT last_used_at = :'first_use' AS same_last_used,
       xmin::text = :'first_xmin' AS row_not_rewritten
FROM api_keys WHERE id = :k5_id;
-- Older than the interval: the next verification writes it again, once.
UPDATE api_keys SET last_used_at = now() - interval '2 hours' WHERE id = :k5_id;
SELECT code FROM dd_verify_api_key(:'k5');
SELECT last_used_at > now() - interval '1 minute' AS touched_again
FROM api_keys WHERE id = :k5_id;
RESET dd_clipper.key_touch_interval;
-- The setting is checked: a misspelled one is an error (the prefix is reserved).
SET dd_clipper.key_touch_intervall = '1h';

------------------------------------------------------------------------
-- Argument errors, each with its SQLSTATE
------------------------------------------------------------------------

SELECT regress_try(q) AS result FROM (VALUES
    ($$SELECT dd_create_api_key(NULL)$$),
    ($$SELECT dd_create_api_key('')$$),
    ($$SELECT dd_create_api_key(repeat('u', 257))$$),
    ($$SELECT dd_create_api_key('u', '')$$),
    ($$SELECT dd_create_api_key('u', repeat('n', 257))$$),
    ($$SELECT dd_create_api_key('u', 'n', now())$$),
    ($$SELECT dd_create_api_key('u', 'n', '-infinity')$$),
    ($$SELECT dd_revoke_api_key(NULL)$$),
    ($$SELECT dd_revoke_api_key(987654321)$$)
) AS t(q);
-- Limits are characters, not bytes: 256 two-byte characters are fine.
SELECT key_id AS mb_id FROM dd_create_api_key(repeat('é', 256)) \gset
SELECT user_id = repeat('é', 256) AS multibyte_user_ok FROM api_keys WHERE id = :mb_id;
-- One error in full.
\set VERBOSITY default
SELECT dd_create_api_key('u', 'n', '2001-02-03 04:05:06+00');
SELECT dd_revoke_api_key(987654321);

------------------------------------------------------------------------
-- dd_authorize_and_charge: verify, charge, log in one call
------------------------------------------------------------------------

SELECT dd_grant_credit('user_a', 10) AS granted;

-- VALID: charged 3, logged with the key's id, endpoint and metadata.
SELECT * FROM dd_authorize_and_charge(:'k1', 3, 'req-1', '/v1/clip', '{"model": "small"}');
SELECT user_id, request_id, endpoint, credits, api_key_id = :k1_id AS by_key_1, metadata
FROM api_usage_log ORDER BY id;

-- The same request_id again: nothing charged, the first outcome replayed.
SELECT * FROM dd_authorize_and_charge(api_key => :'k1', amount => 3, request_id => 'req-1');

-- amount = 0 checks without spending: no usage row, balance unchanged.
SELECT * FROM dd_authorize_and_charge(:'k1', 0);
SELECT count(*) AS usage_rows, dd_credit_balance('user_a') AS balance FROM api_usage_log;

-- More than the balance: INSUFFICIENT_CREDITS, nothing written.
SELECT * FROM dd_authorize_and_charge(:'k1', 8, 'req-2');
-- The default amount is 1.
SELECT * FROM dd_authorize_and_charge(:'k1');
-- A user without a balance row: INSUFFICIENT_CREDITS, balance NULL.
SELECT * FROM dd_authorize_and_charge(:'k2', 1, 'req-3');
SELECT * FROM dd_authorize_and_charge(:'k2', 0);

-- Every key code: nothing charged, nothing logged.
SELECT dd_grant_credit('user_c', 5) AS granted, dd_grant_credit('user_d', 5) AS granted,
       dd_grant_credit('user_h', 5) AS granted;
SELECT k.label, a.*
FROM (VALUES ('revoked', :'k4'), ('revoked+expired', :'k3'), ('expired', :'k8'),
             ('not found', 'ddk_00000000000000000000000000000000000000000002TEw9T'),
             ('malformed', left(:'k1', 52)), ('null', NULL)) AS k(label, key),
     LATERAL dd_authorize_and_charge(k.key, 1, 'req-bad-' || k.label) a
ORDER BY k.label COLLATE "C";
SELECT count(*) AS usage_rows FROM api_usage_log;
SELECT user_id, dd_credit_balance(user_id) AS balance
FROM (VALUES ('user_a'), ('user_c'), ('user_d'), ('user_h')) u(user_id) ORDER BY 1;

-- Argument errors come first, whatever the key (here a malformed one).
SELECT regress_try(q) AS result FROM (VALUES
    ($$SELECT dd_authorize_and_charge('x', NULL)$$),
    ($$SELECT dd_authorize_and_charge('x', -1)$$),
    ($$SELECT dd_authorize_and_charge('x', 1, '')$$),
    ($$SELECT dd_authorize_and_charge('x', 1, repeat('r', 257))$$),
    ($$SELECT dd_authorize_and_charge('x', 1, 'r', '')$$),
    ($$SELECT dd_authorize_and_charge('x', 1, 'r', repeat('e', 513))$$),
    ($$SELECT dd_authorize_and_charge('x', 1, 'r', 'e', '[1, 2]')$$),
    ($$SELECT dd_authorize_and_charge('x', 1, 'r', 'e', '"text"')$$)
) AS t(q);
\set VERBOSITY default
SELECT dd_authorize_and_charge(:'k1', -5);
SELECT dd_authorize_and_charge(:'k1', 1, 'req-4', '/v1/clip', '[]');

-- The ledger balances.
SELECT * FROM dd_credit_audit();

------------------------------------------------------------------------
-- A hostile search_path changes nothing
------------------------------------------------------------------------

-- A schema placed first that shadows the table, now(), sha256(), the
-- operators the queries use and the text type.  A fresh session, so the
-- functions prepare their plans under it.
\c
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.api_keys (LIKE public.api_keys);
INSERT INTO regress_evil.api_keys (id, user_id, prefix, key_hash, created_at)
SELECT id, 'regress_evil', prefix, key_hash, created_at FROM public.api_keys;
CREATE FUNCTION regress_evil.now() RETURNS timestamptz
    LANGUAGE sql AS $$SELECT '2000-01-01'::pg_catalog.timestamptz$$;
CREATE FUNCTION regress_evil.sha256(bytea) RETURNS bytea
    LANGUAGE sql AS $$SELECT '\x00'::pg_catalog.bytea$$;
CREATE FUNCTION regress_evil.always(bytea, bytea) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE FUNCTION regress_evil.always(bigint, bigint) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE FUNCTION regress_evil.always(timestamptz, timestamptz) RETURNS boolean
    LANGUAGE sql AS $$SELECT true$$;
CREATE OPERATOR regress_evil.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_catalog.int8pl);
CREATE OPERATOR regress_evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.always);
CREATE TABLE regress_evil.api_credits (LIKE public.api_credits);
INSERT INTO regress_evil.api_credits (user_id, balance, created_at, updated_at)
SELECT user_id, 1000000, created_at, updated_at FROM public.api_credits;
CREATE DOMAIN regress_evil.text AS pg_catalog.varchar(3);
SET search_path = regress_evil, pg_catalog, public;
-- The shadows work: unqualified SQL now reads the planted table and
-- operators.
SELECT (SELECT count(*) FROM api_keys WHERE user_id = 'regress_evil') AS planted_rows_seen,
       '\x01'::bytea = '\x02'::bytea AS evil_equals, now() AS evil_now,
       5::bigint - 3::bigint AS evil_minus;

SELECT key_id AS k6_id, api_key AS k6 FROM public.dd_create_api_key('user_f', 'under attack') \gset
SELECT * FROM dd_verify_api_key(:'k6');
SELECT * FROM dd_verify_api_key('ddk_00000000000000000000000000000000000000000002TEw9T');
SELECT * FROM dd_verify_api_key(:'k3');
SELECT * FROM dd_verify_api_key(:'k4');
SELECT * FROM dd_verify_api_key(:'k8');
SELECT code FROM dd_verify_api_key(left(:'k6', 52) || CASE right(:'k6', 1) WHEN 'x' THEN 'y' ELSE 'x' END);
SET dd_clipper.key_touch_interval = '1h';
SELECT xmin AS before_xmin FROM public.api_keys WHERE id = :k6_id \gset
SELECT code FROM dd_verify_api_key(:'k6');
SELECT xmin::pg_catalog.text = :'before_xmin' AS row_not_rewritten
FROM public.api_keys WHERE id = :k6_id;
RESET dd_clipper.key_touch_interval;
-- Charging through the key: the real balance (2 credits) is used, the
-- shadow balances and operators are not.
SELECT dd_grant_credit('user_f', 2) AS granted;
SELECT valid, code, ok, balance, replayed FROM dd_authorize_and_charge(:'k6', 2, 'req-evil-1');
SELECT valid, code, ok, balance, replayed FROM dd_authorize_and_charge(:'k6', 1, 'req-evil-2');
SELECT dd_revoke_api_key(:k6_id) AS revoked;
SELECT code FROM dd_verify_api_key(:'k6');
RESET search_path;
-- The shadowing table was neither read nor written; the real one was.
SELECT count(*) AS evil_rows, count(*) FILTER (WHERE user_id = 'regress_evil') AS evil_untouched,
       count(*) FILTER (WHERE last_used_at IS NOT NULL OR revoked_at IS NOT NULL) AS evil_written
FROM regress_evil.api_keys;
SELECT user_id, name, revoked_at IS NOT NULL AS revoked,
       key_hash = sha256(convert_to(:'k6', 'UTF8')) AS hash_is_sha256,
       last_used_at > '2000-01-02' AS last_used_is_real_now
FROM public.api_keys WHERE id = :k6_id;
SELECT balance FROM public.api_credits WHERE user_id = 'user_f';
SELECT count(*) AS shadow_balances_changed FROM regress_evil.api_credits WHERE balance <> 1000000;
SELECT request_id, credits, api_key_id = :k6_id AS by_key_6
FROM public.api_usage_log WHERE user_id = 'user_f' ORDER BY id;
DROP SCHEMA regress_evil CASCADE;

------------------------------------------------------------------------
-- A low-privilege role
------------------------------------------------------------------------

CREATE ROLE regress_key_app;
CREATE ROLE regress_key_nobody;
-- The application role may verify keys, nothing else.
GRANT EXECUTE ON FUNCTION dd_verify_api_key(text) TO regress_key_app;
GRANT EXECUTE ON FUNCTION dd_authorize_and_charge(text, bigint, text, text, jsonb) TO regress_key_app;
SELECT key_id AS k7_id, api_key AS k7 FROM dd_create_api_key('user_g') \gset
SELECT dd_grant_credit('user_g', 5) AS granted;

SET ROLE regress_key_nobody;
SELECT regress_try(q) AS nobody FROM (VALUES
    ($$SELECT dd_verify_api_key('x')$$),
    ($$SELECT dd_authorize_and_charge('x')$$),
    ($$SELECT dd_create_api_key('user_g')$$),
    ($$SELECT dd_revoke_api_key(1)$$)
) AS t(q);
RESET ROLE;

SET ROLE regress_key_app;
-- Verification (which writes last_used_at) and charging work without any
-- table privilege; nothing else does.
SELECT * FROM dd_verify_api_key(:'k7');
SELECT * FROM dd_authorize_and_charge(:'k7', 2, 'req-app-1');
SELECT regress_try(q) AS app FROM (VALUES
    ($$SELECT count(*) FROM api_keys$$),
    ($$UPDATE api_keys SET revoked_at = NULL$$),
    ($$UPDATE api_credits SET balance = 1000$$),
    ($$SELECT dd_create_api_key('user_g')$$),
    ($$SELECT dd_revoke_api_key(1)$$),
    ($$SELECT dd_charge_credit('user_a', 1)$$),
    ($$SELECT dd_grant_credit('user_g', 1000)$$)
) AS t(q);
RESET ROLE;
SELECT last_used_at IS NOT NULL AS touched_by_app FROM api_keys WHERE id = :k7_id;
-- Nothing is executable by PUBLIC.
SELECT p.proname COLLATE "C" AS public_can_execute
FROM pg_proc p
WHERE p.proname IN ('dd_create_api_key', 'dd_verify_api_key', 'dd_revoke_api_key',
                    'dd_authorize_and_charge')
  AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1;

DROP FUNCTION regress_try(text);
DROP EXTENSION dd_clipper;
DROP ROLE regress_key_app;
DROP ROLE regress_key_nobody;
