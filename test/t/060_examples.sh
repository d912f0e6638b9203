#!/usr/bin/env bash
# test/t/060_examples.sh -- the client examples' own tests, against a fresh
# database with the extension: examples/drizzle (`npm test`: Drizzle ORM over
# node-postgres and postgres-js, node's test runner) and examples/python
# (unittest, psycopg 3).  One TAP line per test of each suite.
#
# Node modules come from examples/drizzle/package-lock.json: `npm ci` runs
# when node_modules is missing or was installed from another lock file (a
# stamp holds the lock file's hash).  The clients connect as every other
# test does, through PGHOST/PGPORT/PGUSER (the cluster's socket directory)
# and PGDATABASE.
set -u
source "$DD_ROOT/test/lib/tap.bash"

db=dd_examples
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
export PGDATABASE=$db
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# report PREFIX < LINES: "PASS name" and "FAIL name" lines become TAP lines;
# "# " lines pass through as diagnostics.
report() {
    local line
    while IFS= read -r line; do
        case $line in
            "PASS "*) ok 0 "$1: ${line#PASS }" ;;
            "FAIL "*) ok 1 "$1: ${line#FAIL }" ;;
            "# "*) echo "$line" ;;
        esac
    done
}

# --- examples/drizzle ----------------------------------------------------
cd "$DD_ROOT/examples/drizzle"
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.dd_clipper-lock-sha256
if [ "$(cat "$stamp" 2>/dev/null)" = "$lock" ]; then
    ok 0 "drizzle: node_modules is installed from package-lock.json"
else
    start=$SECONDS
    npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1
    rc=$?
    [ $rc -eq 0 ] && echo "$lock" >"$stamp"
    ok $rc "drizzle: npm ci installs node_modules from package-lock.json ($((SECONDS - start)) s)"
    [ $rc -ne 0 ] && sed 's/^/#   /' "$log"
fi
# node's test runner, in TAP (its default only when stdout is not a
# terminal, and only up to Node.js 22).
NODE_OPTIONS=--test-reporter=tap npm test --silent >"$log" 2>&1
rc=$?
before=$_tap_failed
sed -nE -e 's/^ok [0-9]+ - (.*)$/PASS \1/p' -e 's/^not ok [0-9]+ - (.*)$/FAIL \1/p' \
    -e '/^# (Subtest:|tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /d' -e '/^# /p' \
    "$log" >"$log.lines"
report drizzle <"$log.lines"
rm -f "$log.lines"
if [ $rc -ne 0 ]; then
    [ $_tap_failed -eq $before ] && ok 1 "drizzle: npm test exited $rc"
    grep -vE '^ *(duration_ms:|---$|\.\.\.$)' "$log" | sed 's/^/#   /'
fi

# --- examples/python -----------------------------------------------------
cd "$DD_ROOT/examples/python"
# Debian's python3 (python3-psycopg), not another python3 first on PATH.
/usr/bin/python3 "$DD_ROOT/test/lib/unittest_tap.py" >"$log" 2>&1
rc=$?
before=$_tap_failed
report python <"$log"
if [ $rc -ne 0 ] && [ $_tap_failed -eq $before ]; then
    ok 1 "python: the unittest run exited $rc"
    sed 's/^/#   /' "$log"
fi

cd "$DD_ROOT"
plan "$_tap_n"
psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
