-- Verify one of 1,000 keys (every tenth one revoked).
\set k random(1, 1000)
SELECT verify(:k);
