-- (a) dd_charge_credit with a request id and endpoint: one call.
\set n random(1, :nusers)
\set r random(1, 9000000000000000000)
SELECT ok, balance, usage_id, replayed
FROM dd_charge_credit(user_id => 'u' || :n, amount => 1, request_id => 'r' || :r, endpoint => '/v1/clip');
