-- Grants with repeated idempotency keys.
\set u random(1, 1000)
\set k random(1, 5)
SELECT dd_grant_credit('u' || :u, 10, 'top-up', 'g' || :k);
