# test/citus/lib.sh -- a Citus coordinator and two workers on loopback, for
# test/citus/run.sh and bench/citus.sh.  Source it after scripts/lib.sh.
#
# citus_bindir: the bin directory of the server under test (DD_BINDIR when
# scripts/test.sh runs us; otherwise this checkout is built and installed
# into a private copy of the server, as scripts/test.sh does).
# citus_available BINDIR: whether Citus is installed in that server.
# citus_start BINDIR PORT [postgres -c options...]: nodes on PORT
# (coordinator), PORT+1, PORT+2, with Citus created and the workers added
# (the options, after the defaults, override them: the tests run without
# fsync, the benchmark durable); citus_stop stops them.

citus_bindir() {
    if [ -n "${DD_BINDIR:-}" ]; then
        echo "$DD_BINDIR"
        return
    fi
    dd_install_packages >&2
    dd_build >&2
    dd_temp_install "$DD_RUN/citus/install"
}

citus_available() {
    [ -f "$("$1/pg_config" --pkglibdir)/citus.so" ]
}

CITUS_DATADIRS=()

citus_start() {
    local bindir=$1 port=$2 p
    shift 2
    for p in "$port" $((port + 1)) $((port + 2)); do
        dd_cluster_start "$bindir" "$DD_RUN/citus/node$p" "$p" \
            -c shared_preload_libraries=citus -c listen_addresses=127.0.0.1 \
            -c fsync=off -c synchronous_commit=off -c max_connections=150 \
            -c max_prepared_transactions=150 "$@"
        CITUS_DATADIRS+=("$DD_DATADIR")
        psql -X -q -h 127.0.0.1 -p "$p" -U postgres -d postgres \
            -c 'CREATE EXTENSION citus' >/dev/null || return 1
    done
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
    psql -X -q -d postgres -v ON_ERROR_STOP=1 \
        -c "SELECT citus_set_coordinator_host('127.0.0.1', $port)" \
        -c "SELECT citus_add_node('127.0.0.1', $((port + 1)))" \
        -c "SELECT citus_add_node('127.0.0.1', $((port + 2)))" >/dev/null
}

citus_stop() {
    local d
    for d in "${CITUS_DATADIRS[@]}"; do
        dd_cluster_stop_dir "$d"
    done
}
