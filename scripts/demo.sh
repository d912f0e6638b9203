#!/usr/bin/env bash
# scripts/demo.sh -- see dd_clipper do its job, on a fresh machine, in one command.
#
# Installs the packages it needs, builds and installs the extension
# (system-wide, so you can keep using it), starts a throwaway cluster (its
# data directory under DD_RUN, outside the checkout, so a clone in a private
# folder works) on a private port and socket directory, creates the database
# dd_demo with the extension, and runs the scripted demo in scripts/demo/
# (each file one capability, in order).  The cluster keeps running so you
# can look around; the script prints how to connect and how to stop it.
#
# Environment: DD_DEMO_PORT (default 54328) picks the cluster's port;
# DD_PG=18 runs the demo on PostgreSQL 18 (built once, as for scripts/test.sh,
# and the extension installed into that build).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
cd "$DD_ROOT"

port=${DD_DEMO_PORT:-54328}

dd_install_packages
export PATH=$DD_SYSTEM_BINDIR:$PATH    # psql of the version the demo runs
dd_build
dd_log "installing the extension into $("$PG_CONFIG" --sharedir)"
dd_sudo make -s install PG_CONFIG="$PG_CONFIG" >/dev/null
dd_log "starting a throwaway PostgreSQL $DD_PG cluster on port $port (DD_DEMO_PORT)"
dd_cluster_start "$DD_SYSTEM_BINDIR" "$DD_ROOT/tmp_demo/data" "$port"
psql -X -q -d postgres -c 'CREATE DATABASE dd_demo' >/dev/null
psql -X -q -d dd_demo -c 'CREATE EXTENSION dd_clipper' >/dev/null

export DD_DEMO_DB=dd_demo
for step in scripts/demo/*; do
    case "$step" in
        *.sql) psql -X -q -v ON_ERROR_STOP=1 -d dd_demo -f "$step" ;;
        *.sh) bash "$step" ;;
    esac
done

cat <<MSG

==> the demo cluster is still running
    connect:  psql -h $PGHOST -p $PGPORT -U postgres dd_demo
    stop:     $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- " )$DD_SYSTEM_BINDIR/pg_ctl -D $DD_DATADIR stop
MSG
