-- dd_verify_api_key: codec check, SHA-256, lookup, validity, touch when due.
\set k random(1, :nkeys)
SELECT * FROM dd_verify_api_key((SELECT api_key FROM bench_keys WHERE k = :k));
