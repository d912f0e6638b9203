-- Charge through one of 1,000 keys, 4 request ids each.
\set k random(1, 1000)
\set r random(1, 4)
SELECT authorize(:k, 'a' || :r);
