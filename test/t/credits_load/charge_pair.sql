-- Clients 2p and 2p + 1 charge user "pair<p>" with one request id per
-- 10 ms slot, each charge holding the balance row 2 ms before it commits:
-- the two clients of a pair keep sending the same request id while the
-- other one's charge of it is in flight.
\set p :client_id / 2
SELECT charge_held('pair' || :p);
