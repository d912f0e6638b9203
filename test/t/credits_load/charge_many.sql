-- 10,000 users, 5 request ids each, amounts 1..3.
\set u random(1, 10000)
\set r random(1, 5)
\set a random(1, 3)
SELECT charge('u' || :u, :a, 'm' || :r);
