#!/usr/bin/env bash
# test/t/072_crash.sh -- no acknowledged write is lost to a crash, and none
# is applied twice.
#
# The test runs its own cluster, durable (fsync = on, synchronous_commit =
# on; the suite's cluster runs without both), on port PGPORT + 1.  Five
# rounds:
#
#   1. 16 clients, each one psql session running its own list of
#      autocommit calls -- dd_charge_credit, dd_log_usage, dd_track_event in
#      turn, every one with a request id (or event id) of its own, on 8
#      shared users -- print one line per call that returned.  psql prints
#      a result only once the server has reported the whole statement done,
#      and in autocommit the server commits before it reports, so each line
#      is an acknowledged request.
#   2. At a different moment in every round (1.3 to 3.7 s into the load),
#      kill -9: of the postmaster alone in rounds 1, 3 and 5 (its backends
#      finish what they are doing and exit when they notice), of every
#      server process at the same instant in rounds 2 and 4.
#   3. A restart (crash recovery), then each client sends again the request
#      that was in flight when the server died (it may or may not have
#      committed) and its last acknowledged charge and event.
#
# After every round, over all rounds so far, first (before anything is sent
# again): every acknowledged charge has its usage row with its amount, every
# acknowledged free request its usage row, every acknowledged event its
# row; then, after: no request id has two usage rows;
# every balance is exactly the seed minus the credits of its usage rows
# (computed here, not by the extension); dd_credit_audit() is empty; the
# acknowledged requests sent again are replays (charges replayed = true,
# events NULL), and an in-flight charge sent again is charged once: as a
# replay if it had committed, as a new charge if not.  Each round must have
# acknowledged requests of all three kinds before the kill.
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/scripts/lib.sh"

rounds=5
clients=16
users=8
seed=1000000000
calls=10000    # per client and round: more than a round runs

plan $((2 + 6 * rounds))

port=$((PGPORT + 1))
datadir=$DD_RUN/crash
sockdir=/tmp/dd_clipper.$port
work=$DD_ROOT/tmp_check/crash
db=dd_crash
rm -rf "$work"
mkdir -p "$work"

# The cluster: dd_cluster_start, then every restart with the same options.
opts="-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=40"
dd_cluster_start "$DD_BINDIR" "$datadir" "$port" "$opts" >/dev/null
trap 'dd_cluster_stop_dir "$datadir"' EXIT
[ "$(q postgres "SELECT current_setting('fsync') || current_setting('synchronous_commit')")" = onon ]
ok $? "a durable cluster (fsync = on, synchronous_commit = on) on port $port"

q postgres "CREATE DATABASE $db" >/dev/null
q "$db" "
CREATE EXTENSION dd_clipper;
SELECT count(dd_grant_credit('u' || i, $seed, 'seed')) FROM generate_series(0, $users - 1) i;
-- What the clients were told, loaded after each round.
CREATE TABLE acks (round int, kind text, request_id text, user_id text, amount int, ok boolean);
CREATE TABLE retries (round int, kind text, what text, request_id text, user_id text,
                      amount int, result text);
" >/dev/null
ok $? "$users users with $seed credits each; tables for the acknowledgements"

# gen_awk: the awk function gen(r, c, n), the SQL of client c's call n in
# round r, which prints on return kind|request id|user|amount|result.
gen_awk() {
    cat <<'AWK'
function gen(r, c, n,    id, u, a, k) {
    id = "r" r "c" c "n" n
    u = "u" ((n * 7 + c) % users)
    k = n % 3
    if (k == 0) {
        a = 1 + int(n / 3) % 3
        return "SELECT 'C|" id "|" u "|" a "|' || x.ok || ',' || x.replayed FROM dd_charge_credit('" u "', " a ", '" id "', '/crash') x;"
    }
    if (k == 1)
        return "SELECT 'L|" id "|" u "||' || dd_log_usage('" u "', '/crash', '" id "');"
    return "SELECT 'E|" id "|" u "||' || (dd_track_event('" u "', 'crash', '{}', '" id "') IS NOT NULL);"
}
AWK
}

# alive PID...: those of the processes PID... that still run.
alive() {
    local p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && echo "$p"; done
}

# start_server: start the cluster again (three tries, a second apart: a
# process of the old server that was not found above still holding the old
# shared memory makes the new postmaster refuse to start until it is gone).
start_server() {
    local try
    for try in 1 2 3; do
        dd_as_pg "$DD_BINDIR/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 120 \
            -o "-p $port -k $sockdir -c listen_addresses='' $opts" start >>"$work/pg_ctl.log" 2>&1 \
            && return 0
        sleep 1
    done
    return 1
}

# lost R: every acknowledged request of every round so far is there (run
# before anything is sent again, which could write a lost one anew).
lost() {
    local r=$1 lost
    lost=$(q "$db" "
        SELECT format('%s charges, %s free requests, %s events',
            count(*) FILTER (WHERE a.kind = 'C' AND NOT EXISTS (
                SELECT FROM api_usage_log l WHERE l.user_id = a.user_id
                AND l.request_id = a.request_id AND l.credits = a.amount)),
            count(*) FILTER (WHERE a.kind = 'L' AND NOT EXISTS (
                SELECT FROM api_usage_log l WHERE l.user_id = a.user_id
                AND l.request_id = a.request_id AND l.credits = 0)),
            count(*) FILTER (WHERE a.kind = 'E' AND NOT EXISTS (
                SELECT FROM usage_events e WHERE e.user_id = a.user_id
                AND e.event_id = a.request_id)))
        FROM acks a")
    is "$lost" "0 charges, 0 free requests, 0 events" \
       "round $r: every acknowledged request is there, with its amount (lost: $lost)"
}

# ledger R: nothing applied twice, over every round so far.
ledger() {
    local r=$1 doubled debits audit
    doubled=$(q "$db" "
        SELECT (SELECT count(*) FROM (SELECT request_id FROM api_usage_log
                GROUP BY 1 HAVING count(*) > 1) d)
             + (SELECT count(*) FROM (SELECT event_id FROM usage_events
                WHERE event_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d)")
    debits=$(q "$db" "
        SELECT count(*) FROM api_credits c
        WHERE c.balance <> $seed - (SELECT coalesce(sum(credits), 0) FROM api_usage_log l
                                    WHERE l.user_id = c.user_id)")
    audit=$(q "$db" "SELECT count(*) FROM dd_credit_audit()")
    is "$doubled $debits $audit" "0 0 0" \
       "round $r: no request id twice, every balance = seed - its usage rows' credits, dd_credit_audit() empty"
}

kinds() {
    q "$db" "SELECT format('%s charges, %s free, %s events',
                 count(*) FILTER (WHERE kind = 'C'), count(*) FILTER (WHERE kind = 'L'),
                 count(*) FILTER (WHERE kind = 'E')) FROM acks WHERE round = $1"
}

for r in $(seq 1 $rounds); do
    # The clients' lists: more calls than a round can run (checked below).
    awk -v r="$r" -v clients="$clients" -v users="$users" -v calls="$calls" -v dir="$work" "$(gen_awk)"'
        BEGIN { for (c = 1; c <= clients; c++) {
                    f = dir "/r" r ".c" c ".sql"
                    for (n = 0; n < calls; n++) print gen(r, c, n) >f
                    close(f) } }'
    pids=()
    for c in $(seq 1 $clients); do
        psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" -f "$work/r$r.c$c.sql" \
            >"$work/r$r.c$c.out" 2>"$work/r$r.c$c.err" &
        pids+=($!)
    done
    # A different moment in every round: 0.8 + 0.5 r s, plus 0 to 0.4 s.
    delay=$(awk -v r="$r" -v x="$RANDOM" 'BEGIN { printf "%.2f", 0.8 + 0.5 * r + 0.4 * x / 32767 }')
    sleep "$delay"
    pm=$(head -1 "$datadir/postmaster.pid")
    if [ $((r % 2)) -eq 1 ]; then
        how="the postmaster"
        kids=$(ps -o pid= --ppid "$pm")
        kill -9 "$pm"
    else
        # At the same instant: stopped first (the postmaster first, so that
        # it forks no more), none can act on another's death.
        how="every server process"
        kill -STOP "$pm"
        kids=$(ps -o pid= --ppid "$pm")
        kill -STOP $kids 2>/dev/null
        kill -9 "$pm" $kids 2>/dev/null
    fi
    # The clients end when their connection is lost (at most 30 s).
    for i in $(seq 1 300); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    [ $alive = 1 ] && { diag "clients still running 30 s after the kill"; kill "${pids[@]}" 2>/dev/null; }
    wait "${pids[@]}"
    # The old processes must be gone before a restart (they hold the old
    # shared memory); backends notice the dead postmaster at their next wait.
    for i in $(seq 1 300); do
        [ -z "$(alive "$pm" $kids)" ] && break
        sleep 0.1
    done
    left=$(alive "$pm" $kids)
    [ -n "$left" ] && { diag "killing what is left: $left"; kill -9 $left; sleep 0.5; }

    # Acknowledgements, and each client's request in flight at the kill.
    errors=$(cat "$work"/r$r.c*.err | grep -E '^(psql:.*)?ERROR' | head -3)
    cat "$work"/r$r.c*.out >"$work/r$r.acks"
    acked=$(wc -l <"$work/r$r.acks")
    ran_out=$(for c in $(seq 1 $clients); do wc -l <"$work/r$r.c$c.out"; done | grep -cx $calls)

    recovered_before=$(grep -c 'automatic recovery in progress' "$datadir/server.log")
    start_server
    ok $? "round $r: kill -9 of $how after $delay s, then a restart"
    recovered=$(grep -c 'automatic recovery in progress' "$datadir/server.log")
    [ "$recovered" -eq $((recovered_before + 1)) ]
    ok $? "round $r: the restart ran crash recovery"

    {
        echo "COPY acks (kind, request_id, user_id, amount, ok) FROM STDIN WITH (DELIMITER '|', NULL '');"
        awk -F'|' '{ print $1 "|" $2 "|" $3 "|" $4 "|" \
            ($1 == "C" ? substr($5, 1, 1) : $1 == "L" ? ($5 != "" ? "t" : "f") : ($5 == "true" ? "t" : "f")) }' \
            "$work/r$r.acks"
        echo '\.'
        echo "UPDATE acks SET round = $r WHERE round IS NULL;"
    } | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
    k=$(kinds "$r")
    diag "round $r: $acked requests acknowledged before the kill ($k)"
    [ -z "$errors" ] && [ "$acked" -gt 0 ] && [ "$ran_out" = 0 ] && \
        [ "$(q "$db" "SELECT count(DISTINCT kind) FROM acks WHERE round = $r")" = 3 ]
    ok $? "round $r: the load ran and acknowledged charges, free requests and events ($acked)"
    [ -n "$errors" ] && diag "client errors: $errors"
    [ "$ran_out" = 0 ] || diag "$ran_out clients ran out of calls before the kill"

    lost "$r"

    # Send again: each client's call in flight, its last acknowledged charge
    # and event.  In flight: the first call of its list it has no line for.
    awk -F'|' -v r="$r" -v users="$users" "$(gen_awk)"'
        BEGIN { print "\\set ON_ERROR_STOP 1" }
        FNR == 1 && NR > 1 { flush() }
        { c = FILENAME; sub(/.*\.c/, "", c); sub(/\.out$/, "", c); n = FNR
          if ($1 == "C") lc = $2; if ($1 == "E") le = $2 }
        END { flush() }
        function again(what, k) {
            s = gen(r, c, k); sub(/;$/, "", s)
            print "SELECT \047" what "|\047 || x FROM (" s ") s(x);"
        }
        function flush(   k) {
            again("inflight", n)
            if (lc != "") { k = lc; sub(/.*n/, "", k); again("acked", k) }
            if (le != "") { k = le; sub(/.*n/, "", k); again("acked", k) }
            lc = ""; le = ""; n = 0
        }' "$work"/r$r.c*.out >"$work/r$r.retry.sql"
    psql -X -q -t -A -d "$db" -f "$work/r$r.retry.sql" >"$work/r$r.retry" 2>&1
    retry_rc=$?
    sent=$(grep -c '^SELECT' "$work/r$r.retry.sql")
    {
        echo "COPY retries (what, kind, request_id, user_id, amount, result) FROM STDIN WITH (DELIMITER '|', NULL '');"
        grep -E '^(inflight|acked)\|' "$work/r$r.retry"
        echo '\.'
        echo "UPDATE retries SET round = $r WHERE round IS NULL;"
    } | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
    res=$(q "$db" "
        SELECT format('%s/%s acknowledged sent again replayed; in-flight charges: %s replayed, %s charged, %s other',
            count(*) FILTER (WHERE what = 'acked' AND (kind, result) IN (('C', 'true,true'), ('E', 'false'))),
            count(*) FILTER (WHERE what = 'acked'),
            count(*) FILTER (WHERE what = 'inflight' AND kind = 'C' AND result = 'true,true'),
            count(*) FILTER (WHERE what = 'inflight' AND kind = 'C' AND result = 'true,false'),
            count(*) FILTER (WHERE what = 'inflight' AND kind = 'C' AND result NOT IN ('true,true', 'true,false')))
        FROM retries WHERE round = $r")
    diag "round $r: $res"
    is "$(q "$db" "SELECT count(*) FILTER (WHERE what = 'acked' AND NOT ((kind, result) IN (('C', 'true,true'), ('E', 'false'))))
                   + count(*) FILTER (WHERE what = 'inflight' AND kind = 'C' AND result NOT IN ('true,true', 'true,false'))
                   || ' of ' || count(*) FROM retries WHERE round = $r")" \
       "0 of $sent$([ $retry_rc = 0 ] || echo ", psql exit $retry_rc")" \
       "round $r: requests sent again after the restart: acknowledged ones replay, in-flight charges charge once"
    ledger "$r"
done

done_testing
