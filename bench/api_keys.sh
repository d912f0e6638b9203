#!/usr/bin/env bash
# bench/api_keys.sh -- API keys, side by side, on a throwaway durable
# cluster, on a unix socket and behind a modelled network.
#
#   bash bench/api_keys.sh                                  # full run
#   DD_BENCH_ROUNDS=1 DD_BENCH_SECONDS=1 bash bench/api_keys.sh   # quick check
#
# Authorize and charge (one request of the middleware path: verify the key,
# charge 1 credit with a request id, log, touch last_used_at when due),
# round trips per request in brackets:
#   dd        SELECT * FROM dd_authorize_and_charge(key, 1, request_id, endpoint) [1]
#   mw        what a middleware sends: BEGIN; SELECT key by hash; UPDATE
#             api_credits ... RETURNING; INSERT INTO api_usage_log; UPDATE
#             api_keys (when due); COMMIT -- separate statements [5, 6 when due]
#   plpgsql   the same logic as one PL/pgSQL call (bench/api_keys/setup.sql) [1]
# Verify only, on the unix socket (every contender is one statement, so a
# network adds the same wait to each):
#   verify    SELECT * FROM dd_verify_api_key(key), in the steady state below
#   fresh     the same with every key used just now: no last_used_at write is
#             due during the run, the pure read path
#   select    the bare indexed SELECT by hash (no checks, never writes)
# Each on many keys (DD_BENCH_KEYS keys, one user each, at random) and on one
# hot key, at 1, 8 and 32 clients; authorize at each RTT of DD_BENCH_RTTS:
# 0 is the unix socket, the scripts as written; above 0 every SQL statement
# waits one round-trip time first (a pgbench \sleep, calibrated; see
# bench/lib.sh): 1 ms is an application in another zone or behind a
# serverless driver, 200 (add it to the list) one in the same network.
# Rounds are interleaved (every round runs every cell, contenders in a
# rotating order).  Before every run last_used_at of every key is set to a
# random age within the touch interval (60 s), the steady state of keys in
# use: about one key in twenty comes due during a 3-second run.
#
# DD_BENCH_SYNC=off runs the same with synchronous_commit off (fsync still
# on): commits no longer wait for the disk, which shows the CPU and
# round-trip cost that a slow or busy disk hides.
#
# Prints the median TPS of each cell, the ratios as the median over rounds
# of each round's ratio (contenders of one round run back to back, so a
# round's ratio is measured under the same background load), the median
# server CPU per request (microseconds; it hardly moves when other programs
# compete for the cores, unlike TPS), and a summary against the project's
# target (dd_authorize_and_charge ≥ 3x the middleware at RTT 1 ms, 1 and 8
# clients).  The cluster is durable (fsync on), listens on a unix socket
# only, in tmp_bench_api_keys/.  Raw results:
# bench/results/api_keys-<time>.tsv (and .calibration.txt).
#
# Environment (the same names in every bench/*.sh runner):
#   DD_BENCH_PORT      port of the throwaway cluster (54422)
#   DD_BENCH_ROUNDS    rounds (4)
#   DD_BENCH_SECONDS   seconds per pgbench run (3)
#   DD_BENCH_CLIENTS   client counts ("1 8 32")
#   DD_BENCH_RTTS      round-trip times in microseconds for authorize ("0 1000")
#   DD_BENCH_RTT_CALIBRATE  off: \sleep the nominal RTT, uncorrected (on)
#   DD_BENCH_SYNC      synchronous_commit (on)
#   DD_BENCH_KEYS      keys in the many-keys cells (10000)
# A run takes about 54 * ROUNDS * (SECONDS + 0.7) seconds, plus a minute to
# build, load and calibrate: about 14 minutes with the defaults; the quick
# check above about 2.
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
source "$DD_ROOT/bench/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54422}
secs=${DD_BENCH_SECONDS:-3}
rounds=${DD_BENCH_ROUNDS:-4}
nkeys=${DD_BENCH_KEYS:-10000}
clients_list=${DD_BENCH_CLIENTS:-"1 8 32"}
rtts=${DD_BENCH_RTTS:-"0 1000"}
sync=${DD_BENCH_SYNC:-on}
dir=$DD_ROOT/tmp_bench_api_keys
scripts=$DD_ROOT/bench/api_keys
out=$DD_ROOT/bench/results
mkdir -p "$out"
raw=$out/api_keys-$(date -u +%Y%m%dT%H%M%SZ).tsv

dd_install_packages
dd_build
dd_log "installing into tmp_bench_api_keys/"
bindir=$(dd_temp_install "$dir") || exit 1
dd_log "starting a durable throwaway cluster on port $port"
dd_cluster_start "$bindir" "$dir/data" "$port" \
    -c fsync=on -c synchronous_commit="$sync" -c max_connections=100 \
    -c shared_buffers=256MB -c checkpoint_timeout=30min -c max_wal_size=4GB
trap dd_cluster_stop EXIT

db=dd_bench
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
export PGDATABASE=$db
dd_log "loading $nkeys keys"
psql -X -q -v ON_ERROR_STOP=1 -v nkeys="$nkeys" -f "$scripts/setup.sql" >/dev/null

# shellcheck disable=SC2086
bench_calibrate $rtts
printf '%s' "$BENCH_CALIBRATION" >"${raw%.tsv}.calibration.txt"

printf 'round\tsection\tscenario\tclients\trtt_us\tvariant\ttps\tcpu_us_per_tx\n' >"$raw"

# run SECTION SCENARIO CLIENTS RTT CONTENDER SCRIPT ROUND
run() {
    local section=$1 scenario=$2 clients=$3 rtt=$4 contender=$5 script=$6 round=$7
    local n=$nkeys
    [ "$scenario" = hot ] && n=1
    if [ "$contender" = fresh ]; then
        psql -X -q -c "UPDATE api_keys SET last_used_at = now()" >/dev/null
    else
        psql -X -q -c "UPDATE api_keys SET last_used_at = now() - random() * interval '60 seconds'" >/dev/null
    fi
    bench_run "$raw" "$round" "$section" "$scenario" "$clients" "$rtt" "$contender" -- \
        -T "$secs" -D nkeys="$n" -f "$script" "$db"
}

auth=(dd mw plpgsql)
verify=(verify fresh select)
declare -A file=([verify]=verify_dd.sql [fresh]=verify_dd.sql [select]=verify_select.sql)

for round in $(seq 1 "$rounds"); do
    dd_log "round $round of $rounds"
    for rtt in $rtts; do
        mapfile -t files < <(bench_scripts "$dir/scripts" "$rtt" \
            "$scripts/auth_dd.sql" "$scripts/auth_middleware.sql" "$scripts/auth_plpgsql.sql")
        for scenario in many hot; do
            for clients in $clients_list; do
                # rotate the order of the contenders from round to round
                for i in 0 1 2; do
                    k=$(( (i + round) % 3 ))
                    run auth "$scenario" "$clients" "$rtt" "${auth[$k]}" "${files[$k]}" "$round"
                done
                [ "$rtt" -eq 0 ] || continue
                for i in 0 1 2; do
                    c=${verify[$(( (i + round) % 3 ))]}
                    run verify "$scenario" "$clients" 0 "$c" "$scripts/${file[$c]}" "$round"
                done
            done
        done
    done
done

dd_log "sanity: the ledger balances after all runs"
psql -X -q -c "SELECT count(*) AS users_off_ledger FROM dd_credit_audit()"

tps() { bench_fmt '%.0f' "$(bench_median "$raw" "$@" 7)"; }
cpu() { bench_fmt '%.0f' "$(bench_median "$raw" "$@" 8)"; }
x() { bench_fmt '%.2fx' "$(bench_ratio "$raw" "$@")"; }

echo
echo "Median TPS over $rounds rounds of ${secs}s; ratios are medians of the rounds' ratios;"
echo "$nkeys keys (many) or one hot key; $(nproc) cores; fsync on, synchronous_commit $sync;"
echo "$(date -u +%Y-%m-%d).  Raw: ${raw#"$DD_ROOT"/}."
echo "Network model (pgbench \\sleep before each statement, idle client):"
printf '%s' "$BENCH_CALIBRATION" | sed 's/^/  /'
echo
echo "dd_authorize_and_charge vs the middleware's statements and PL/pgSQL:"
echo
echo "| keys | clients | RTT | dd_authorize_and_charge | middleware (5-6 statements) | PL/pgSQL | dd / middleware | dd / PL/pgSQL |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
for rtt in $rtts; do
    for scenario in many hot; do
        for clients in $clients_list; do
            c=(auth "$scenario" "$clients" "$rtt")
            echo "| $scenario | $clients | $(bench_rtt_label "$rtt") | $(tps "${c[@]}" dd) | $(tps "${c[@]}" mw) | $(tps "${c[@]}" plpgsql) | $(x "${c[@]}" dd mw) | $(x "${c[@]}" dd plpgsql) |"
        done
    done
done
echo
echo "dd_verify_api_key vs a bare indexed SELECT by hash (unix socket):"
echo
echo "| keys | clients | dd_verify_api_key (steady state) | dd_verify_api_key (none due) | SELECT by hash | steady / SELECT | none due / SELECT |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for scenario in many hot; do
    for clients in $clients_list; do
        c=(verify "$scenario" "$clients" 0)
        echo "| $scenario | $clients | $(tps "${c[@]}" verify) | $(tps "${c[@]}" fresh) | $(tps "${c[@]}" select) | $(x "${c[@]}" verify select) | $(x "${c[@]}" fresh select) |"
    done
done
echo
echo "Median server CPU per request, microseconds (lower is better):"
echo
echo "| keys | clients | RTT | dd_authorize_and_charge | middleware | PL/pgSQL | dd_verify_api_key (steady) | (none due) | SELECT by hash |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for rtt in $rtts; do
    for scenario in many hot; do
        for clients in $clients_list; do
            c=(auth "$scenario" "$clients" "$rtt")
            v=(verify "$scenario" "$clients" "$rtt")
            echo "| $scenario | $clients | $(bench_rtt_label "$rtt") | $(cpu "${c[@]}" dd) | $(cpu "${c[@]}" mw) | $(cpu "${c[@]}" plpgsql) | $(cpu "${v[@]}" verify) | $(cpu "${v[@]}" fresh) | $(cpu "${v[@]}" select) |"
        done
    done
done

# The target: at RTT 1 ms, dd_authorize_and_charge ≥ 3x the middleware's
# statements at 1 and 8 clients.
echo
echo "Against the target (median of the rounds' ratios):"
echo
echo "| keys | clients | RTT | dd / middleware |"
echo "|---|---:|---|---|"
for scenario in many hot; do
    for clients in $clients_list; do
        case $clients in 1|8) ;; *) continue ;; esac
        r=$(bench_ratio "$raw" auth "$scenario" "$clients" 1000 dd mw)
        echo "| $scenario | $clients | 1 ms | $(bench_fmt '%.2fx' "$r") $(bench_target "$r" 3) |"
    done
done
