# test/lib/pgbench.bash -- run pgbench for a load test and judge the run.
#
# pgbench's exit code is not a verdict: since PostgreSQL 15 it counts a
# deadlock or a serialization failure as a "failed transaction", lets the
# client go on, and still exits 0.  Every load run in test/t/ therefore
# goes through these two functions:
#
#   pgbench_run LOG ARGS...     run "$DD_BINDIR/pgbench" ARGS... with its
#                               output in LOG; LOG.rc gets its exit code and
#                               LOG.mark the server log's size before it
#                               started (so it can run in the background)
#   pgbench_ok LOG DESCRIPTION [FAILED WHY]
#                               one TAP test: the run exited 0, no client
#                               aborted, every transaction it was asked for
#                               was processed (-t), "number of failed
#                               transactions" is 0 (or exactly FAILED, for
#                               the reason WHY), and the server logged no
#                               "deadlock detected" and no crash while it ran
#
# and server_log_since LOG prints what the server logged since that run
# started (for tests that count lock waits, for example).
#
# The server log is $DD_DATADIR/server.log, where scripts/lib.sh's
# dd_cluster_start writes it; DD_SERVER_LOG overrides it.  A run whose
# server log cannot be read fails: it cannot be judged.
#
# Sourced after test/lib/tap.bash.

_pgbench_server_log() {
    echo "${DD_SERVER_LOG:-${DD_DATADIR:-}/server.log}"
}

# pgbench_run LOG ARGS...
pgbench_run() {
    local log=$1 slog
    shift
    slog=$(_pgbench_server_log)
    if [ -r "$slog" ]; then
        stat -c %s "$slog" >"$log.mark"
    else
        echo unreadable >"$log.mark"
    fi
    "$DD_BINDIR/pgbench" "$@" >"$log" 2>&1
    echo $? >"$log.rc"
}

# server_log_since LOG: the server log written since pgbench_run LOG began.
server_log_since() {
    local log=$1 mark slog
    mark=$(cat "$log.mark" 2>/dev/null)
    slog=$(_pgbench_server_log)
    case $mark in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ -r "$slog" ] || return 1
    tail -c +"$((mark + 1))" "$slog"
}

# pgbench_ok LOG DESCRIPTION [FAILED WHY]
pgbench_ok() {
    local log=$1 desc=$2 want=${3:-0} why=${4:-} rc failed processed server
    local problems=()

    rc=$(cat "$log.rc" 2>/dev/null)
    [ "$rc" = 0 ] || problems+=("pgbench exited with ${rc:-no status}")
    if grep -q 'aborted' "$log"; then
        problems+=("a client aborted")
    fi
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$log")
    if [ -z "$failed" ]; then
        problems+=("no \"number of failed transactions\" line")
    elif [ "$failed" -ne "$want" ]; then
        problems+=("$failed failed transactions, expected $want${why:+ ($why)}")
    fi
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9/]*\).*/\1/p' "$log")
    case $processed in
        */*) [ "${processed%/*}" = "${processed#*/}" ] \
                 || problems+=("only $processed transactions processed") ;;
        '') problems+=("no \"number of transactions actually processed\" line") ;;
    esac
    if server=$(server_log_since "$log"); then
        if printf '%s\n' "$server" | grep -q 'deadlock detected'; then
            problems+=("the server logged $(printf '%s\n' "$server" \
                | grep -c 'deadlock detected') x \"deadlock detected\"")
        fi
        if printf '%s\n' "$server" | grep -qE 'terminated by signal|TRAP:'; then
            problems+=("a server process crashed")
        fi
    else
        problems+=("cannot read the server log $(_pgbench_server_log)")
    fi

    [ ${#problems[@]} -eq 0 ]
    ok $? "$desc"
    if [ ${#problems[@]} -ne 0 ]; then
        printf '#   %s\n' "${problems[@]}"
        grep -E 'error|aborted|^number of' "$log" | head -6 | sed 's/^/#   /'
        printf '%s\n' "${server:-}" | grep -E 'ERROR|DETAIL' | head -6 | sed 's/^/#   server log: /'
    fi
    return 0
}

# pgbench_processed LOG: how many transactions the run processed.
pgbench_processed() {
    sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"
}
