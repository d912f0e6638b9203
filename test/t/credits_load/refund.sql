-- Refund a random request of the hot user or of one of the many users:
-- often unknown or refunded already.
\set r random(1, 4000)
\set u random(1, 10000)
\set m random(1, 5)
SELECT try_refund('hot', 'h' || :r);
SELECT try_refund('u' || :u, 'm' || :m);
