#!/usr/bin/env bash
# test/t/071_lock_waits.sh -- a call waiting on a hot balance row respects
# lock_timeout and statement_timeout.
#
# A holder session charges the user "hot" and keeps its transaction open,
# holding the balance row, until the test releases it.  Meanwhile, in ONE
# other session, calls that need that row -- dd_charge_credit,
# dd_authorize_and_charge, dd_grant_credit, dd_refund_credit -- run under
# lock_timeout (session SET, and SET LOCAL inside a transaction, as behind
# a pooler) and statement_timeout.  Each must:
#   - fail with the timeout's own error and SQLSTATE, 55P03 "canceling
#     statement due to lock timeout" or 57014 "canceling statement due to
#     statement timeout", whose CONTEXT names the api_credits row it waited
#     for, after about the timeout, not later;
#   - write nothing: no usage row, no grant or refund row, the balance and
#     the ledger as they were (read in the same session, while the holder
#     still holds the row);
# and the same session's next calls work: once the holder rolls back, the
# request ids that timed out charge exactly once (a timed-out id is not
# spent); once a second holder commits a request id, the same id from the
# waiter, which timed out while that charge was in flight, is a replay.
# dd_credit_audit() is empty at the end.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 20

db=dd_lock_waits
log=$DD_ROOT/tmp_check/lock_waits
fresh_db "$db"

q "$db" "
CREATE EXTENSION dd_clipper;
SELECT dd_grant_credit('hot', 100, 'seed');
SELECT ok FROM dd_charge_credit('hot', 1, 'c0');    -- refunded below
CREATE TABLE keys AS SELECT * FROM dd_create_api_key('hot', 'k');
CREATE TABLE release (n int);
" >/dev/null
ok $? "user hot: 100 credits granted, 1 charged (c0), an API key"

# holder N REQ END: a session that charges 5 credits under REQ, then holds
# the balance row (its transaction open) until release has a row N, then
# ends its transaction with END (COMMIT or ROLLBACK).  At most 60 s.
holder() {
    psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" >"$log.holder$1" 2>&1 <<SQL &
SET application_name = 'dd_holder$1';
BEGIN;
SELECT ok FROM dd_charge_credit('hot', 5, '$2');
DO \$\$BEGIN
    FOR i IN 1..3000 LOOP
        EXIT WHEN EXISTS (SELECT FROM release WHERE n = $1);
        PERFORM pg_sleep(0.02);
    END LOOP;
END\$\$;
$3;
SQL
    holder_pid=$!
}

# wait_holding N: until holder N holds the row (it is in its DO block).
wait_holding() {
    local i
    for i in $(seq 1 300); do
        [ "$(q "$db" "SELECT count(*) FROM pg_stat_activity
                      WHERE application_name = 'dd_holder$1' AND query LIKE 'DO%'")" = 1 ] && return 0
        sleep 0.05
    done
    return 1
}

# Round 1: the holder rolls back.
holder 1 held-1 ROLLBACK
h1=$holder_pid
wait_holding 1
ok $? "a holder session charged hot and holds its balance row"

key=$(q "$db" "SELECT api_key FROM keys")
state="SELECT format('balance %s, usage %s, grants %s, refunds %s',
    (SELECT balance FROM api_credits WHERE user_id = 'hot'),
    (SELECT count(*) FROM api_usage_log), (SELECT count(*) FROM credit_grants),
    (SELECT count(*) FROM credit_refunds))"
before=$(q "$db" "$state")

# The waiter: one session.  Each step prints a STEP line, then its error
# (VERBOSITY verbose: "ERROR:  55P03: ...") and its time.
psql -X -q -t -A -d "$db" >"$log.waiter" 2>&1 <<SQL
\set VERBOSITY verbose
\timing on
\echo STEP charge-lock
SET lock_timeout = '200ms';
SELECT * FROM dd_charge_credit('hot', 1, 'w1');
\echo STEP charge-statement
SET lock_timeout = 0;
SET statement_timeout = '300ms';
SELECT * FROM dd_charge_credit('hot', 1, 'w2');
RESET statement_timeout;
\echo STEP authorize-local
BEGIN;
SET LOCAL lock_timeout = '200ms';
SELECT * FROM dd_authorize_and_charge('$key', 2, 'w3');
ROLLBACK;
\echo STEP grant-lock
SET lock_timeout = '200ms';
SELECT dd_grant_credit('hot', 10, 'top-up', 'g1');
\echo STEP refund-statement
SET lock_timeout = 0;
SET statement_timeout = '300ms';
SELECT dd_refund_credit('hot', 'c0');
RESET statement_timeout;
\echo STEP state-while-held
$state;
INSERT INTO release VALUES (1);
\echo STEP next-calls
SELECT format('%s %s %s', ok, balance, replayed) FROM dd_charge_credit('hot', 1, 'w1');
SELECT format('%s %s %s', ok, balance, replayed) FROM dd_charge_credit('hot', 1, 'w2');
SELECT format('%s %s %s', ok, balance, replayed) FROM dd_authorize_and_charge('$key', 2, 'w3');
SELECT dd_grant_credit('hot', 10, 'top-up', 'g1');
SELECT dd_refund_credit('hot', 'c0');
\echo STEP end
SQL
wait "$h1"

# step NAME: the waiter's output (file $waiter) for step NAME.
waiter=$log.waiter
step() { sed -n "/^STEP $1\$/,/^STEP /p" "$waiter" | sed '1d;$d'; }
# timed_out NAME SQLSTATE MESSAGE MS: the step failed with exactly this
# error, its CONTEXT naming the balance row it waited for, after at least
# MS and at most 5 s.
timed_out() {
    local out ms
    out=$(step "$1")
    ms=$(printf '%s\n' "$out" | sed -n 's/^Time: \([0-9]*\)\..*/\1/p' | sort -n | tail -1)
    printf '%s\n' "$out" | grep -qx "ERROR:  $2: $3" &&
        printf '%s\n' "$out" | grep -q '^CONTEXT:  while .* in relation "api_credits"$' &&
        [ "${ms:-0}" -ge "$4" ] && [ "${ms:-0}" -le 5000 ]
    ok $? "$1: ERROR $2 \"$3\" (CONTEXT: the api_credits row) after ${ms:-?} ms"
    [ $? -eq 0 ] || printf '%s\n' "$out" | sed 's/^/#   /'
}

timed_out charge-lock 55P03 "canceling statement due to lock timeout" 200
timed_out charge-statement 57014 "canceling statement due to statement timeout" 300
timed_out authorize-local 55P03 "canceling statement due to lock timeout" 200
timed_out grant-lock 55P03 "canceling statement due to lock timeout" 200
timed_out refund-statement 57014 "canceling statement due to statement timeout" 300
is "$(step state-while-held | grep '^balance')" "$before" \
   "while the row was held, after the five timeouts: nothing written ($before)"
is "$(q "$db" "SELECT count(*) FROM api_usage_log WHERE request_id IN ('w1', 'w2', 'w3')")" "3" \
   "the timed-out request ids were not spent: each charged once afterwards"
next=$(step next-calls | grep -v '^Time:')
is "$(printf '%s\n' "$next" | head -3 | paste -sd,)" "t 98 f,t 97 f,t 95 f" \
   "the same session's next charges work (the holder rolled back): balances 98, 97, 95"
is "$(printf '%s\n' "$next" | sed -n 4,5p | paste -sd,)" "105,106" \
   "its next grant (105) and refund of c0 (106) work"
is "$(cat "$log.holder1")" "t" "the holder's charge and rollback ran without an error"
is "$(q "$db" "SELECT count(*) FROM api_usage_log WHERE request_id = 'held-1'")" "0" \
   "the rolled-back holder left no usage row"

# Round 2: the holder commits a request id the waiter also sends.
holder 2 same COMMIT
h2=$holder_pid
wait_holding 2
ok $? "a second holder charged request id 'same' and holds the row"
psql -X -q -t -A -d "$db" >"$log.waiter2" 2>&1 <<SQL
\set VERBOSITY verbose
\timing on
\echo STEP same-lock
SET lock_timeout = '200ms';
SELECT * FROM dd_charge_credit('hot', 5, 'same');
\echo STEP same-statement
SET lock_timeout = 0;
BEGIN;
SET LOCAL statement_timeout = '300ms';
SELECT * FROM dd_charge_credit('hot', 5, 'same');
ROLLBACK;
\echo STEP same-after
INSERT INTO release VALUES (2);
SET lock_timeout = 0;
SELECT format('%s %s %s', ok, balance, replayed) FROM dd_charge_credit('hot', 5, 'same');
\echo STEP end
SQL
wait "$h2"
waiter=$log.waiter2
timed_out same-lock 55P03 "canceling statement due to lock timeout" 200
timed_out same-statement 57014 "canceling statement due to statement timeout" 300
is "$(step same-after | grep -v '^Time:')" "t 101 t" \
   "after the holder committed 'same', the waiter's retry is its replay (balance 101), not a second charge"
is "$(q "$db" "SELECT count(*) || ' ' || sum(credits) FROM api_usage_log WHERE request_id = 'same'")" "1 5" \
   "'same' has one usage row of 5 credits"
is "$(q "$db" "SELECT balance FROM api_credits WHERE user_id = 'hot'")" "101" \
   "balance: 100 + 10 (grant) + 1 (refund) - 1 - 1 - 1 - 2 - 5 = 101"
is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" "dd_credit_audit() is empty"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
