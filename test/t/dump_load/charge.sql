-- 1,000 users, 40 request ids each, amounts 1..3: ids repeat (replays),
-- balances run low (refusals).
\set u random(1, 1000)
\set r random(1, 40)
\set a random(1, 3)
SELECT ok FROM dd_charge_credit('u' || :u, :a, 'r' || :r, '/dump');
