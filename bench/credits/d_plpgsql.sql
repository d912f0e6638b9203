-- (d) the same logic as a PL/pgSQL function.
\set n random(1, :nusers)
\set r random(1, 9000000000000000000)
SELECT * FROM bench_plpgsql_charge('u' || :n, 1, 'r' || :r, '/v1/clip');
