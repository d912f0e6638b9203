-- (e) the bare conditional UPDATE (less work: no log, no idempotency).
\set n random(1, :nusers)
UPDATE api_credits SET balance = balance - 1
WHERE user_id = 'u' || :n AND balance >= 1 RETURNING balance;
