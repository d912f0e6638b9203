-- bench/credits/setup.sql: 100,000 users with balances that never run
-- out (so every cell measures successful charges), and baseline (d): the
-- same logic as dd_charge_credit written as a PL/pgSQL function.
CREATE EXTENSION dd_clipper;
INSERT INTO api_credits (user_id, balance)
SELECT 'u' || i, 1000000000000 FROM generate_series(1, 100000) i;
INSERT INTO credit_grants (user_id, amount, reason)
SELECT user_id, balance, 'bench' FROM api_credits;

CREATE FUNCTION bench_plpgsql_charge(p_user_id text, p_amount bigint,
                                     p_request_id text, p_endpoint text,
                                     OUT ok boolean, OUT balance bigint,
                                     OUT usage_id bigint, OUT replayed boolean)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT l.id, l.balance_after INTO usage_id, balance
    FROM api_usage_log l
    WHERE l.user_id = p_user_id AND l.request_id = p_request_id;
    IF FOUND THEN
        ok := true; replayed := true;
        RETURN;
    END IF;
    UPDATE api_credits c SET balance = c.balance - p_amount, updated_at = now()
    WHERE c.user_id = p_user_id AND c.balance >= p_amount
    RETURNING c.balance INTO balance;
    IF NOT FOUND THEN
        ok := false; replayed := false;
        RETURN;
    END IF;
    INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, balance_after)
    VALUES (p_user_id, p_request_id, p_endpoint, p_amount, balance)
    RETURNING id INTO usage_id;
    ok := true; replayed := false;
END
$$;
VACUUM ANALYZE;
