-- 10,000 users with 5 credits each, 8 request ids each, amounts 1..2.
-- The application role is confined: the transaction first sets the claim.
\set u random(1, 10000)
\set r random(1, 8)
\set a random(1, 2)
BEGIN;
SELECT dd_set_claim(token) IS NOT NULL FROM claims WHERE user_id = 'u' || :u;
SELECT charge('u' || :u, :a, 'm' || :r);
COMMIT;
