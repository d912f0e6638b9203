-- One hot user; 4,000 request ids for 500 credits (and what refunds give
-- back), so ids repeat, often concurrently, and the balance runs out.
\set r random(1, 4000)
SELECT charge('hot', 1, 'h' || :r);
