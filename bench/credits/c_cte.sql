-- (c) the best plain SQL in one statement: a CTE that updates and inserts.
\set n random(1, :nusers)
\set r random(1, 9000000000000000000)
WITH debit AS (
    UPDATE api_credits SET balance = balance - 1, updated_at = now()
    WHERE user_id = 'u' || :n AND balance >= 1 RETURNING balance)
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits)
SELECT 'u' || :n, 'r' || :r, '/v1/clip', 1 FROM debit
RETURNING id;
