-- One hot user; 3,000 request ids for 2,000 credits, so ids repeat (often
-- concurrently) and the balance runs out.
\set r random(1, 3000)
SELECT charge('hot', 1, 'h' || :r);
