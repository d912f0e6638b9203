-- Grants with repeated idempotency keys.
\set u random(1, 10000)
\set k random(1, 3)
SELECT dd_grant_credit('u' || :u, 5, 'top-up', 'k' || :k);
