#!/usr/bin/env bash
# test/t/031_api_keys_load.sh -- API keys under load: 32 clients for a few
# seconds verifying one hot key, charging through it with deliberately
# repeated request ids, and charging through 1,000 other keys whose users
# run out of credit.  Afterwards, exactly:
#   - every key's last_used_at was written at most once (the touch interval
#     is an hour), the hot key's exactly once, whatever the concurrency;
#   - every usage row was paid through a key of its own user;
#   - no request id was charged twice, no balance went below zero, and the
#     ledger balances (dd_credit_audit() is empty);
#   - the users who ran out were refused, never overdrawn.
# The writes to api_keys are counted by a test-only trigger in this test's
# database.
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 10

db=dd_keys_load
here=$DD_ROOT/test/t/api_keys_load
fresh_db "$db"

q "$db" "
CREATE EXTENSION dd_clipper;
ALTER DATABASE $db SET dd_clipper.key_touch_interval = '1h';
CREATE TABLE load_keys (k int PRIMARY KEY, key_id bigint, user_id text, api_key text);
INSERT INTO load_keys
SELECT i, c.key_id, CASE WHEN i = 0 THEN 'hot' ELSE 'u' || i END, c.api_key
FROM generate_series(0, 1000) i,
     LATERAL dd_create_api_key(CASE WHEN i = 0 THEN 'hot' ELSE 'u' || i END) c;
SELECT count(dd_grant_credit(user_id, CASE WHEN k = 0 THEN 100000 ELSE 10 END)) FROM load_keys;
-- Test instrument: one row per write of an api_keys row.
CREATE TABLE key_writes (key_id bigint);
CREATE FUNCTION count_key_write() RETURNS trigger LANGUAGE plpgsql AS
\$\$BEGIN INSERT INTO key_writes VALUES (NEW.id); RETURN NEW; END\$\$;
CREATE TRIGGER count_key_write AFTER UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION count_key_write();
" >/dev/null
ok $? "1,001 keys created, credits granted"

log=$DD_ROOT/tmp_check/api_keys_load.pgbench.log
pgbench_run "$log" -n -M prepared -T 6 -c 32 -j 2 \
    -f "$here/verify_hot.sql@4" -f "$here/auth_hot.sql@3" -f "$here/auth_many.sql@3" "$db"
grep -E '^(number of transactions actually processed|tps)' "$log" | sed 's/^/# /'
pgbench_ok "$log" "32 clients ran without an error, a failed transaction or a deadlock"

is "$(q "$db" "SELECT count(*) FROM key_writes kw JOIN load_keys l USING (key_id) WHERE l.k = 0")" \
   "1" "the hot key's row was written exactly once"
is "$(q "$db" "SELECT count(*) FROM (SELECT key_id FROM key_writes GROUP BY key_id HAVING count(*) > 1) x")" \
   "0" "no key's row was written twice"
is_same "$(q "$db" "SELECT count(*) FROM key_writes")" \
        "$(q "$db" "SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL")" \
   "writes = keys used: one write per key used"
is "$(q "$db" "SELECT count(*) FROM api_usage_log u LEFT JOIN api_keys k ON k.id = u.api_key_id
               WHERE k.user_id IS DISTINCT FROM u.user_id")" \
   "0" "every usage row was paid through a key of its own user"
is "$(q "$db" "SELECT count(*) FROM (SELECT user_id, request_id FROM api_usage_log
               GROUP BY 1, 2 HAVING count(*) > 1) x")" \
   "0" "no request id charged twice"
is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" "the ledger balances (dd_credit_audit is empty)"
is "$(q "$db" "SELECT count(*) FROM api_credits WHERE user_id <> 'hot' AND balance + (
               SELECT count(*) FROM api_usage_log u WHERE u.user_id = api_credits.user_id) <> 10")" \
   "0" "every other user: balance + charges = the 10 credits granted"
is "$(q "$db" "SELECT count(*) > 0 FROM api_credits WHERE user_id <> 'hot' AND balance = 0")" \
   "t" "some users ran out (and were refused, never overdrawn)"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
