#!/usr/bin/env bash
# test/t/012_executor_hooks.sh -- every read and write of the request path
# goes through the executor, so an executor hook sees it (here auto_explain,
# which hooks ExecutorStart/ExecutorEnd as pgaudit and pg_stat_statements
# do): the charge's lock, usage INSERT and balance UPDATE, the event INSERT,
# the key lookup, the log and the grant.  Also checks, on the real
# statement, that a replay looks its request up through the unique
# (user_id, request_id) index even for a user with many usage rows.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 10

db=dd_hooks
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper; SELECT dd_grant_credit('h', 1000000);" >/dev/null
ok $? "extension created"

# hooked SQL: run SQL with auto_explain logging every nested statement's
# plan as a NOTICE, and print the notices.
hooked() {
    psql -X -q -d "$db" -v ON_ERROR_STOP=1 2>&1 >/dev/null <<SQL
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
$1
SQL
}

out=$(hooked "SELECT * FROM dd_charge_credit('h', 1, 'hook-1');")
grep -q 'Query Text: SELECT c.balance FROM public.api_credits c .* FOR NO KEY UPDATE' <<<"$out"
ok $? "the charge's balance lock reaches the executor"
grep -q 'Query Text: INSERT INTO public.api_usage_log' <<<"$out"
ok $? "the charge's usage row reaches the executor"
grep -q 'Query Text: UPDATE public.api_credits c SET balance' <<<"$out"
ok $? "the charge's debit reaches the executor"

out=$(hooked "SELECT dd_track_event('h', 'e', '{}', 'ev-1');")
grep -q 'Query Text: INSERT INTO public.usage_events' <<<"$out"
ok $? "an event's insert reaches the executor"

out=$(hooked "SELECT * FROM dd_verify_api_key((SELECT api_key FROM dd_create_api_key('h')));")
grep -q 'Query Text: SELECT k.id, k.user_id' <<<"$out"
ok $? "a key verification's lookup reaches the executor"

out=$(hooked "SELECT dd_log_usage('h', '/free', 'hook-2'); SELECT dd_grant_credit('h', 5, 'hooks', 'g-1');")
grep -q 'Query Text: INSERT INTO public.credit_grants' <<<"$out" &&
    grep -q 'Query Text: INSERT INTO public.api_credits AS c' <<<"$out"
ok $? "a grant's ledger row and balance upsert reach the executor"

# 100,000 users with one usage row each, as the statistics know them, and
# a hot user whose 20,000 rows came after the last ANALYZE: a replay's
# look-up must still use the unique index, not scan the hot user's rows
# through (user_id, created_at) as a generic plan for "user_id = $1 AND
# request_id = $2" does here.
# (autovacuum off on the table, so no ANALYZE runs in between by chance).
q "$db" "
ALTER TABLE api_usage_log SET (autovacuum_enabled = off);
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits)
SELECT 'o' || i, 'r', '/x', 0 FROM generate_series(1, 100000) i;
ANALYZE api_usage_log;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits)
SELECT 'h', 'bulk-' || i, '/x', 0 FROM generate_series(1, 20000) i;" >/dev/null
ok $? "a hot user and many quiet ones"
out=$(hooked "SELECT * FROM dd_charge_credit('h', 1, 'hook-1');")
plan=$(grep -A3 'Query Text: SELECT l.id, l.credits, l.balance_after' <<<"$out")
grep -q 'api_usage_log_user_id_request_id_key' <<<"$plan"
ok $? "a replay looks its request up through the unique index"
grep -q api_usage_log_user_id_request_id_key <<<"$plan" || diag "plan: $out"
replayed=$(q "$db" "SELECT replayed FROM dd_charge_credit('h', 1, 'hook-1')")
is "$replayed" "t" "and it is a replay"

done_testing
