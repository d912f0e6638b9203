-- The same work as one PL/pgSQL call.
\set k random(1, :nkeys)
\set r random(1, 1000000000000000)
SELECT * FROM bench_authorize_plpgsql((SELECT api_key FROM bench_keys WHERE k = :k), 1, :r, '/v1/clip');
