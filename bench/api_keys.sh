#!/usr/bin/env bash
# bench/api_keys.sh -- API keys, side by side, on a throwaway durable cluster.
#
#   bash bench/api_keys.sh
#
# Authorize and charge (one request of the middleware path: verify the key,
# charge 1 credit with a request id, log, touch last_used_at when due):
#   dd        SELECT * FROM dd_authorize_and_charge(key, 1, request_id, endpoint)
#   mw        what a middleware sends: BEGIN; SELECT key by hash; UPDATE
#             api_credits ... RETURNING; INSERT INTO api_usage_log; UPDATE
#             api_keys (when due); COMMIT -- separate statements
#   plpgsql   the same logic as one PL/pgSQL call (bench/api_keys/setup.sql)
# Verify only:
#   verify    SELECT * FROM dd_verify_api_key(key), in the steady state below
#   fresh     the same with every key used just now: no last_used_at write is
#             due during the run, the pure read path
#   select    the bare indexed SELECT by hash (no checks, never writes)
# Each on many keys (DD_BENCH_KEYS keys, one user each, at random) and on one
# hot key, at 1, 8 and 32 clients; DD_BENCH_ROUNDS rounds of DD_BENCH_SECONDS
# seconds each, interleaved (every round runs every cell, contenders in a
# rotating order).  Before every run last_used_at of every key is set to a
# random age within the touch interval (60 s), the steady state of keys in
# use: about one key in twenty comes due during a 3-second run.
#
# DD_BENCH_SYNC=off runs the same with synchronous_commit off (fsync still
# on): commits no longer wait for the disk, which shows the CPU and
# round-trip cost that a slow or busy disk hides.
#
# Prints the median TPS of each cell and, as ratios, the median over rounds
# of each round's ratio (contenders of one round run back to back, so a
# round's ratio is measured under the same background load).
# The cluster is durable (fsync, synchronous_commit on), listens on a unix
# socket only, on DD_BENCH_PORT (default 54422), in tmp_bench_api_keys/.
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54422}
secs=${DD_BENCH_SECONDS:-3}
rounds=${DD_BENCH_ROUNDS:-5}
nkeys=${DD_BENCH_KEYS:-10000}
clients_list=${DD_BENCH_CLIENTS:-"1 8 32"}
sync=${DD_BENCH_SYNC:-on}
dir=$DD_ROOT/tmp_bench_api_keys
scripts=$DD_ROOT/bench/api_keys

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
dd_log "loading $nkeys keys"
psql -X -q -v ON_ERROR_STOP=1 -v nkeys="$nkeys" -d "$db" -f "$scripts/setup.sql" >/dev/null

results=$dir/results.txt
: >"$results"

# run SECTION SCENARIO CLIENTS CONTENDER SCRIPT ROUND
run() {
    local section=$1 scenario=$2 clients=$3 contender=$4 script=$5 round=$6
    local n=$nkeys jobs=$(( clients < 2 ? 1 : 2 )) out tps
    [ "$scenario" = hot ] && n=1
    if [ "$contender" = fresh ]; then
        psql -X -q -d "$db" -c "UPDATE api_keys SET last_used_at = now()" >/dev/null
    else
        psql -X -q -d "$db" -c "UPDATE api_keys SET last_used_at = now() - random() * interval '60 seconds'" >/dev/null
    fi
    out=$("$bindir/pgbench" -n -M prepared -T "$secs" -c "$clients" -j "$jobs" \
          -D nkeys="$n" -f "$scripts/$script" "$db" 2>&1) || true
    tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)
    if [ -z "$tps" ] || printf '%s\n' "$out" | grep -q 'aborted'; then
        printf '%s\n' "$out" >&2
        dd_die "$contender ($section, $scenario, $clients clients) failed"
    fi
    printf '%s %s %s %s %s %s\n' "$section" "$scenario" "$clients" "$contender" "$round" "$tps" >>"$results"
    printf '  round %s  %-6s %-4s %2s clients  %-8s %10.0f tps\n' "$round" "$section" "$scenario" "$clients" "$contender" "$tps"
}

auth=(dd:auth_dd.sql mw:auth_middleware.sql plpgsql:auth_plpgsql.sql)
verify=(verify:verify_dd.sql fresh:verify_dd.sql select:verify_select.sql)

for round in $(seq 1 "$rounds"); do
    dd_log "round $round of $rounds"
    for scenario in many hot; do
        for clients in $clients_list; do
            # rotate the order of the contenders from round to round
            for i in 0 1 2; do
                c=${auth[$(( (i + round) % 3 ))]}
                run auth "$scenario" "$clients" "${c%%:*}" "${c#*:}" "$round"
            done
            for i in 0 1 2; do
                c=${verify[$(( (i + round) % 3 ))]}
                run verify "$scenario" "$clients" "${c%%:*}" "${c#*:}" "$round"
            done
        done
    done
done

# median SECTION SCENARIO CLIENTS CONTENDER
median() {
    awk -v s="$1" -v sc="$2" -v c="$3" -v k="$4" \
        '$1 == s && $2 == sc && $3 == c && $4 == k { print $6 }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) print 0;
            else if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio SECTION SCENARIO CLIENTS A B: median over rounds of A's TPS / B's TPS
ratio() {
    awk -v s="$1" -v sc="$2" -v c="$3" -v a="$4" -v b="$5" '
        $1 == s && $2 == sc && $3 == c && $4 == a { ta[$5] = $6 }
        $1 == s && $2 == sc && $3 == c && $4 == b { tb[$5] = $6 }
        END { for (r in ta) if ((r in tb) && tb[r] > 0) print ta[r] / tb[r] }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) print 0;
            else if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

dd_log "sanity: the ledger balances after all runs"
psql -X -q -d "$db" -c "SELECT count(*) AS users_off_ledger FROM dd_credit_audit()"

echo
echo "Median TPS over $rounds rounds of ${secs}s; ratios are medians of the rounds' ratios;"
echo "$nkeys keys (many) or one hot key; $(nproc) cores; fsync on, synchronous_commit $sync."
echo
echo "dd_authorize_and_charge vs the middleware's statements and PL/pgSQL:"
echo
echo "| keys | clients | dd_authorize_and_charge | middleware (5 statements) | PL/pgSQL | dd / middleware | dd / PL/pgSQL |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for scenario in many hot; do
    for clients in $clients_list; do
        dd=$(median auth "$scenario" "$clients" dd)
        mw=$(median auth "$scenario" "$clients" mw)
        pl=$(median auth "$scenario" "$clients" plpgsql)
        rmw=$(ratio auth "$scenario" "$clients" dd mw)
        rpl=$(ratio auth "$scenario" "$clients" dd plpgsql)
        awk -v sc="$scenario" -v c="$clients" -v dd="$dd" -v mw="$mw" -v pl="$pl" \
            -v rmw="$rmw" -v rpl="$rpl" 'BEGIN {
            printf "| %s | %d | %.0f | %.0f | %.0f | %.2fx | %.2fx |\n",
                sc, c, dd, mw, pl, rmw, rpl }'
    done
done
echo
echo "dd_verify_api_key vs a bare indexed SELECT by hash:"
echo
echo "| keys | clients | dd_verify_api_key (steady state) | dd_verify_api_key (none due) | SELECT by hash | steady / SELECT | none due / SELECT |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for scenario in many hot; do
    for clients in $clients_list; do
        v=$(median verify "$scenario" "$clients" verify)
        f=$(median verify "$scenario" "$clients" fresh)
        s=$(median verify "$scenario" "$clients" select)
        rv=$(ratio verify "$scenario" "$clients" verify select)
        rf=$(ratio verify "$scenario" "$clients" fresh select)
        awk -v sc="$scenario" -v c="$clients" -v v="$v" -v f="$f" -v s="$s" \
            -v rv="$rv" -v rf="$rf" 'BEGIN {
            printf "| %s | %d | %.0f | %.0f | %.0f | %.2fx | %.2fx |\n", sc, c, v, f, s, rv, rf }'
    done
done
