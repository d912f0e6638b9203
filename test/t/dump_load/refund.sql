-- Refunds of random requests: often unknown or refunded already.
\set u random(1, 1000)
\set r random(1, 40)
SELECT try_refund('u' || :u, 'r' || :r);
