#!/usr/bin/env bash
# bench/events.sh -- event ingest and retention, side by side with baselines.
#
# In one run, on a throwaway cluster with durable settings (fsync on,
# synchronous_commit on unless DD_BENCH_SYNC=off):
#   1. batches of 1,000 events: dd_track_events vs COPY of the same rows
#      into a plain table with the same indexes vs single-row INSERTs from
#      a client (one transaction per 1,000 rows); interleaved rounds;
#   2. one event per transaction: dd_track_event vs a plain INSERT
#      (pgbench, prepared statements), interleaved rounds;
#   3. retention of 1,000,000 old rows out of 1,100,000, for usage_events
#      and api_usage_log (with the rollup): time, and table size after;
#   4. the partitioning probe: the same ingest and retention on usage_events
#      partitioned by day, and the duplicate it lets through.
# Prints medians and ratios as markdown tables.  Never part of the tests.
#
# Many short interleaved rounds: on a shared, noisy machine the median of
# many short runs is steadier than a few long ones.
#
# Environment (the same names in every bench/*.sh runner; the old names
# ROUNDS, BATCHES, SECONDS_PER_RUN and CLIENTS still work):
#   DD_BENCH_PORT      port of the throwaway cluster (54442)
#   DD_BENCH_ROUNDS    rounds (9)
#   DD_BENCH_BATCHES   batches of 1,000 events per contender and round (20)
#   DD_BENCH_SECONDS   seconds per pgbench run (4)
#   DD_BENCH_CLIENTS   clients of the one-event runs (4)
#   DD_BENCH_SYNC      synchronous_commit (on)
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54442}
rounds=${DD_BENCH_ROUNDS:-${ROUNDS:-9}}
batches=${DD_BENCH_BATCHES:-${BATCHES:-20}}
secs=${DD_BENCH_SECONDS:-${SECONDS_PER_RUN:-4}}
clients=${DD_BENCH_CLIENTS:-${CLIENTS:-4}}
sync=${DD_BENCH_SYNC:-on}
work=$DD_ROOT/tmp_bench_events
out=$DD_ROOT/bench/results
mkdir -p "$out"

dd_install_packages
dd_build
bindir=$(dd_temp_install "$work/install")
dd_cluster_start "$bindir" "$work/data" "$port" \
    -c fsync=on -c synchronous_commit="$sync" -c shared_buffers=256MB \
    -c max_wal_size=4GB -c checkpoint_timeout=30min
trap dd_cluster_stop EXIT
db=dd_bench_events
psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
export PGDATABASE=$db
psqlq() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psqlq <<SQL
CREATE EXTENSION dd_clipper;
CREATE TABLE plain_copy   (LIKE usage_events INCLUDING ALL);
CREATE TABLE plain_insert (LIKE usage_events INCLUDING ALL);
CREATE TABLE plain_one    (LIKE usage_events INCLUDING ALL);
CREATE TABLE plain_oc     (LIKE usage_events INCLUDING ALL);
SQL
psqlq -v rounds="$rounds" -v batches="$batches" -f bench/events/gen.sql

# pairmedian FILE A B: the median over rounds of A/B (each round runs A
# and B back to back, so a paired ratio cancels the machine's slow spells).
pairmedian() {
    awk -v a="$2" -v b="$3" '$1==a{x[++na]=$2} $1==b{y[++nb]=$2}
        END {for (i = 1; i <= na; i++) print x[i]/y[i]}' "$1" |
        sort -g | awk '{r[NR]=$1} END {m=(NR%2)?r[(NR+1)/2]:(r[NR/2]+r[NR/2+1])/2; printf "%.2f", m}'
}
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- batches
dd_log "batches of 1,000: $rounds rounds of $batches batches per contender"
cols="user_id, event, properties, event_id, occurred_at"
for r in $(seq 1 "$rounds"); do
    psqlq -t -A -o "$work/track_$r.sql" -c "
        SELECT format('SELECT dd_track_events(%L);',
               jsonb_agg(jsonb_build_object('user_id', user_id, 'event', event,
                   'properties', properties, 'event_id', event_id,
                   'occurred_at', occurred_at) ORDER BY n))
        FROM src WHERE round = $r GROUP BY batch ORDER BY batch"
    psqlq -t -A -o "$work/copy_$r.sql" -c "
        SELECT format(E'COPY plain_copy ($cols) FROM STDIN;\n%s\n\\\\.',
               string_agg(concat_ws(E'\t', user_id, event, properties::text,
                   event_id, occurred_at::text), E'\n' ORDER BY n))
        FROM src WHERE round = $r GROUP BY batch ORDER BY batch"
    psqlq -t -A -o "$work/insert_$r.sql" -c "
        SELECT E'BEGIN;\n' || string_agg(format(
               'INSERT INTO plain_insert ($cols) VALUES (%L, %L, %L, %L, %L);',
               user_id, event, properties, event_id, occurred_at), E'\n' ORDER BY n)
               || E'\nCOMMIT;'
        FROM src WHERE round = $r GROUP BY batch ORDER BY batch"
done
psqlq -c CHECKPOINT

: >"$work/batch.times"
for r in $(seq 1 "$rounds"); do
    # Rotate the order each round so no contender always runs first.
    order=(track copy insert)
    for _ in $(seq 2 "$r"); do order=("${order[@]:1}" "${order[0]}"); done
    for m in "${order[@]}"; do
        t0=$(now)
        psqlq -f "$work/${m}_$r.sql" >/dev/null
        t1=$(now)
        rate=$(awk -v n=$((batches * 1000)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n/(b-a)}')
        echo "$m $rate" >>"$work/batch.times"
        echo "round $r $m: $rate rows/s"
    done
done
want=$((rounds * batches * 1000))
for t in usage_events plain_copy plain_insert; do
    got=$(psqlq -t -A -c "SELECT count(*) FROM $t")
    [ "$got" = "$want" ] || dd_die "$t has $got rows, expected $want"
done
# Every batch again: all duplicates, nothing stored.
dup=$(psqlq -t -A -c "SELECT dd_track_events(jsonb_agg(jsonb_build_object('user_id', user_id, 'event', event, 'event_id', event_id))) FROM src WHERE round = 1 AND batch = 1")
[ "$dup" = 0 ] || dd_die "a repeated batch stored $dup rows"
bt=$(awk '$1=="track"{print $2}' "$work/batch.times" | median)
bc=$(awk '$1=="copy"{print $2}' "$work/batch.times" | median)
bi=$(awk '$1=="insert"{print $2}' "$work/batch.times" | median)

# ------------------------------------------------------------ single rows
dd_log "one event per transaction: $rounds rounds of ${secs}s, $clients clients"
: >"$work/single.times"
for r in $(seq 1 "$rounds"); do
    order=(track_one plain_one oc_one)
    for _ in $(seq 2 "$r"); do order=("${order[@]:1}" "${order[0]}"); done
    for m in "${order[@]}"; do
        tps=$("$bindir/pgbench" -n -M prepared -c "$clients" -j 2 -T "$secs" \
              -f "bench/events/$m.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "$m $tps" >>"$work/single.times"
        echo "round $r $m: $tps tps"
    done
done
# The same three mixed in one pgbench run, each transaction picking a
# script at random: machine noise hits all three alike; compare latencies.
: >"$work/mixed.lat"
for r in 1 2 3; do
    "$bindir/pgbench" -n -M prepared -c "$clients" -j 2 -T $((2 * secs)) \
        -f bench/events/track_one.sql@1 -f bench/events/plain_one.sql@1 \
        -f bench/events/oc_one.sql@1 2>&1 |
        awk '/^SQL script/ {n=$4; sub(".*/", "", n); sub("[.]sql$", "", n)}
             /latency average/ && n {print n, $5; n=""}' >>"$work/mixed.lat"
done
cat "$work/mixed.lat"
# Throughput ratio = inverse latency ratio, per run; median of the runs.
mixed_plain=$(awk '$1=="track_one"{t[++a]=$2} $1=="plain_one"{p[++b]=$2}
    END {for (i = 1; i <= a; i++) print p[i]/t[i]}' "$work/mixed.lat" | sort -g |
    awk '{r[NR]=$1} END {printf "%.2f", r[int((NR+1)/2)]}')
mixed_oc=$(awk '$1=="track_one"{t[++a]=$2} $1=="oc_one"{p[++b]=$2}
    END {for (i = 1; i <= a; i++) print p[i]/t[i]}' "$work/mixed.lat" | sort -g |
    awk '{r[NR]=$1} END {printf "%.2f", r[int((NR+1)/2)]}')
st=$(awk '$1=="track_one"{print $2}' "$work/single.times" | median)
sp=$(awk '$1=="plain_one"{print $2}' "$work/single.times" | median)
so=$(awk '$1=="oc_one"{print $2}' "$work/single.times" | median)

# -------------------------------------------------------------- retention
dd_log "retention: 1,000,000 old rows out of 1,100,000"
psqlq <<'SQL'
TRUNCATE usage_events, api_usage_log, api_usage_rollup;
INSERT INTO usage_events (user_id, event, properties, event_id, occurred_at, received_at)
SELECT 'user_' || (i % 1000), 'clip.viewed', '{"path": "/clips/42", "ms": 130}', 'old-' || i,
       now() - interval '90 days' + i * interval '1 ms', now() - interval '90 days' + i * interval '1 ms'
FROM generate_series(1, 1000000) i;
INSERT INTO usage_events (user_id, event, properties, event_id)
SELECT 'user_' || (i % 1000), 'clip.viewed', '{"path": "/clips/42", "ms": 130}', 'new-' || i
FROM generate_series(1, 100000) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits, created_at)
SELECT 'user_' || (i % 1000), 'old-' || i, '/v1/clips', 1 + i % 3, now() - interval '90 days' + i * interval '1 ms'
FROM generate_series(1, 1000000) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits)
SELECT 'user_' || (i % 1000), 'new-' || i, '/v1/clips', 1 + i % 3
FROM generate_series(1, 100000) i;
VACUUM ANALYZE usage_events, api_usage_log;
CHECKPOINT;
SQL
size() { psqlq -t -A -c "SELECT pg_size_pretty(pg_total_relation_size('$1'))"; }
ev_before=$(size usage_events); log_before=$(size api_usage_log)
log_credits=$(psqlq -t -A -c "SELECT sum(credits) FROM api_usage_log")

t0=$(now); ev_del=$(psqlq -t -A -c "CALL dd_purge_usage_events_proc('30 days', 10000)"); t1=$(now)
ev_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')
ev_after=$(size usage_events)
t0=$(now); psqlq -c "VACUUM usage_events"; t1=$(now)
ev_vac_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')
ev_vac=$(size usage_events)

t0=$(now); log_del=$(psqlq -t -A -c "CALL dd_purge_usage_log_proc('30 days', 10000)"); t1=$(now)
log_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')
log_after=$(size api_usage_log)
t0=$(now); psqlq -c "VACUUM api_usage_log"; t1=$(now)
log_vac_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')
log_vac=$(size api_usage_log)
[ "$ev_del" = 1000000 ] || dd_die "usage_events purge deleted $ev_del rows"
[ "$log_del" = 1000000 ] || dd_die "api_usage_log purge deleted $log_del rows"
kept=$(psqlq -t -A -c "SELECT (SELECT sum(credits) FROM api_usage_log) + (SELECT sum(charged) FROM api_usage_rollup)")
[ "$kept" = "$log_credits" ] || dd_die "credits before $log_credits, log + rollup after $kept"

# ------------------------------------------------------ partitioning probe
dd_log "partitioning probe: usage_events partitioned by day of received_at"
psqlq <<'SQL' >"$work/partition.log" 2>&1
\timing on
CREATE TABLE part_events (
    id          bigint NOT NULL DEFAULT nextval('usage_events_id_seq'),
    user_id     text NOT NULL,
    event       text NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    event_id    text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    received_at timestamptz NOT NULL DEFAULT now(),
    convex_id   text,
    PRIMARY KEY (user_id, id, received_at),
    UNIQUE (user_id, event_id, received_at),
    UNIQUE (user_id, convex_id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX ON part_events USING brin (received_at);
CREATE INDEX ON part_events (user_id, occurred_at DESC);
SELECT format('CREATE TABLE part_events_%s PARTITION OF part_events FOR VALUES FROM (%L) TO (%L)',
              to_char(d, 'YYYYMMDD'), d, d + interval '1 day')
FROM generate_series(date_trunc('day', now() - interval '92 days'), date_trunc('day', now() + interval '1 day'), interval '1 day') d
\gexec
CREATE TABLE flat_events (LIKE usage_events INCLUDING ALL);
CHECKPOINT;
-- ingest: the batch statement's shape, all of src, plain vs partitioned,
-- three interleaved pairs with fresh ids each time
\echo flat_ingest
INSERT INTO flat_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x1' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id) DO NOTHING;
\echo part_ingest
INSERT INTO part_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x1' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id, received_at) DO NOTHING;
\echo part_ingest
INSERT INTO part_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x2' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id, received_at) DO NOTHING;
\echo flat_ingest
INSERT INTO flat_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x2' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id) DO NOTHING;
\echo flat_ingest
INSERT INTO flat_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x3' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id) DO NOTHING;
\echo part_ingest
INSERT INTO part_events (user_id, event, properties, event_id, occurred_at)
SELECT user_id, event, properties, 'x3' || event_id, occurred_at FROM src
ON CONFLICT (user_id, event_id, received_at) DO NOTHING;
-- retention: 1,000,000 old rows spread over 60 days
INSERT INTO part_events (user_id, event, properties, event_id, received_at)
SELECT 'user_' || (i % 1000), 'clip.viewed', '{}', 'old-' || i, now() - interval '90 days' + i * interval '5 s'
FROM generate_series(1, 1000000) i;
CHECKPOINT;
\echo part_drop
SELECT format('DROP TABLE %s', c.oid::regclass)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'part_events'::regclass
  AND c.relname < 'part_events_' || to_char(now() - interval '30 days', 'YYYYMMDD')
\gexec
\echo part_dup
-- The dedup hole: the same (user_id, event_id) on two days is stored twice.
INSERT INTO part_events (user_id, event, event_id, received_at) VALUES
    ('user_1', 'clip.viewed', 'retry-1', now() - interval '1 day'),
    ('user_1', 'clip.viewed', 'retry-1', now())
ON CONFLICT (user_id, event_id, received_at) DO NOTHING;
SELECT 'dup_rows=' || count(*) FROM part_events WHERE event_id = 'retry-1';
SELECT 'part_count=' || count(*) FROM pg_inherits WHERE inhparent = 'part_events'::regclass;
SQL
# Time: lines that follow each \echo label.
ptime() { awk -v l="$1" '$0==l{f=1;next} f&&/^Time:/{s+=$2;f=0} END{printf "%.0f", s}' "$work/partition.log"; }
flat_ms=$(ptime flat_ingest); part_ms=$(ptime part_ingest); drop_ms=$(ptime part_drop)
dup_rows=$(sed -n 's/^ *dup_rows=//p' "$work/partition.log")
src_rows=$((3 * rounds * batches * 1000))

# ---------------------------------------------------------------- report
{
echo "| contender | median | baseline | ratio of medians | median of per-round ratios | target |"
echo "|---|---|---|---|---|---|"
echo "| \`dd_track_events\`, batches of 1,000 | $bt rows/s | \`COPY\` 1,000 rows per statement: $bc rows/s | $(ratio "$bt" "$bc") | $(pairmedian "$work/batch.times" track copy) | ≥ 0.8 |"
echo "| \`dd_track_events\`, batches of 1,000 | $bt rows/s | single-row \`INSERT\`s, 1,000 per transaction: $bi rows/s | $(ratio "$bt" "$bi") | $(pairmedian "$work/batch.times" track insert) | |"
echo "| \`dd_track_event\`, one per transaction | $st tps | plain \`INSERT\`: $sp tps | $(ratio "$st" "$sp") | $(pairmedian "$work/single.times" track_one plain_one) | ≥ 0.95 |"
echo "| \`dd_track_event\`, one per transaction | $st tps | \`INSERT ... ON CONFLICT DO NOTHING\`: $so tps | $(ratio "$st" "$so") | $(pairmedian "$work/single.times" track_one oc_one) | |"
echo "| \`dd_track_event\`, mixed in one pgbench run with its baselines (3 runs, latency ratio) | | plain \`INSERT\` | $mixed_plain | | ≥ 0.95 |"
echo "| \`dd_track_event\`, mixed in one pgbench run with its baselines (3 runs, latency ratio) | | \`INSERT ... ON CONFLICT DO NOTHING\` | $mixed_oc | | |"
echo
echo "| retention of 1,000,000 of 1,100,000 rows | time | size before | size after | after \`VACUUM\` (time) |"
echo "|---|---|---|---|---|"
echo "| \`CALL dd_purge_usage_events_proc('30 days', 10000)\` | ${ev_secs} s | $ev_before | $ev_after | $ev_vac (${ev_vac_secs} s) |"
echo "| \`CALL dd_purge_usage_log_proc('30 days', 10000)\` (with rollup) | ${log_secs} s | $log_before | $log_after | $log_vac (${log_vac_secs} s) |"
echo
echo "| partitioned by day (probe) | plain table | partitioned |"
echo "|---|---|---|"
echo "| $src_rows rows in 3 interleaved statements, INSERT ... SELECT ... ON CONFLICT DO NOTHING | ${flat_ms} ms | ${part_ms} ms (ratio $(ratio "$flat_ms" "$part_ms")) |"
echo "| retention of 1,000,000 old rows | ${ev_secs} s (batched DELETE) + VACUUM | ${drop_ms} ms (DROP of the old partitions) |"
echo "| same (user_id, event_id) on two days | stored once | stored $dup_rows times |"
echo
echo "rounds=$rounds batches=$batches secs=$secs clients=$clients, $(nproc) cores, $(date -u +%Y-%m-%d)"
} | tee "$out/events.md"
