# test/lib/tap.bash -- a minimal TAP producer for the shell runs in test/t/.
#
# Sourced by test/t/*.sh, which scripts/test.sh runs with prove against its
# throwaway cluster (PGHOST, PGPORT, PGUSER and DD_BINDIR are set).

_tap_n=0
_tap_failed=0

# plan N
plan() { echo "1..$1"; }

# ok COND DESCRIPTION: COND is a shell exit status (0 = pass).
ok() {
    _tap_n=$((_tap_n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $_tap_n - $2"
    else
        echo "not ok $_tap_n - $2"
        _tap_failed=$((_tap_failed + 1))
    fi
}

# is GOT EXPECTED DESCRIPTION
is() {
    local got=$1 want=$2
    [ "$got" = "$want" ]
    ok $? "$3"
    if [ "$got" != "$want" ]; then
        printf '#   got:      %s\n#   expected: %s\n' "$got" "$want"
    fi
}

# is_same GOT EXPECTED DESCRIPTION: like is, for two values that are both
# computed (two queries): each must be non-empty, so two failed queries
# ("" = "") do not pass.
is_same() {
    local got=$1 want=$2
    if [ -z "$got" ] || [ -z "$want" ]; then
        ok 1 "$3"
        printf '#   got:      "%s"\n#   expected: "%s"\n#   (an empty side: its query failed)\n' "$got" "$want"
        return 0
    fi
    is "$got" "$want" "$3"
}

diag() { printf '# %s\n' "$*"; }

# q DB SQL: one value (or rows) from psql, unaligned, no headers, no psqlrc.
q() {
    local db=$1
    shift
    psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" -c "$@"
}

# fresh_db NAME: drop and create a database.
fresh_db() {
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
}

done_testing() { exit $((_tap_failed > 0)); }
