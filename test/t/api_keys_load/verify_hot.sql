SELECT * FROM dd_verify_api_key((SELECT api_key FROM load_keys WHERE k = 0));
