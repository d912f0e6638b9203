-- One hot user; 3,000 request ids for 2,000 credits, so ids repeat (often
-- concurrently) and the balance runs out.
-- The application role is confined: the transaction first sets the claim.
\set r random(1, 3000)
BEGIN;
SELECT dd_set_claim(token) IS NOT NULL FROM claims WHERE user_id = 'hot';
SELECT charge('hot', 1, 'h' || :r);
COMMIT;
