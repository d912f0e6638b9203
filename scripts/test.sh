#!/usr/bin/env bash
# scripts/test.sh -- every dd_clipper test, on a fresh machine, in one command.
#
# Installs the packages it needs, builds, installs into a private copy of the
# server and starts a throwaway cluster, both under DD_RUN (a directory per
# checkout outside it, see scripts/lib.sh, so a clone in a private folder
# works; logs, diffs and the server log end up in tmp_check/), then runs
#   1. pg_regress        sql/*.sql against expected/*.out
#   2. isolation specs   specs/*.spec
#   3. pgTAP suites      test/pgtap/*.sql, run by pg_prove
#   4. load, fault, dump and upgrade runs   test/t/*.sh, run by prove,
#      with the client examples' tests (examples/drizzle, examples/python)
#   5. test/citus/run.sh, a coordinator and two workers (ports DD_PORT + 3
#      to + 5), where Citus is installed in the server under test; it
#      skips, saying why, where it is not
# stops the cluster, prints "N passed, M failed" counting every test of every
# runner (above it, behaviour tests and schema checks apart), and exits
# non-zero on any failure.
#
# Environment: DD_PORT (default 54329) picks the cluster's port, and the
# crash test's own cluster and the pooler test's PgBouncer take the two
# ports after it; DD_MEMORY_CALLS (default 1000000) the calls per function
# of test/t/078_memory_growth.sh; DD_PG=18
# runs everything on PostgreSQL 18 (built once from Debian's source package
# into DD_CACHE, by default /var/cache/dd_clipper) instead of Debian 12's 15.
set -uo pipefail

source "$(dirname "$0")/lib.sh"
cd "$DD_ROOT"

port=${DD_PORT:-54329}
logdir=$DD_ROOT/tmp_check
passed=0
failed=0

dd_install_packages
dd_install_example_packages
dd_build
dd_log "installing into $DD_RUN/install"
bindir=$(dd_temp_install "$DD_RUN/install") || exit 1
# Clients (psql for pg_prove and test/t/) of the version under test.
export PATH=$bindir:$PATH
dd_log "starting a throwaway PostgreSQL $DD_PG cluster on port $port"
mkdir -p "$logdir"
# Tests need no durability: a crash test that does starts its own cluster.
dd_cluster_start "$bindir" "$DD_RUN/data" "$port" \
    -c fsync=off -c synchronous_commit=off -c max_connections=120 \
    -c shared_buffers=256MB -c max_prepared_transactions=10
# On exit: stop the cluster and keep its log with the others.
trap 'dd_cluster_stop; cp "$DD_DATADIR/server.log" "$logdir/server.log" 2>/dev/null' EXIT

# count RUNNER EXIT OK FAIL: add one runner's counts to the totals.  A runner
# that failed without reporting a failed test (a crash, a bad plan) counts
# as one failure more.
#
# Two kinds are counted apart: schema checks (test/pgtap/schema*.sql, which
# only read the catalog: an object exists, its type, definer rights,
# volatility, privileges) and behaviour tests (everything else).  KIND is
# "schema" for the former; the default is behaviour.
schema_passed=0
schema_failed=0
count() {
    local runner=$1 rc=$2 ok=$3 bad=$4 kind=${5:-behaviour}
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
    fi
    printf '%-14s %4d passed, %d failed\n' "$runner:" "$ok" "$bad" >>"$logdir/summary"
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$kind" = schema ]; then
        schema_passed=$((schema_passed + ok))
        schema_failed=$((schema_failed + bad))
    fi
}
: >"$logdir/summary"

# pg_regress and pg_isolation_regress print "test name ... ok" up to
# PostgreSQL 15 and TAP lines ("ok 1 - name", "not ok 2 - name") from 16 on.
regress_ok='\.\.\. +ok|^ok [0-9]+ +- '
regress_bad='\.\.\. +FAILED|^not ok [0-9]+ +- '

dd_log "pg_regress (sql/)"
make -s installcheck ISOLATION= 2>&1 | tee "$logdir/regress.log"
rc=${PIPESTATUS[0]}
count pg_regress "$rc" \
    "$(grep -cE "$regress_ok" "$logdir/regress.log")" \
    "$(grep -cE "$regress_bad" "$logdir/regress.log")"
[ -f regression.diffs ] && cp regression.diffs "$logdir/regress.diffs"

dd_log "isolation specs (specs/)"
make -s installcheck REGRESS= 2>&1 | tee "$logdir/isolation.log"
rc=${PIPESTATUS[0]}
count isolation "$rc" \
    "$(grep -cE "$regress_ok" "$logdir/isolation.log")" \
    "$(grep -cE "$regress_bad" "$logdir/isolation.log")"

dd_log "pgTAP (test/pgtap/, pg_prove)"
psql -q -X -d postgres -c 'DROP DATABASE IF EXISTS dd_clipper_tap' \
    -c 'CREATE DATABASE dd_clipper_tap' >/dev/null
tap_schema=(test/pgtap/schema*.sql)
tap_behaviour=()
for f in test/pgtap/*.sql; do
    case $f in test/pgtap/schema*.sql) ;; *) tap_behaviour+=("$f") ;; esac
done
pg_prove -v -d dd_clipper_tap "${tap_behaviour[@]}" 2>&1 | tee "$logdir/pgtap.log"
rc=${PIPESTATUS[0]}
# A schema assertion in a behaviour file would be counted as behaviour:
# it fails the run instead, naming where it is.
misfiled=$(grep -nE '^ *SELECT +(has|hasnt)_[a-z_]+\(|(col_[a-z_]+|function_returns|volatility_is|is_definer|isnt_definer|trigger_is|fk_ok|index_is_[a-z_]+)\(' \
    "${tap_behaviour[@]}" | grep -vE '_privilege\(')
[ -n "$misfiled" ] && printf 'schema assertion in a behaviour file (move it to test/pgtap/schema*.sql):\n%s\n' "$misfiled"
count "pgTAP" "$rc" \
    "$(grep -cE '^ *ok [0-9]+' "$logdir/pgtap.log")" \
    "$(( $(grep -cE '^ *not ok [0-9]+' "$logdir/pgtap.log") + $([ -n "$misfiled" ] && echo 1 || echo 0) ))"
pg_prove -v -d dd_clipper_tap "${tap_schema[@]}" 2>&1 | tee "$logdir/pgtap_schema.log"
rc=${PIPESTATUS[0]}
count "pgTAP schema" "$rc" \
    "$(grep -cE '^ *ok [0-9]+' "$logdir/pgtap_schema.log")" \
    "$(grep -cE '^ *not ok [0-9]+' "$logdir/pgtap_schema.log")" schema

dd_log "load, fault and dump runs (test/t/, prove)"
export DD_ROOT
prove -v --exec bash test/t/*.sh 2>&1 | tee "$logdir/prove.log"
rc=${PIPESTATUS[0]}
count prove "$rc" \
    "$(grep -cE '^ *ok [0-9]+' "$logdir/prove.log")" \
    "$(grep -cE '^ *not ok [0-9]+' "$logdir/prove.log")"

dd_log "Citus (test/citus/run.sh; skipped where Citus is not installed)"
prove -v --exec bash test/citus/run.sh 2>&1 | tee "$logdir/citus.log"
rc=${PIPESTATUS[0]}
count citus "$rc" \
    "$(grep -cE '^ *ok [0-9]+' "$logdir/citus.log")" \
    "$(grep -cE '^ *not ok [0-9]+' "$logdir/citus.log")"

dd_log "summary"
cat "$logdir/summary"
if [ "$failed" -ne 0 ]; then
    for f in regression.diffs output_iso/regression.diffs; do
        [ -s "$f" ] && { echo "--- $f"; head -200 "$f"; }
    done
fi
echo "behaviour: $((passed - schema_passed)) passed, $((failed - schema_failed)) failed"
echo "schema checks: $schema_passed passed, $schema_failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
