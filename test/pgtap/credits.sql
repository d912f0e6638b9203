--
-- test/pgtap/credits.sql -- what the credit functions do: named notation
-- as in DESIGN.md, errors by SQLSTATE, and the ledger invariants after a
-- mixed workload of grants, charges (with repeated request ids), refunds
-- and free requests:
--   balance = grants - charges + refunds for every user (dd_credit_audit
--   empty), no balance below zero, one usage row per successful charge,
--   one refund at most per request, replays charge nothing.
-- Signatures, definer rights and privileges: test/pgtap/schema_credits.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(23);

-- Named notation, as DESIGN.md spells the parameters ---------------------
SELECT is(dd_grant_credit(user_id => 'tap', amount => 5, reason => 'r', idempotency_key => 'k'),
          5::bigint, 'dd_grant_credit by name');
SELECT results_eq(
    $$SELECT ok, balance, replayed FROM dd_charge_credit(user_id => 'tap', amount => 2,
        request_id => 'q', endpoint => '/e', api_key_id => 1, metadata => '{}')$$,
    $$VALUES (true, 3::bigint, false)$$, 'dd_charge_credit by name');
SELECT is(dd_refund_credit(user_id => 'tap', request_id => 'q', reason => 'r'),
          5::bigint, 'dd_refund_credit by name');
SELECT is(dd_credit_balance(user_id => 'tap'), 5::bigint, 'dd_credit_balance by name');
SELECT ok(dd_log_usage(user_id => 'tap', endpoint => '/e', request_id => 'l',
                       api_key_id => 1, metadata => '{}') > 0, 'dd_log_usage by name');

-- Errors with their SQLSTATEs --------------------------------------------
SELECT throws_ok($$SELECT dd_charge_credit('tap', -1)$$, '22023', NULL, 'negative charge');
SELECT throws_ok($$SELECT dd_grant_credit('tap', 0)$$, '22023', NULL, 'zero grant');
SELECT throws_ok($$SELECT dd_charge_credit(NULL)$$, '22004', NULL, 'NULL user_id');
SELECT throws_ok($$SELECT dd_charge_credit(repeat('x', 257))$$, '22001', NULL, 'overlong user_id');
SELECT throws_ok($$SELECT dd_charge_credit('tap', 1, metadata => '[]')$$, '22023', NULL, 'metadata not an object');
SELECT throws_ok($$SELECT dd_refund_credit('tap', 'nope')$$, 'P0002', NULL, 'refund of an unknown request');
SELECT throws_ok($$SELECT dd_refund_credit('tap', 'q')$$, '55000', NULL, 'second refund of a request');

-- A mixed workload --------------------------------------------------------
-- 50 users, 3000 operations drawn from a seeded generator: grants (some
-- with repeated idempotency keys), charges of 1..4 (request ids drawn from a
-- small pool per user, so many repeat), refunds of random request ids
-- (many unknown or refunded already), free requests.  Each charge's
-- outcome is recorded, to check it against the log afterwards.
CREATE TEMP TABLE outcomes (user_id text, request_id text, amount bigint,
                            ok boolean, balance bigint, usage_id bigint,
                            replayed boolean);
DO $$
DECLARE
    i int;
    u text;
    r float8;
    c public.dd_charge;
    req text;
    amt bigint;
BEGIN
    PERFORM setseed(0.4242);
    FOR i IN 1..3000 LOOP
        u := 'w' || (floor(random() * 50))::int;
        r := random();
        IF r < 0.15 THEN
            PERFORM public.dd_grant_credit(u, 1 + floor(random() * 10)::bigint,
                idempotency_key => 'g' || floor(random() * 20)::int);
        ELSIF r < 0.80 THEN
            req := CASE WHEN random() < 0.9 THEN 'r' || floor(random() * 40)::int END;
            amt := 1 + floor(random() * 4)::bigint;
            c := public.dd_charge_credit(u, amt, req, '/w');
            INSERT INTO outcomes VALUES (u, req, amt, c.ok, c.balance, c.usage_id, c.replayed);
        ELSIF r < 0.95 THEN
            BEGIN
                PERFORM public.dd_refund_credit(u, 'r' || floor(random() * 40)::int);
            EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state THEN
                NULL;
            END;
        ELSE
            PERFORM public.dd_log_usage(u, '/free', 'f' || floor(random() * 10)::int);
        END IF;
    END LOOP;
END
$$;

SELECT is_empty($$SELECT * FROM dd_credit_audit()$$,
    'after the workload every balance equals grants - charges + refunds');
SELECT is_empty($$SELECT * FROM api_credits WHERE balance < 0$$, 'no balance below zero');
SELECT ok((SELECT count(*) FROM outcomes WHERE ok AND NOT replayed) > 300,
    'the workload charged a lot (not a vacuous check)');
SELECT ok((SELECT count(*) FROM outcomes WHERE replayed) > 100,
    'the workload replayed many requests (not a vacuous check)');
SELECT ok((SELECT count(*) FROM outcomes WHERE NOT ok) > 50,
    'the workload ran out of credit often (not a vacuous check)');
SELECT is((SELECT count(*) FROM api_usage_log WHERE credits > 0 AND user_id LIKE 'w%'),
          (SELECT count(*) FROM outcomes WHERE ok AND NOT replayed),
          'one usage row per successful first charge');
SELECT is((SELECT sum(credits) FROM api_usage_log WHERE user_id LIKE 'w%'),
          (SELECT sum(amount) FROM outcomes WHERE ok AND NOT replayed),
          'the log holds exactly the credits charged');
SELECT is_empty(
    $$SELECT o.* FROM outcomes o
      JOIN api_usage_log l ON l.user_id = o.user_id AND l.id = o.usage_id
      WHERE o.replayed AND l.credits > 0 AND o.balance <> l.balance_after$$,
    'a replay returns the balance of the original charge');
SELECT is_empty(
    $$SELECT o.* FROM outcomes o
      WHERE o.replayed AND NOT EXISTS (
          SELECT FROM api_usage_log l
          WHERE l.user_id = o.user_id AND l.id = o.usage_id AND l.request_id = o.request_id)$$,
    'a replay returns the usage row of its request');
SELECT is_empty(
    $$SELECT o.* FROM outcomes o WHERE NOT o.ok AND (o.usage_id IS NOT NULL OR o.replayed)$$,
    'a failed charge has no usage row');
SELECT is_empty(
    $$SELECT user_id, request_id FROM credit_refunds GROUP BY 1, 2 HAVING count(*) > 1$$,
    'at most one refund per request');

SELECT * FROM finish();
ROLLBACK;
