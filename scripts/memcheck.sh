#!/usr/bin/env bash
# scripts/memcheck.sh -- the pg_regress and isolation suites with every
# backend under valgrind memcheck.
#
#   bash scripts/memcheck.sh              # PostgreSQL 15; DD_PG=18 for 18
#
# Builds and installs this checkout into a private server tree (as
# scripts/test.sh does), starts the postmaster under valgrind (every
# backend is a fork of it, so every backend runs under valgrind; the
# processes it execs, none in these suites, would be followed with
# --trace-children=yes), with PostgreSQL's own suppressions
# (src/tools/valgrind.supp, taken from Debian's source package of the
# PostgreSQL under test and cached in DD_CACHE), runs `make installcheck`
# (sql/ and specs/) and the runs that feed the extension untrusted input
# (test/t/070_bad_input.sh, 075_row_security.sh, 076_cursor_key_rotation.sh)
# against it, stops it, and reads the valgrind logs.
#
# Prints the suites' results, then "valgrind: N errors, M in dd_clipper"
# (an error is in dd_clipper when a frame of its stack is in
# dd_clipper.so), with the first errors' stacks, and exits non-zero if any
# error is in dd_clipper or a suite failed.  Logs: tmp_check/memcheck/.
# Slow (valgrind runs each backend 20-50 times slower), so it is not part
# of scripts/test.sh; the README says how long it takes.
#
# The server is a normal build, not one configured with -DUSE_VALGRIND:
# memcheck sees reads of uninitialised or freed memory and accesses
# outside malloc'd blocks; it cannot see an overrun inside a palloc block
# (memory contexts hand out pieces of bigger blocks), which the fuzzers
# (AddressSanitizer, on the codecs) and the bad-input test cover instead.
set -uo pipefail

source "$(dirname "$0")/lib.sh"
cd "$DD_ROOT"

port=${DD_PORT:-54339}
logdir=$DD_ROOT/tmp_check/memcheck
rm -rf "$logdir"
mkdir -p "$logdir"

dd_install_packages
dd_apt_install valgrind xz-utils bzip2 ca-certificates debian-archive-keyring
dd_build

# PostgreSQL's suppressions, from the source package of the version under
# test (Debian 12's postgresql-15, or forky's postgresql-18).
case $DD_PG in
    15) suite=bookworm; srcpkg=postgresql-15 ;;
    18) suite=forky; srcpkg=postgresql-18 ;;
esac
supp=$(ls "$DD_CACHE"/valgrind-"$srcpkg"-*.supp 2>/dev/null | sort -V | tail -1)
if [ -z "$supp" ]; then
    dd_log "fetching src/tools/valgrind.supp from Debian's $srcpkg source package (once)"
    mkdir -p "$DD_CACHE"
    dd_apt "$suite" deb-src update >/dev/null || dd_die "apt-get update of the private $suite list failed"
    ver=$(dd_apt_version "$suite" deb-src "$srcpkg")
    [ -n "$ver" ] || dd_die "$suite has no $srcpkg source"
    work=$(mktemp -d)
    ( cd "$work" && dd_apt "$suite" deb-src source --download-only "$srcpkg=$ver" >/dev/null ) \
        || dd_die "apt-get source $srcpkg failed"
    tarball=$(ls "$work"/"$srcpkg"_*.orig.tar.* | grep -v '\.asc$' | head -1)
    tar -xf "$tarball" -C "$work" --wildcards '*/src/tools/valgrind.supp' \
        || dd_die "no src/tools/valgrind.supp in $tarball"
    supp=$DD_CACHE/valgrind-$srcpkg-$ver.supp
    cp "$work"/*/src/tools/valgrind.supp "$supp"
    rm -rf "$work"
fi
dd_log "suppressions: $supp"

dd_log "installing into $DD_RUN/memcheck-install"
bindir=$(dd_temp_install "$DD_RUN/memcheck-install") || exit 1
export PATH=$bindir:$PATH

# The cluster: initdb and start it as dd_cluster_start does, but with the
# postmaster run by valgrind.
datadir=$(dd_server_path "$DD_RUN/memcheck-data")
sockdir=/tmp/dd_clipper.$port
vglogs=$DD_RUN/memcheck-valgrind
dd_run_dir
dd_cluster_stop_dir "$datadir"
rm -rf "$datadir" "$sockdir" "$vglogs"
(umask 022 && mkdir -p "$datadir" "$sockdir" "$vglogs")
[ "$(id -u)" = 0 ] && chown postgres: "$datadir" "$sockdir" "$vglogs"
chmod 700 "$datadir"
cp "$supp" "$vglogs/pg.supp" && chmod 644 "$vglogs/pg.supp"
dd_as_pg "$bindir/initdb" -D "$datadir" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync >"$logdir/initdb.log" 2>&1 || { cat "$logdir/initdb.log"; dd_die "initdb failed"; }

start=$(date +%s)
dd_log "starting the postmaster under valgrind on port $port"
dd_as_pg valgrind --quiet --tool=memcheck --trace-children=yes --track-origins=yes \
    --read-var-info=yes --num-callers=30 --leak-check=no --error-limit=no \
    --suppressions="$vglogs/pg.supp" --gen-suppressions=all \
    --log-file="$vglogs/%p.log" \
    "$bindir/postgres" -D "$datadir" -p "$port" -k "$sockdir" -c listen_addresses='' \
    -c fsync=off -c synchronous_commit=off -c max_connections=40 \
    -c max_prepared_transactions=10 -c shared_buffers=32MB \
    -c dynamic_shared_memory_type=posix -c max_parallel_workers_per_gather=0 \
    >"$datadir/server.log" 2>&1 &
export PGHOST=$sockdir PGPORT=$port PGUSER=postgres DD_BINDIR=$bindir DD_DATADIR=$datadir
for i in $(seq 1 600); do
    pg_isready -q -h "$sockdir" -p "$port" && break
    sleep 1
done
pg_isready -q -h "$sockdir" -p "$port" || { tail -20 "$datadir/server.log"; dd_die "the server did not start under valgrind"; }
trap 'dd_as_pg "$bindir/pg_ctl" -D "$datadir" -m fast -w -t 600 stop >/dev/null 2>&1' EXIT

regress_ok='\.\.\. +ok|^ok [0-9]+ +- '
regress_bad='\.\.\. +FAILED|^not ok [0-9]+ +- '
suites_failed=0
dd_log "pg_regress (sql/) under valgrind"
make -s installcheck ISOLATION= 2>&1 | tee "$logdir/regress.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || suites_failed=1
[ -f regression.diffs ] && cp regression.diffs "$logdir/regress.diffs"
dd_log "isolation specs (specs/) under valgrind"
make -s installcheck REGRESS= 2>&1 | tee "$logdir/isolation.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || suites_failed=1
[ -f output_iso/regression.diffs ] && cp output_iso/regression.diffs "$logdir/isolation.diffs"

# The runs that feed the extension untrusted input: every function x bad
# input, the row-security escapes, the cursor key rotation.
dd_log "test/t/070, 075, 076 under valgrind"
DD_ROOT=$DD_ROOT prove -v --exec bash test/t/070_bad_input.sh test/t/075_row_security.sh \
    test/t/076_cursor_key_rotation.sh 2>&1 | tee "$logdir/prove.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || suites_failed=1

dd_as_pg "$bindir/pg_ctl" -D "$datadir" -m fast -w -t 600 stop >/dev/null 2>&1
trap - EXIT
took=$(( $(date +%s) - start ))
cp "$vglogs"/*.log "$logdir/" 2>/dev/null
cp "$datadir/server.log" "$logdir/server.log" 2>/dev/null

# Each error is a block of lines "==PID== ..." that starts with a message
# and ends with an empty "==PID== " line; its stack names the .so of each
# frame.  --gen-suppressions prints a suppression after each error, which
# is not part of the block.
ours=$(cd src && ls *.c | sed 's/\./\\./' | paste -sd'|')'|dd_clipper\.c'
perl -e '
    my $ours_re = shift;
    my ($total, $ours, @shown) = (0, 0);
    for my $f (@ARGV) {
        open my $fh, "<", $f or next;
        my @block;
        while (my $l = <$fh>) {
            next unless $l =~ /^==\d+==(.*)$/;
            if ($1 =~ /^\s*$/) {
                if (@block) {
                    $total++;
                    if (grep { /dd_clipper\.so|\((?:$ours_re):\d+\)/ } @block) {
                        $ours++;
                        push @shown, join("", @block) if @shown < 5;
                    }
                }
                @block = ();
            } else {
                push @block, $l;
            }
        }
    }
    print "valgrind: $total errors, $ours in dd_clipper\n";
    print "--- error in dd_clipper:\n$_" for @shown;
    exit($ours > 0 ? 1 : 0);
' "$ours" "$logdir"/[0-9]*.log | tee "$logdir/summary"
ours_rc=${PIPESTATUS[0]}
passed=$(( $(cat "$logdir/regress.log" "$logdir/isolation.log" | grep -cE "$regress_ok") + $(grep -cE '^ok [0-9]+' "$logdir/prove.log") ))
failed=$(( $(cat "$logdir/regress.log" "$logdir/isolation.log" | grep -cE "$regress_bad") + $(grep -cE '^not ok [0-9]+' "$logdir/prove.log") ))
echo "under valgrind: $passed passed, $failed failed (pg_regress, isolation, test/t/070, 075, 076); $took s" | tee -a "$logdir/summary"
[ "$ours_rc" -eq 0 ] && [ "$suites_failed" -eq 0 ]
