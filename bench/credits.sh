#!/usr/bin/env bash
# bench/credits.sh -- dd_charge_credit against what other clients send for
# the same work, side by side on one throwaway durable cluster, on a unix
# socket and behind a modelled network.
#
#   bash bench/credits.sh                                  # full run
#   DD_BENCH_ROUNDS=1 DD_BENCH_SECONDS=1 bash bench/credits.sh   # quick check
#
# Contenders (bench/credits/*.sql), round trips per charge in brackets:
#   (a) dd_charge_credit(user_id, 1, request_id, endpoint): one call [1]
#   (b) an ORM: BEGIN; UPDATE api_credits ... RETURNING; INSERT INTO
#       api_usage_log ...; COMMIT -- four statements [4]
#   (c) the best plain SQL: one CTE that updates and inserts [1]
#   (d) the same logic as dd_charge_credit in PL/pgSQL [1]
#   (e) the bare UPDATE ... WHERE balance >= 1 RETURNING (no log, no
#       idempotency: less work) [1]; unix socket only, where it shows the
#       server work a charge adds (behind a network it is one round trip,
#       like (a), (c) and (d))
#
# Cells: 100,000 users at random and one hot user, at 1, 8 and 32 clients,
# at each RTT of DD_BENCH_RTTS: 0 is the unix socket, the scripts as
# written; above 0 every SQL statement waits one round-trip time first (a
# pgbench \sleep, calibrated; see bench/lib.sh): 0.2 ms is an application
# in the same network, 1 ms one in another zone or behind a serverless
# driver.  pgbench -M prepared (every baseline at its best).  Rounds are
# interleaved (every cell once per round, the contender order rotating),
# and the usage log is emptied and a checkpoint taken before every run, so
# no contender inherits another's bloat.  Durable settings: fsync on,
# synchronous_commit on unless DD_BENCH_SYNC=off.
#
# Prints, per cell, the median TPS of every contender, (a)'s ratio to each
# baseline as the median of the per-round ratios (contenders of one round
# run back to back, under the same background load), the median server CPU
# per charge (microseconds; it hardly moves when other programs compete for
# the cores, unlike TPS), and a summary of the ratios the project reports
# against its targets.  Raw results: bench/results/credits-<time>.tsv (and
# .calibration.txt).
#
# Environment (the same names in every bench/*.sh runner):
#   DD_BENCH_PORT      port of the throwaway cluster (54412)
#   DD_BENCH_ROUNDS    rounds (3)
#   DD_BENCH_SECONDS   seconds per pgbench run (3)
#   DD_BENCH_CLIENTS   client counts ("1 8 32")
#   DD_BENCH_RTTS      round-trip times in microseconds ("0 200 1000")
#   DD_BENCH_RTT_CALIBRATE  off: \sleep the nominal RTT, uncorrected (on)
#   DD_BENCH_SYNC      synchronous_commit (on)
# A run takes about 78 * ROUNDS * (SECONDS + 1) seconds, plus a minute to
# build, load and calibrate: about 16 minutes with the defaults; the quick
# check above about 3.
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
source "$DD_ROOT/bench/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54412}
seconds=${DD_BENCH_SECONDS:-3}
rounds=${DD_BENCH_ROUNDS:-3}
clients_list=${DD_BENCH_CLIENTS:-"1 8 32"}
rtts=${DD_BENCH_RTTS:-"0 200 1000"}
sync=${DD_BENCH_SYNC:-on}
dir=$DD_ROOT/bench/credits
work=$DD_ROOT/tmp_bench_credits
out=$DD_ROOT/bench/results
mkdir -p "$out"
raw=$out/credits-$(date -u +%Y%m%dT%H%M%SZ).tsv

dd_install_packages
dd_build
dd_log "installing into tmp_bench_credits/"
bindir=$(dd_temp_install "$work") || exit 1
dd_log "starting a durable cluster on port $port"
dd_cluster_start "$bindir" "$work/data" "$port" \
    -c fsync=on -c synchronous_commit="$sync" -c shared_buffers=256MB \
    -c max_connections=60 -c max_wal_size=4GB
trap dd_cluster_stop EXIT

psql -X -q -d postgres -c 'CREATE DATABASE dd_bench' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d dd_bench -f "$dir/setup.sql" >/dev/null
export PGDATABASE=dd_bench

# shellcheck disable=SC2086
bench_calibrate $rtts
printf '%s' "$BENCH_CALIBRATION" >"${raw%.tsv}.calibration.txt"

all=(a_dd_charge b_orm c_cte d_plpgsql e_bare)
printf 'round\tsection\tscenario\tclients\trtt_us\tvariant\ttps\tcpu_us_per_tx\n' >"$raw"

for round in $(seq 1 "$rounds"); do
    dd_log "round $round of $rounds"
    for rtt in $rtts; do
        if [ "$rtt" -eq 0 ]; then variants=("${all[@]}"); else variants=("${all[@]:0:4}"); fi
        srcs=()
        for v in "${variants[@]}"; do srcs+=("$dir/$v.sql"); done
        mapfile -t files < <(bench_scripts "$work/scripts" "$rtt" "${srcs[@]}")
        for scenario in many hot; do
            [ "$scenario" = many ] && nusers=100000 || nusers=1
            for clients in $clients_list; do
                # Rotate the order each round and cell, so no contender
                # always runs first (or right after a checkpoint-heavy one).
                shift_by=$(( (round + clients) % ${#variants[@]} ))
                for i in $(seq 0 $(( ${#variants[@]} - 1 ))); do
                    k=$(( (i + shift_by) % ${#variants[@]} ))
                    psql -X -q -c 'TRUNCATE api_usage_log' -c 'CHECKPOINT' >/dev/null
                    bench_run "$raw" "$round" charge "$scenario" "$clients" "$rtt" \
                        "${variants[$k]}" -- -T "$seconds" -D nusers="$nusers" \
                        -f "${files[$k]}" dd_bench
                done
            done
        done
    done
done

users() { [ "$1" = many ] && echo "100,000 random" || echo "1 hot"; }
tps() { bench_fmt '%.0f' "$(bench_median "$raw" charge "$1" "$2" "$3" "$4" 7)"; }
cpu() { bench_fmt '%.0f' "$(bench_median "$raw" charge "$1" "$2" "$3" "$4" 8)"; }
ratio() { bench_ratio "$raw" charge "$1" "$2" "$3" a_dd_charge "$4"; }
x() { bench_fmt '%.2fx' "$1"; }

echo
echo "Median TPS over $rounds rounds of ${seconds}s (higher is better); a/… are"
echo "medians of the rounds' ratios.  $(nproc) cores, fsync on, synchronous_commit $sync,"
echo "$(date -u +%Y-%m-%d).  Raw: ${raw#"$DD_ROOT"/}."
echo "Network model (pgbench \\sleep before each statement, idle client):"
printf '%s' "$BENCH_CALIBRATION" | sed 's/^/  /'
echo
echo "| users | clients | RTT | (a) dd_charge_credit | (b) ORM, 4 statements | (c) one CTE | (d) PL/pgSQL | (e) bare UPDATE | a/b | a/c | a/d | a/e |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rtt in $rtts; do
    for scenario in many hot; do
        for clients in $clients_list; do
            echo "| $(users $scenario) | $clients | $(bench_rtt_label "$rtt") | $(tps $scenario "$clients" "$rtt" a_dd_charge) | $(tps $scenario "$clients" "$rtt" b_orm) | $(tps $scenario "$clients" "$rtt" c_cte) | $(tps $scenario "$clients" "$rtt" d_plpgsql) | $(tps $scenario "$clients" "$rtt" e_bare) | $(x "$(ratio $scenario "$clients" "$rtt" b_orm)") | $(x "$(ratio $scenario "$clients" "$rtt" c_cte)") | $(x "$(ratio $scenario "$clients" "$rtt" d_plpgsql)") | $(x "$(ratio $scenario "$clients" "$rtt" e_bare)") |"
        done
    done
done
echo
echo "Median server CPU per charge, microseconds (lower is better):"
echo
echo "| users | clients | RTT | (a) dd_charge_credit | (b) ORM | (c) one CTE | (d) PL/pgSQL | (e) bare UPDATE |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
for rtt in $rtts; do
    for scenario in many hot; do
        for clients in $clients_list; do
            echo "| $(users $scenario) | $clients | $(bench_rtt_label "$rtt") | $(cpu $scenario "$clients" "$rtt" a_dd_charge) | $(cpu $scenario "$clients" "$rtt" b_orm) | $(cpu $scenario "$clients" "$rtt" c_cte) | $(cpu $scenario "$clients" "$rtt" d_plpgsql) | $(cpu $scenario "$clients" "$rtt" e_bare) |"
        done
    done
done

# The targets: on the unix socket (a) ≥ 1.0x (d) and ≥ 0.9x (c) in every
# cell, ≥ 1.3x (b) at 8 and 32 clients; at RTT 1 ms (a) ≥ 3x (b) at 1
# client, ≥ 2.2x at 8, ≥ 3x on the hot user at 8 and 32.
echo
echo "Against the targets (median of the rounds' ratios):"
echo
echo "| users | clients | RTT | a/b | a/c | a/d |"
echo "|---|---:|---|---|---|---|"
for rtt in $rtts; do
    for scenario in many hot; do
        for clients in $clients_list; do
            tb="" tc="" td=""
            rb=$(ratio $scenario "$clients" "$rtt" b_orm)
            if [ "$rtt" -eq 0 ]; then
                tc="$(x "$(ratio $scenario "$clients" 0 c_cte)") $(bench_target "$(ratio $scenario "$clients" 0 c_cte)" 0.9)"
                td="$(x "$(ratio $scenario "$clients" 0 d_plpgsql)") $(bench_target "$(ratio $scenario "$clients" 0 d_plpgsql)" 1.0)"
                [ "$clients" -ge 8 ] && tb="$(x "$rb") $(bench_target "$rb" 1.3)"
            elif [ "$rtt" -eq 1000 ]; then
                case $scenario/$clients in
                    */1|hot/8|hot/32) tb="$(x "$rb") $(bench_target "$rb" 3)" ;;
                    many/8) tb="$(x "$rb") $(bench_target "$rb" 2.2)" ;;
                esac
            fi
            [ -n "$tb$tc$td" ] || continue
            echo "| $(users $scenario) | $clients | $(bench_rtt_label "$rtt") | ${tb:--} | ${tc:--} | ${td:--} |"
        done
    done
done
