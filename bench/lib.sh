# shellcheck shell=bash
# bench/lib.sh -- shared by the side-by-side runners (bench/credits.sh,
# bench/api_keys.sh): the network model, the server-CPU meter, and the
# medians and per-round ratios of a results file.
#
# The network model.  On a unix socket a round trip costs a few
# microseconds, so a contender that sends four statements loses little to
# one that sends one call.  Between an application and its database there is
# a network: every statement waits one round-trip time (RTT) before its
# result is back.  The model puts a pgbench "\sleep" of one RTT before every
# SQL statement a contender sends (BEGIN and COMMIT included: each is its own
# round trip), so the client waits as it would on the network, and row locks
# taken by one statement stay held across the round trips to the next, as
# they do on a real network.  RTT 0 runs the scripts as written, without
# any \sleep.
#
# pgbench's \sleep oversleeps (a timer wake-up, about 50-130 us on a VM), so
# bench_calibrate measures what one \sleep really takes and, unless
# DD_BENCH_RTT_CALIBRATE=off, shortens the nominal sleep until one \sleep
# takes the RTT asked for.
#
# Results files are tab-separated, one line per pgbench run:
#   round section scenario clients rtt_us variant tps cpu_us_per_tx
#
# Source it after scripts/lib.sh; do not run it.

# bench_sql_statements FILE: the number of SQL statements (round trips) in a
# pgbench script, counting those inside \if blocks.
bench_sql_statements() {
    bench_rtt_script "$1" 1 | grep -c '^\\sleep'
}

# bench_rtt_script SRC SLEEP_US: print the pgbench script SRC with
# "\sleep SLEEP_US us" before each of its SQL statements.  A statement
# starts at a line that is neither blank, a comment nor a meta-command, and
# ends at a line ending in ";" or "\gset" / "\aset".
bench_rtt_script() {
    awk -v us="$2" '
        function ends(line) { return line ~ /(;|\\[ga]set)[ \t]*(--.*)?$/ }
        !in_stmt && ($0 ~ /^[ \t]*$/ || $0 ~ /^[ \t]*--/ || $0 ~ /^[ \t]*\\/) { print; next }
        !in_stmt { print "\\sleep " us " us"; in_stmt = 1 }
        { print; if (ends($0)) in_stmt = 0 }
    ' "$1"
}

# bench_sleep_cost SLEEP_US: microseconds one "\sleep SLEEP_US us" takes,
# measured over two seconds of a script of 20 of them, one client (it needs
# a database to connect to: PGDATABASE or postgres).
bench_sleep_cost() {
    local f log tps
    f=$(mktemp)
    for _ in $(seq 20); do echo "\\sleep $1 us"; done >"$f"
    log=$("$DD_BINDIR/pgbench" -n -c 1 -T 2 -f "$f" "${PGDATABASE:-postgres}" 2>&1)
    rm -f "$f"
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$log")
    [ -n "$tps" ] || { printf '%s\n' "$log" >&2; dd_die "pgbench \\sleep calibration failed"; }
    awk -v t="$tps" 'BEGIN { printf "%.1f\n", 1000000 / t / 20 }'
}

# bench_calibrate RTT_US...: for each RTT, set BENCH_SLEEP[RTT] to the
# \sleep argument the runs use and print what one \sleep costs.  With
# DD_BENCH_RTT_CALIBRATE=off the argument is the RTT itself; otherwise it is
# shortened, a few measured steps, until one \sleep takes the RTT (within 2%
# or 5 us).  The measurement is on an idle client: under load a wake-up can
# come later still.  Also writes the lines printed to BENCH_CALIBRATION.
declare -A BENCH_SLEEP
BENCH_CALIBRATION=
bench_calibrate() {
    local rtt s m first out=""
    dd_log "calibrating pgbench \\sleep (one client, 20 sleeps a transaction)"
    m=$(bench_sleep_cost 0)
    out+="\\sleep 0 us takes $m us"$'\n'
    for rtt in "$@"; do
        [ "$rtt" -gt 0 ] || continue
        s=$rtt
        first=$(bench_sleep_cost "$s")
        m=$first
        if [ "${DD_BENCH_RTT_CALIBRATE:-on}" != off ]; then
            for _ in 1 2 3 4; do
                awk -v m="$m" -v r="$rtt" 'BEGIN { d = m - r; if (d < 0) d = -d;
                    exit !(d <= 5 || d <= r * 0.02) }' && break
                s=$(awk -v s="$s" -v m="$m" -v r="$rtt" 'BEGIN {
                    n = int(s + r - m + 0.5); print (n < 1 ? 1 : n) }')
                m=$(bench_sleep_cost "$s")
            done
        fi
        BENCH_SLEEP[$rtt]=$s
        out+=$(awk -v r="$rtt" -v f="$first" -v s="$s" -v m="$m" 'BEGIN {
            printf "RTT %d us: \\sleep %d us takes %.0f us (%+.0f us per sleep); the runs use \\sleep %d us, which takes %.0f us",
                r, r, f, f - r, s, m }')$'\n'
    done
    # shellcheck disable=SC2034  # read by the runners
    BENCH_CALIBRATION=$out
    printf '%s' "$out" | sed 's/^/  /'
}

# bench_scripts DIR RTT_US SRC...: echo the path of the pgbench script to
# run for each SRC at RTT_US: SRC itself at 0, else a copy in DIR with the
# calibrated \sleep before each statement.
bench_scripts() {
    local dir=$1 rtt=$2 src dest
    shift 2
    for src in "$@"; do
        if [ "$rtt" -eq 0 ]; then
            echo "$src"
        else
            mkdir -p "$dir/rtt$rtt"
            dest=$dir/rtt$rtt/$(basename "$src")
            bench_rtt_script "$src" "${BENCH_SLEEP[$rtt]:-$rtt}" >"$dest"
            echo "$dest"
        fi
    done
}

# bench_cluster_ticks: CPU clock ticks the cluster has used so far: the
# postmaster, its exited children (reaped into its cutime/cstime) and its
# live children.  The difference over a run, per transaction, is the
# server CPU a call costs: unlike TPS it hardly moves when other programs
# compete for the cores.  It includes the start-up and exit of pgbench's
# backends (a few milliseconds of CPU each): small over a run of thousands
# of transactions, visible in a one-second quick check at 32 clients.
bench_cluster_ticks() {
    local pm t c
    pm=$(head -1 "$DD_DATADIR/postmaster.pid")
    t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
    for c in $(cat "/proc/$pm/task/$pm/children"); do
        t=$(( t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0) ))
    done
    echo "$t"
}

# bench_run RAW ROUND SECTION SCENARIO CLIENTS RTT VARIANT -- PGBENCH_ARGS...:
# one pgbench run (-n, -M prepared, -c CLIENTS, up to two threads, plus
# PGBENCH_ARGS); appends its TPS and server CPU per transaction to RAW and
# prints a progress line.  A run that aborts a transaction stops the runner.
bench_run() {
    local raw=$1 round=$2 section=$3 scenario=$4 clients=$5 rtt=$6 variant=$7
    shift 8
    local jobs=$(( clients < 2 ? 1 : 2 )) t0 t1 log tps n cpu
    t0=$(bench_cluster_ticks)
    log=$("$DD_BINDIR/pgbench" -n -M prepared -c "$clients" -j "$jobs" "$@" 2>&1) || true
    sleep 0.2   # let the exited backends be reaped
    t1=$(bench_cluster_ticks)
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$log" | head -1)
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$log")
    if [ -z "$tps" ] || grep -q '^number of failed transactions: [1-9]\|aborted' <<<"$log"; then
        printf '%s\n' "$log" >&2
        dd_die "$variant ($section, $scenario, $clients clients, RTT $rtt us) failed"
    fi
    cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" \
        'BEGIN { printf "%.0f", (n > 0 ? d * 1000000 / hz / n : 0) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$section" "$scenario" \
        "$clients" "$rtt" "$variant" "$tps" "$cpu" >>"$raw"
    printf '  round %s  %-6s %-4s %2s clients  RTT %4s us  %-10s %8.0f tps  %6s us CPU/tx\n' \
        "$round" "$section" "$scenario" "$clients" "$rtt" "$variant" "$tps" "$cpu"
}

# bench_median RAW SECTION SCENARIO CLIENTS RTT VARIANT COLUMN: the median
# over rounds of one column (7 = tps, 8 = cpu_us_per_tx) of a cell; empty
# when the cell was not run.
bench_median() {
    awk -F'\t' -v s="$2" -v sc="$3" -v c="$4" -v r="$5" -v v="$6" -v col="$7" \
        '$2 == s && $3 == sc && $4 == c && $5 == r && $6 == v { print $col }' "$1" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) print "";
            else if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio RAW SECTION SCENARIO CLIENTS RTT A B: the median over rounds
# of A's TPS / B's TPS within each round (the runs of one round are back to
# back, under the same background load); empty when not run.
bench_ratio() {
    awk -F'\t' -v s="$2" -v sc="$3" -v c="$4" -v r="$5" -v a="$6" -v b="$7" '
        $2 == s && $3 == sc && $4 == c && $5 == r && $6 == a { ta[$1] = $7 }
        $2 == s && $3 == sc && $4 == c && $5 == r && $6 == b { tb[$1] = $7 }
        END { for (k in ta) if ((k in tb) && tb[k] > 0) print ta[k] / tb[k] }' "$1" |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) print "";
            else if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_fmt FORMAT VALUE: VALUE printed with FORMAT, or "-" when empty.
bench_fmt() {
    if [ -z "$2" ]; then echo "-"; else awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; fi
}

# bench_rtt_label RTT_US: "0 (unix socket)", "0.2 ms", "1 ms".
bench_rtt_label() {
    if [ "$1" -eq 0 ]; then echo "0 (unix socket)"
    else awk -v r="$1" 'BEGIN { printf "%g ms", r / 1000 }'; fi
}

# bench_target RATIO MIN: "≥ MIN: met" or "≥ MIN: MISSED" (or "not run").
bench_target() {
    if [ -z "$1" ]; then echo "≥ $2: not run"; return; fi
    awk -v r="$1" -v m="$2" 'BEGIN { printf "≥ %s: %s", m, (r + 0 >= m + 0 ? "met" : "MISSED") }'
}
