-- 10,000 users with 5 credits each, 8 request ids each, amounts 1..2.
\set u random(1, 10000)
\set r random(1, 8)
\set a random(1, 2)
SELECT charge('u' || :u, :a, 'm' || :r);
