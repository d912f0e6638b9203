--
-- credits: dd_grant_credit, dd_charge_credit, dd_refund_credit,
-- dd_credit_balance, dd_credit_audit, dd_log_usage -- what each does, every
-- error with its SQLSTATE, a hostile search_path, and a low-privilege role.
-- (Concurrency is in specs/credits_*.spec.)
--
CREATE EXTENSION dd_clipper;

-- regress_try(sql): run sql, answer 'ok' or 'SQLSTATE: message'.
CREATE FUNCTION regress_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- regress_ledger: every row of the ledger, to show what a call wrote.
CREATE VIEW regress_ledger AS
    SELECT 'balance' AS kind, user_id, balance AS amount, NULL::text AS ref
    FROM api_credits
    UNION ALL SELECT 'grant', user_id, amount, idempotency_key FROM credit_grants
    UNION ALL SELECT 'usage', user_id, credits, request_id FROM api_usage_log
    UNION ALL SELECT 'refund', user_id, amount, request_id FROM credit_refunds;

------------------------------------------------------------------------
-- Grants
------------------------------------------------------------------------

-- The first grant creates the balance row; the balance is returned.
SELECT dd_grant_credit(user_id => 'alice', amount => 10, reason => 'signup');
SELECT dd_grant_credit(user_id => 'alice', amount => 5, idempotency_key => 'invoice-1');
-- The same idempotency key again grants nothing and returns the balance.
SELECT dd_grant_credit(user_id => 'alice', amount => 5, idempotency_key => 'invoice-1');
-- ... even with another amount: the key names the grant.
SELECT dd_grant_credit(user_id => 'alice', amount => 500, idempotency_key => 'invoice-1');
-- Keys are per user.
SELECT dd_grant_credit(user_id => 'bob', amount => 2, idempotency_key => 'invoice-1');
SELECT * FROM regress_ledger ORDER BY kind COLLATE "C", user_id COLLATE "C", amount;

------------------------------------------------------------------------
-- Charges
------------------------------------------------------------------------

-- Charged and logged; the balance after the charge is returned.
SELECT * FROM dd_charge_credit(user_id => 'alice', amount => 3, request_id => 'req-1',
                               endpoint => '/v1/clip', api_key_id => 7,
                               metadata => '{"model": "small"}');
-- The default amount is 1; a request id is optional.
SELECT * FROM dd_charge_credit(user_id => 'alice');
-- A retried request: the original outcome, replayed, nothing charged.
SELECT * FROM dd_charge_credit(user_id => 'alice', amount => 3, request_id => 'req-1');
-- Request ids are per user.
SELECT * FROM dd_charge_credit(user_id => 'bob', amount => 1, request_id => 'req-1');
-- Not enough credit: ok = false, the current balance, nothing written.
SELECT * FROM dd_charge_credit(user_id => 'bob', amount => 2, request_id => 'req-2');
-- No balance row: ok = false, balance NULL, nothing written.
SELECT * FROM dd_charge_credit(user_id => 'carol', amount => 1, request_id => 'req-1');
-- A failed request id is not spent: it charges once credit is there.
SELECT dd_grant_credit(user_id => 'bob', amount => 1);
SELECT * FROM dd_charge_credit(user_id => 'bob', amount => 2, request_id => 'req-2');
-- Amount 0 writes nothing and reports the balance; ok tells whether the
-- user has a balance row.
SELECT * FROM dd_charge_credit(user_id => 'alice', amount => 0, request_id => 'req-0');
SELECT * FROM dd_charge_credit(user_id => 'carol', amount => 0);
SELECT user_id, request_id, endpoint, credits, api_key_id, metadata, balance_after
FROM api_usage_log ORDER BY id;
SELECT count(*) AS carol_rows FROM regress_ledger WHERE user_id = 'carol';

------------------------------------------------------------------------
-- Free requests, refunds, balance, audit
------------------------------------------------------------------------

-- A request that costs nothing: logged once per request id.
SELECT dd_log_usage(user_id => 'alice', endpoint => '/v1/ping', request_id => 'ping-1') AS id_first,
       dd_log_usage(user_id => 'alice', endpoint => '/v1/ping', request_id => 'ping-1') AS id_again;
SELECT dd_log_usage(user_id => 'alice', endpoint => '/v1/ping', metadata => '{"ok": true}') > 0 AS logged;
-- Charging a request id that was logged free replays the logged row (with
-- the current balance): the request happened, it is not charged again.
SELECT * FROM dd_charge_credit(user_id => 'alice', amount => 1, request_id => 'ping-1');

-- A refund gives back the credits of one charge, once.
SELECT dd_refund_credit(user_id => 'alice', request_id => 'req-1', reason => 'timeout');
SELECT dd_credit_balance(user_id => 'alice') AS alice, dd_credit_balance('bob') AS bob,
       dd_credit_balance('nobody') AS nobody;
-- A refunded request stays spent: a retry replays the original charge.
SELECT * FROM dd_charge_credit(user_id => 'alice', amount => 3, request_id => 'req-1');

-- The ledger balances.
SELECT * FROM dd_credit_audit();
SELECT * FROM regress_ledger ORDER BY kind COLLATE "C", user_id COLLATE "C", amount, ref COLLATE "C";

-- Usage rows removed by retention count through api_usage_rollup.
WITH gone AS (
    DELETE FROM api_usage_log WHERE user_id = 'bob' RETURNING user_id, credits
)
INSERT INTO api_usage_rollup (user_id, charged, usage_rows)
SELECT user_id, sum(credits), count(*) FROM gone GROUP BY user_id;
SELECT * FROM dd_credit_audit();

-- The audit names every user whose balance is off, including users known
-- only to the ledger.
UPDATE api_credits SET balance = balance + 100 WHERE user_id = 'alice';
INSERT INTO credit_grants (user_id, amount) VALUES ('ghost', 4);
INSERT INTO api_usage_log (user_id, credits) VALUES ('phantom', 2);
SELECT * FROM dd_credit_audit();
UPDATE api_credits SET balance = balance - 100 WHERE user_id = 'alice';
DELETE FROM credit_grants WHERE user_id = 'ghost';
DELETE FROM api_usage_log WHERE user_id = 'phantom';
SELECT count(*) AS mismatches FROM dd_credit_audit();

------------------------------------------------------------------------
-- Every error: SQLSTATE and a message naming the argument
------------------------------------------------------------------------

SELECT call, regress_try(call) AS outcome FROM (VALUES
    -- amounts
    ($$SELECT dd_grant_credit('alice', 0)$$),
    ($$SELECT dd_grant_credit('alice', -5)$$),
    ($$SELECT dd_grant_credit('alice', NULL)$$),
    ($$SELECT dd_charge_credit('alice', -1)$$),
    ($$SELECT dd_charge_credit('alice', NULL)$$),
    ($$SELECT dd_grant_credit('alice', 9223372036854775807)$$),
    -- user_id
    ($$SELECT dd_grant_credit(NULL, 1)$$),
    ($$SELECT dd_grant_credit('', 1)$$),
    ($$SELECT dd_grant_credit(repeat('u', 257), 1)$$),
    ($$SELECT dd_charge_credit(NULL)$$),
    ($$SELECT dd_charge_credit('')$$),
    ($$SELECT dd_charge_credit(repeat('u', 257))$$),
    ($$SELECT dd_refund_credit(NULL, 'req-1')$$),
    ($$SELECT dd_credit_balance(NULL)$$),
    ($$SELECT dd_credit_balance('')$$),
    ($$SELECT dd_log_usage(repeat('u', 257), '/x')$$),
    -- request_id, endpoint, reason, idempotency_key
    ($$SELECT dd_charge_credit('alice', 1, request_id => '')$$),
    ($$SELECT dd_charge_credit('alice', 1, request_id => repeat('r', 257))$$),
    ($$SELECT dd_charge_credit('alice', 1, endpoint => '')$$),
    ($$SELECT dd_charge_credit('alice', 1, endpoint => repeat('e', 513))$$),
    ($$SELECT dd_grant_credit('alice', 1, reason => repeat('r', 1025))$$),
    ($$SELECT dd_grant_credit('alice', 1, idempotency_key => '')$$),
    ($$SELECT dd_grant_credit('alice', 1, idempotency_key => repeat('k', 257))$$),
    ($$SELECT dd_refund_credit('alice', NULL)$$),
    ($$SELECT dd_refund_credit('alice', '')$$),
    ($$SELECT dd_refund_credit('alice', 'req-1', reason => repeat('r', 1025))$$),
    ($$SELECT dd_log_usage('alice', NULL)$$),
    ($$SELECT dd_log_usage('alice', '')$$),
    ($$SELECT dd_log_usage('alice', '/x', request_id => repeat('r', 257))$$),
    -- metadata
    ($$SELECT dd_charge_credit('alice', 1, metadata => '[1, 2]')$$),
    ($$SELECT dd_charge_credit('alice', 1, metadata => '"text"')$$),
    ($$SELECT dd_charge_credit('alice', 1, metadata => 'null')$$),
    ($$SELECT dd_log_usage('alice', '/x', metadata => '42')$$),
    ($$SELECT dd_charge_credit('alice', 1, metadata => '{"unclosed": ')$$),
    -- refunds
    ($$SELECT dd_refund_credit('alice', 'never-sent')$$),
    ($$SELECT dd_refund_credit('alice', 'ping-1')$$),
    ($$SELECT dd_refund_credit('alice', 'req-1')$$),
    ($$SELECT dd_refund_credit('bob', 'req-1')$$)
) AS t(call);

-- Limits count characters, not bytes: 256 two-byte characters are fine.
SELECT ok FROM dd_charge_credit(repeat('é', 256), 0);

-- Nothing of a failed call was written: the ledger is as it was.
SELECT count(*) AS grants FROM credit_grants;
SELECT count(*) AS usage_rows FROM api_usage_log;
SELECT count(*) AS refunds FROM credit_refunds;
SELECT count(*) AS mismatches FROM dd_credit_audit();

-- Errors in full: detail and hint.
\set VERBOSITY default
SELECT dd_charge_credit('alice', -1);
SELECT dd_charge_credit('alice', 1, metadata => '[1]');
SELECT dd_refund_credit('alice', 'never-sent');
SELECT dd_refund_credit('alice', 'req-1');
SELECT dd_charge_credit('alice', 1, request_id => repeat('r', 300));

------------------------------------------------------------------------
-- A hostile search_path changes nothing
------------------------------------------------------------------------

-- A schema placed first that shadows the balance table, the operators the
-- functions use, and now().  A new connection, so every plan is prepared
-- under this search_path.
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.api_credits (user_id text, balance bigint);
INSERT INTO regress_evil.api_credits VALUES ('alice', 1000000);
CREATE TABLE regress_evil.api_usage_log (user_id text, request_id text);
CREATE FUNCTION regress_evil.now() RETURNS timestamptz LANGUAGE sql
    AS $$SELECT '2000-01-01 00:00:00+00'::pg_catalog.timestamptz$$;
CREATE FUNCTION regress_evil.minus(bigint, bigint) RETURNS bigint LANGUAGE sql
    AS $$SELECT $1 OPERATOR(pg_catalog.+) $2$$;
CREATE OPERATOR regress_evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.minus);
CREATE FUNCTION regress_evil.always(bigint, bigint) RETURNS boolean LANGUAGE sql
    AS $$SELECT true$$;
CREATE OPERATOR regress_evil.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.<> (LEFTARG = numeric, RIGHTARG = numeric,
    FUNCTION = pg_catalog.numeric_eq);
CREATE FUNCTION regress_evil.text_always(text, text) RETURNS boolean LANGUAGE sql
    AS $$SELECT true$$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.text_always);
CREATE FUNCTION regress_evil.sum(bigint) RETURNS bigint LANGUAGE sql AS $$SELECT 0::bigint$$;

\c
SET search_path = regress_evil, pg_catalog, public;
SELECT public.dd_grant_credit('dave', 5);
-- 5 - 3 is 2 (not 8), and 2 >= 3 is false (not true).
SELECT * FROM public.dd_charge_credit('dave', 3, 'evil-1');
SELECT * FROM public.dd_charge_credit('dave', 3, 'evil-2');
SELECT public.dd_refund_credit('dave', 'evil-1');
SELECT public.dd_credit_balance('dave') AS dave, public.dd_credit_balance('alice') AS alice;
SELECT public.dd_log_usage('dave', '/x', 'evil-1');
-- Only dave's rows changed ('=' on text did not match every user), and the
-- audit lists nobody (with the shadowing '<>', which means '=', it would
-- list every user).
SELECT count(*) AS mismatches FROM public.dd_credit_audit();
RESET search_path;
SELECT user_id, balance, updated_at > '2001-01-01' AS real_now
FROM api_credits ORDER BY user_id COLLATE "C";
SELECT * FROM regress_evil.api_credits;
SELECT count(*) AS evil_usage_rows FROM regress_evil.api_usage_log;
DROP SCHEMA regress_evil CASCADE;

------------------------------------------------------------------------
-- A low-privilege role: the request path, never the balance table
------------------------------------------------------------------------

CREATE ROLE regress_credits_app;
GRANT EXECUTE ON FUNCTION dd_charge_credit(text, bigint, text, text, bigint, jsonb),
    dd_credit_balance(text), dd_log_usage(text, text, text, bigint, jsonb)
    TO regress_credits_app;
SET ROLE regress_credits_app;
-- The functions work for it (they run as the extension's owner) ...
SELECT * FROM dd_charge_credit('alice', 1, 'app-1');
SELECT dd_credit_balance('alice');
-- ... but it cannot write the balance, grant itself credit, refund, or read
-- the ledger directly.
SELECT call, regress_try(call) AS outcome FROM (VALUES
    ($$UPDATE api_credits SET balance = 1000 WHERE user_id = 'alice'$$),
    ($$INSERT INTO api_credits (user_id, balance) VALUES ('mallory', 1000)$$),
    ($$INSERT INTO credit_grants (user_id, amount) VALUES ('mallory', 1000)$$),
    ($$DELETE FROM api_usage_log$$),
    ($$SELECT balance FROM api_credits$$),
    ($$SELECT dd_grant_credit('mallory', 1000)$$),
    ($$SELECT dd_refund_credit('alice', 'app-1')$$),
    ($$SELECT * FROM dd_credit_audit()$$)
) AS t(call);
RESET ROLE;
SELECT count(*) AS mismatches FROM dd_credit_audit();
SELECT count(*) AS mallory_rows FROM regress_ledger WHERE user_id = 'mallory';

-- Nothing is executable by PUBLIC but the three claim functions the row
-- policies need (verifying a claim needs no trust; signing one does).
SELECT p.proname COLLATE "C" AS public_can_execute
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'dd\_%'
  AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1;

DROP VIEW regress_ledger;
DROP FUNCTION regress_try(text);
DROP EXTENSION dd_clipper;
DROP ROLE regress_credits_app;
