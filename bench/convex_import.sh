#!/usr/bin/env bash
# bench/convex_import.sh -- bin/dd_convex_import on a large export, side by
# side with a bare COPY of the same JSONL.
#
# Builds one export ZIP in Convex's layout (test/convex/make_export.py
# bench): 10,000 apiCredits documents, DD_BENCH_USAGE apiUsageLog documents
# (1,000,000) and DD_BENCH_CLIPS clips (100,000).  Then, per round, on a
# throwaway cluster with durable settings (fsync on, synchronous_commit on):
#   1. COPY: the documents.jsonl of the three tables streamed with
#      \copy ... FROM PROGRAM 'unzip -p ...' into a one-column table, as the
#      importer stages them, and nothing else: the floor any importer of
#      this ZIP pays;
#   2. import: dd_convex_import into a fresh database with the extension;
#   3. re-import: dd_convex_import again into that database (every
#      document unchanged: nothing is written).
# Prints documents per second, medians over rounds and the ratio to COPY
# as a markdown table.  Never part of the tests.
#
# Environment:
#   DD_BENCH_PORT      port of the throwaway cluster (54520)
#   DD_BENCH_ROUNDS    rounds (3)
#   DD_BENCH_USAGE     apiUsageLog documents (1000000)
#   DD_BENCH_CLIPS     clips documents (100000)
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54520}
rounds=${DD_BENCH_ROUNDS:-3}
n_usage=${DD_BENCH_USAGE:-1000000}
n_clips=${DD_BENCH_CLIPS:-100000}
work=$DD_ROOT/tmp_bench_convex
out=$DD_ROOT/bench/results
mkdir -p "$out" "$work"

dd_install_packages
dd_build
bindir=$(dd_temp_install "$work/install")
dd_cluster_start "$bindir" "$work/data" "$port" \
    -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB \
    -c max_wal_size=4GB -c checkpoint_timeout=30min -c work_mem=64MB \
    -c temp_buffers=64MB
trap dd_cluster_stop EXIT
export PATH=$bindir:$PATH

zip=$work/export.zip
dd_log "building an export: $n_usage usage rows, $n_clips clips, 10,000 balances"
python3 test/convex/make_export.py bench "$zip" "$n_usage" "$n_clips"
docs=$((n_usage + n_clips + 10000))
ls -l "$zip"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
results=$work/results.txt
: >"$results"

for r in $(seq 1 "$rounds"); do
    dd_log "round $r of $rounds"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS dd_bench_convex" -c "CREATE DATABASE dd_bench_convex" >/dev/null

    psql -X -q -d dd_bench_convex -c "CREATE TABLE copy_floor (doc text)" >/dev/null
    t0=$(now)
    DD_CONVEX_ZIP=$zip psql -X -q -v ON_ERROR_STOP=1 -d dd_bench_convex <<'SQL'
\copy copy_floor (doc) FROM PROGRAM 'unzip -p "$DD_CONVEX_ZIP" apiCredits/documents.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy copy_floor (doc) FROM PROGRAM 'unzip -p "$DD_CONVEX_ZIP" apiUsageLog/documents.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy copy_floor (doc) FROM PROGRAM 'unzip -p "$DD_CONVEX_ZIP" clips/documents.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
SQL
    t1=$(now)
    echo "copy $(awk -v d="$docs" -v a="$t0" -v b="$t1" 'BEGIN {print d / (b - a)}')" >>"$results"
    psql -X -q -d dd_bench_convex -c "DROP TABLE copy_floor" -c "CREATE EXTENSION dd_clipper" >/dev/null

    t0=$(now)
    dd_convex_import --dbname dbname=dd_bench_convex "$zip" | tee "$work/import_$r.out"
    t1=$(now)
    echo "import $(awk -v d="$docs" -v a="$t0" -v b="$t1" 'BEGIN {print d / (b - a)}')" >>"$results"

    t0=$(now)
    dd_convex_import --dbname dbname=dd_bench_convex "$zip" >"$work/reimport_$r.out"
    t1=$(now)
    grep -q 'apiUsageLog: read [0-9]*, inserted 0, updated 0' "$work/reimport_$r.out" \
        || dd_die "the re-import wrote rows: $(cat "$work/reimport_$r.out")"
    echo "reimport $(awk -v d="$docs" -v a="$t0" -v b="$t1" 'BEGIN {print d / (b - a)}')" >>"$results"
    [ "$(psql -X -At -d dd_bench_convex -c 'SELECT count(*) FROM dd_credit_audit()')" = 0 ] \
        || dd_die "the audit is not empty after the import"
done

copy=$(awk '$1 == "copy" {print $2}' "$results" | median)
imp=$(awk '$1 == "import" {print $2}' "$results" | median)
reimp=$(awk '$1 == "reimport" {print $2}' "$results" | median)
{
    echo
    echo "Convex import: $docs documents ($n_usage usage rows, $n_clips clips, 10,000 balances), $rounds rounds, medians"
    echo
    echo "| run | documents/s | vs COPY |"
    echo "|---|---|---|"
    echo "| bare COPY of the JSONL into one column | $copy | 1.00 |"
    awk -v c="$copy" -v i="$imp" 'BEGIN {printf "| dd_convex_import, first import | %d | %.2f |\n", i, i / c}'
    awk -v c="$copy" -v i="$reimp" 'BEGIN {printf "| dd_convex_import, again (nothing written) | %d | %.2f |\n", i, i / c}'
    echo
    echo "Rounds: $(tr '\n' ' ' <"$results")"
} | tee "$out/convex_import.md"
