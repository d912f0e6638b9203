-- dd_authorize_and_charge: verify, touch when due, charge, log -- one call.
\set k random(1, :nkeys)
\set r random(1, 1000000000000000)
SELECT * FROM dd_authorize_and_charge((SELECT api_key FROM bench_keys WHERE k = :k), 1, :r, '/v1/clip');
