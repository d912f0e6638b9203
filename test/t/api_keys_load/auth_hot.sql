\set r random(1, 20000)
SELECT * FROM dd_authorize_and_charge((SELECT api_key FROM load_keys WHERE k = 0), 1, 'h' || :r, '/v1/clip');
