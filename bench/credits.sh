#!/usr/bin/env bash
# bench/credits.sh -- dd_charge_credit against what other clients send for
# the same work, side by side on one throwaway durable cluster.
#
#   (a) dd_charge_credit(user_id, 1, request_id, endpoint): one call
#   (b) an ORM: BEGIN; UPDATE api_credits ... RETURNING; INSERT INTO
#       api_usage_log ...; COMMIT -- four statements
#   (c) the best plain SQL: one CTE that updates and inserts
#   (d) the same logic as dd_charge_credit in PL/pgSQL
#   (e) the bare UPDATE ... WHERE balance >= 1 RETURNING (no log, no
#       idempotency: less work)
#
# Each on 100,000 users at random and on one hot user, at 1, 8 and 32
# clients, pgbench -M prepared (every baseline at its best), unix socket.
# Rounds are interleaved (every cell once per round, the variant order
# rotating), and the usage log is emptied and a checkpoint taken before
# every run, so no variant inherits another's bloat.  Prints the median TPS
# of every cell and dd_charge_credit's ratio to each baseline as a markdown
# table.  Durable settings: fsync and synchronous_commit on.
#
# Environment: DD_BENCH_PORT (54412), DD_BENCH_SECONDS per run (4),
# DD_BENCH_ROUNDS (5).  About 2 * 3 * 5 * ROUNDS * (SECONDS + 2) seconds
# (15 minutes with the defaults).
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54412}
seconds=${DD_BENCH_SECONDS:-4}
rounds=${DD_BENCH_ROUNDS:-5}
dir=$DD_ROOT/bench/credits
out=$DD_ROOT/bench/results
mkdir -p "$out"
raw=$out/credits-$(date -u +%Y%m%dT%H%M%SZ).tsv

dd_install_packages
dd_build
dd_log "installing into tmp_bench_credits/"
bindir=$(dd_temp_install "$DD_ROOT/tmp_bench_credits") || exit 1
dd_log "starting a durable cluster on port $port"
dd_cluster_start "$bindir" "$DD_ROOT/tmp_bench_credits/data" "$port" \
    -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB \
    -c max_connections=60 -c max_wal_size=4GB
trap dd_cluster_stop EXIT

psql -X -q -d postgres -c 'CREATE DATABASE dd_bench' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d dd_bench -f "$dir/setup.sql" >/dev/null

# cluster_ticks: CPU clock ticks the cluster has used so far: the
# postmaster, its exited children (reaped into its cutime/cstime) and its
# live children.  The difference over a run, per transaction, is the
# server CPU a charge costs: unlike TPS it hardly moves when other
# programs compete for the cores.
cluster_ticks() {
    local pm t c
    pm=$(head -1 "$DD_DATADIR/postmaster.pid")
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
    for c in $(cat "/proc/$pm/task/$pm/children"); do
        t=$(( t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0) ))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)

variants=(a_dd_charge b_orm c_cte d_plpgsql e_bare)
printf 'round\tscenario\tclients\tvariant\ttps\tcpu_us_per_tx\n' >"$raw"

for round in $(seq 1 "$rounds"); do
    for scenario in many hot; do
        [ "$scenario" = many ] && nusers=100000 || nusers=1
        for clients in 1 8 32; do
            jobs=$(( clients < 2 ? 1 : 2 ))
            # Rotate the order each round and cell, so no variant always
            # runs first (or right after a checkpoint-heavy neighbour).
            shift_by=$(( (round + clients) % ${#variants[@]} ))
            order=("${variants[@]:shift_by}" "${variants[@]:0:shift_by}")
            for v in "${order[@]}"; do
                psql -X -q -d dd_bench -c 'TRUNCATE api_usage_log' -c 'CHECKPOINT' >/dev/null
                t0=$(cluster_ticks)
                log=$("$bindir/pgbench" -n -M prepared -c "$clients" -j "$jobs" \
                        -T "$seconds" -D nusers=$nusers -f "$dir/$v.sql" dd_bench 2>&1)
                sleep 0.2   # let the exited backends be reaped
                t1=$(cluster_ticks)
                tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$log")
                n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$log")
                cpu=$(( ${n:-0} > 0 ? (t1 - t0) * 1000000 / hz / n : 0 ))
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$scenario" "$clients" "$v" "${tps:-0}" "$cpu" >>"$raw"
                printf '  round %s  %-5s %2s clients  %-12s %8.0f tps  %5d us CPU/tx\n' \
                    "$round" "$scenario" "$clients" "$v" "${tps:-0}" "$cpu"
            done
        done
    done
done

dd_log "medians of $rounds rounds, $seconds s each (raw: ${raw#$DD_ROOT/})"
# table COLUMN: medians of one raw column per cell, and the ratios of
# (a) to each baseline.
table() {
    awk -F'\t' -v col="$1" '
    NR > 1 { key = $2 SUBSEP $3 SUBSEP $4; n[key]++; v[key, n[key]] = $col }
    function median(key,   i, j, t, a, m) {
        m = n[key]
        for (i = 1; i <= m; i++) a[i] = v[key, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
            if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        print "| users | clients | (a) dd_charge_credit | (b) ORM, 4 statements | (c) one CTE | (d) PL/pgSQL | (e) bare UPDATE | a/b | a/c | a/d | a/e |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        split("many hot", sc, " "); split("1 8 32", cl, " ")
        split("a_dd_charge b_orm c_cte d_plpgsql e_bare", vs, " ")
        for (s = 1; s <= 2; s++) for (c = 1; c <= 3; c++) {
            for (k = 1; k <= 5; k++) m[k] = median(sc[s] SUBSEP cl[c] SUBSEP vs[k])
            printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n",
                (sc[s] == "many" ? "100,000 random" : "1 hot"), cl[c],
                m[1], m[2], m[3], m[4], m[5], m[1] / m[2], m[1] / m[3], m[1] / m[4], m[1] / m[5]
        }
    }' "$raw"
}
echo
echo "Median TPS (higher is better):"
echo
table 5
echo
echo "Median server CPU per transaction, microseconds (lower is better):"
echo
table 6
