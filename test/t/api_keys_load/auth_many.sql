\set k random(1, 1000)
\set r random(1, 30)
SELECT * FROM dd_authorize_and_charge((SELECT api_key FROM load_keys WHERE k = :k), 1, 'm' || :r, '/v1/clip');
