-- 200 users with 3 credits each and no top-ups, charged 1..6 at a time:
-- most charges ask for more than is left and must be refused.
\set u random(1, 200)
\set r random(1, 6)
\set a random(1, 6)
SELECT charge('low' || :u, :a, 'l' || :r);
