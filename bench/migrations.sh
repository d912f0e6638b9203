#!/usr/bin/env bash
# bench/migrations.sh -- a background backfill of 1,000,000 rows while 8
# clients run dd_charge_credit on the same database, on one throwaway
# durable cluster.
#
#   bash bench/migrations.sh                                   # full run
#   DD_BENCH_ROUNDS=1 DD_BENCH_SECONDS=5 bash bench/migrations.sh  # quick check
#
# Each round:
#   1. the clients alone: pgbench, DD_BENCH_CLIENTS clients, SECONDS
#      seconds of bench/credits/a_dd_charge.sql over 100,000 users;
#   2. dd_migration_start of a backfill of a fresh column of a 1,000,000-row
#      table (batches of 100, the default), and the same pgbench run while
#      it runs; the backfill's rows per second over that window are read
#      from its own progress (processed before and after);
#   3. the backfill left alone to complete: its rows per second without
#      clients.
# The order of 1 and 2 alternates between rounds.  Prints the medians,
# the clients' throughput with the backfill as a share of without (target:
# at least 80%), and checks that every charge succeeded (pgbench's failed
# transactions) and that each backfill completed with processed = 1,000,000.
#
# Environment: DD_BENCH_PORT (54416), DD_BENCH_ROUNDS (3), DD_BENCH_SECONDS
# (20), DD_BENCH_CLIENTS (8), DD_BENCH_ROWS (1000000), DD_BENCH_SYNC
# (synchronous_commit, on), DD_BENCH_PAUSE (the backfill's
# dd_clipper.migration_batch_pause, 0ms).  About ROUNDS * (2 * SECONDS + 100) seconds.
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54416}
rounds=${DD_BENCH_ROUNDS:-3}
seconds=${DD_BENCH_SECONDS:-20}
clients=${DD_BENCH_CLIENTS:-8}
rows=${DD_BENCH_ROWS:-1000000}
sync=${DD_BENCH_SYNC:-on}
pause=${DD_BENCH_PAUSE:-0ms}
work=$DD_ROOT/tmp_bench_migrations
out=$DD_ROOT/bench/results
mkdir -p "$out"
raw=$out/migrations-$(date -u +%Y%m%dT%H%M%SZ).tsv

dd_install_packages
dd_build
dd_log "installing into tmp_bench_migrations/"
bindir=$(dd_temp_install "$work") || exit 1
dd_log "starting a durable cluster on port $port"
dd_cluster_start "$bindir" "$work/data" "$port" \
    -c fsync=on -c synchronous_commit="$sync" -c shared_buffers=256MB \
    -c max_connections=60 -c max_wal_size=4GB
trap dd_cluster_stop EXIT

q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d dd_bench -c "$1"; }

psql -X -q -d postgres -c 'CREATE DATABASE dd_bench' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d dd_bench -f bench/credits/setup.sql >/dev/null
dd_log "loading $rows rows to backfill"
cols=$(for r in $(seq 1 "$rounds"); do printf ', slug_%d text' "$r"; done)
q "CREATE TABLE docs (user_id text NOT NULL, id bigint NOT NULL, title text NOT NULL $cols,
                      PRIMARY KEY (user_id, id));
   INSERT INTO docs (user_id, id, title)
   SELECT 'u' || (g % 10000), g, 'Document number ' || g FROM generate_series(1, $rows) g;"
# VACUUM cannot share psql -c's implicit transaction.
q "VACUUM ANALYZE docs"
q "CHECKPOINT"

# charges: one pgbench run; prints its TPS, fails on any failed transaction.
charges() {
    local log tps failed
    log=$("$bindir/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$seconds" \
          -D nusers=100000 -f bench/credits/a_dd_charge.sql dd_bench 2>&1)
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$log")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$log")
    if [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
        printf '%s\n' "$log" >&2
        dd_die "pgbench failed"
    fi
    echo "$tps"
}

processed() { q "SELECT processed FROM migrations WHERE name = '$1'"; }
now() { date +%s.%N; }

printf 'round\tclients_alone_tps\tclients_with_backfill_tps\tbackfill_rows_per_s_with_clients\tbackfill_rows_per_s_alone\n' >"$raw"
for round in $(seq 1 "$rounds"); do
    dd_log "round $round of $rounds"
    m=backfill_$round
    q "SELECT dd_migration_create('$m', 'docs', 'slug_$round = lower(replace(title, '' '', ''-''))',
                                  'slug_$round IS NULL')" >/dev/null
    q "TRUNCATE api_usage_log; CHECKPOINT" >/dev/null
    if [ $((round % 2)) -eq 1 ]; then alone=$(charges); fi

    q "SET dd_clipper.migration_batch_pause = '$pause'; SELECT dd_migration_start('$m')" >/dev/null
    sleep 1
    p0=$(processed "$m"); t0=$(now)
    with=$(charges)
    p1=$(processed "$m"); t1=$(now)
    rate_with=$(awk -v a="$p0" -v b="$p1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", (b - a) / (e - s) }')

    # The rest of the backfill, alone.
    t2=$(now); p2=$(processed "$m")
    while [ "$(q "SELECT status FROM dd_migration_progress WHERE name = '$m'")" = running ]; do
        sleep 0.5
    done
    t3=$(now); p3=$(processed "$m")
    status=$(q "SELECT status || ' ' || processed FROM dd_migration_progress WHERE name = '$m'")
    [ "$status" = "completed $rows" ] || dd_die "backfill $m ended as: $status"
    left=$(q "SELECT count(*) FROM docs WHERE slug_$round IS NULL")
    [ "$left" = 0 ] || dd_die "backfill $m left $left rows"
    rate_alone=$(awk -v a="$p2" -v b="$p3" -v s="$t2" -v e="$t3" 'BEGIN { if (e > s && b > a) printf "%.0f", (b - a) / (e - s); else print "" }')

    if [ $((round % 2)) -eq 0 ]; then
        q "TRUNCATE api_usage_log; CHECKPOINT" >/dev/null
        alone=$(charges)
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$alone" "$with" "$rate_with" "$rate_alone" | tee -a "$raw"
done

median() { cut -f"$1" "$raw" | tail -n +2 | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
share=$(tail -n +2 "$raw" | awk -F'\t' '{ print $3 / $2 }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')

echo
echo "Medians over $rounds rounds; $(nproc) cores, fsync on, synchronous_commit $sync,"
echo "$clients clients, ${seconds}s pgbench runs, $rows rows, batches of 100,"
echo "dd_clipper.migration_batch_pause $pause, $(date -u +%Y-%m-%d)."
echo "Raw: ${raw#"$DD_ROOT"/}."
echo
echo "| clients alone (TPS) | clients with the backfill (TPS) | share kept | backfill with clients (rows/s) | backfill alone (rows/s) |"
echo "|---:|---:|---:|---:|---:|"
printf '| %.0f | %.0f | %.0f%% | %.0f | %.0f |\n' "$(median 2)" "$(median 3)" \
    "$(awk -v s="$share" 'BEGIN { print s * 100 }')" "$(median 4)" "$(median 5)"
echo
awk -v s="$share" 'BEGIN { printf "target: the clients keep >= 80%% of their throughput: %s (%.0f%%)\n", (s >= 0.8 ? "met" : "missed"), s * 100 }'
