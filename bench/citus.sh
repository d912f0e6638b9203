#!/usr/bin/env bash
# bench/citus.sh -- dd_charge_credit per second through a Citus coordinator
# with two workers, against a single node, on the same machine, at 8 and 32
# clients.
#
#   bash bench/citus.sh                                        # full run
#   DD_BENCH_ROUNDS=1 DD_BENCH_SECONDS=5 bash bench/citus.sh   # quick check
#
# Needs Citus installed in the server (see README, Scale out); without it,
# says so and exits 0.  Both setups are durable (fsync, synchronous_commit
# on) and otherwise alike; the single node has no Citus at all.  Each round
# runs, for each client count, the single node and the cluster (the order
# alternates between rounds), DD_BENCH_SECONDS each: pgbench, one
# dd_charge_credit of 1 credit per transaction for a random user of 1,000,
# each holding 10^9 credits.  Prints the medians, the cluster's share of the
# single node's throughput, and checks that no transaction failed and that
# dd_credit_audit() is empty on both afterwards.
#
# Environment: DD_BENCH_PORT (54420; the single node, the cluster on the
# three ports after it), DD_BENCH_ROUNDS (3), DD_BENCH_SECONDS (15),
# DD_BENCH_CLIENTS ("8 32").
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
source "$DD_ROOT/test/citus/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54420}
rounds=${DD_BENCH_ROUNDS:-3}
seconds=${DD_BENCH_SECONDS:-15}
clients_list=${DD_BENCH_CLIENTS:-8 32}
work=$DD_ROOT/tmp_bench_citus
out=$DD_ROOT/bench/results
mkdir -p "$work" "$out"

bindir=$(citus_bindir)
if ! citus_available "$bindir"; then
    echo "Citus is not installed in $("$bindir/pg_config" --pkglibdir): nothing to measure (see README, Scale out)"
    exit 0
fi
export PATH=$bindir:$PATH
durable=(-c fsync=on -c synchronous_commit=on -c max_connections=150)

single_dir=
cleanup() {
    citus_stop
    [ -n "$single_dir" ] && dd_cluster_stop_dir "$single_dir"
}
trap cleanup EXIT

dd_log "a single node on port $port"
dd_cluster_start "$bindir" "$DD_RUN/citus/single" "$port" -c listen_addresses=127.0.0.1 "${durable[@]}"
single_dir=$DD_DATADIR
dd_log "a coordinator on port $((port + 1)) and workers on $((port + 2)), $((port + 3))"
citus_start "$bindir" "$((port + 1))" "${durable[@]}"

setup="CREATE EXTENSION dd_clipper;
SELECT count(dd_grant_credit('u' || g, 1000000000)) FROM generate_series(1, 1000) g;"
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -d postgres -c "$setup" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$((port + 1))" -d postgres \
    -c "CREATE EXTENSION dd_clipper" -c "SELECT dd_distribute()" \
    -c "SELECT count(dd_grant_credit('u' || g, 1000000000)) FROM generate_series(1, 1000) g" >/dev/null 2>&1

cat >"$work/charge.sql" <<'SQL'
\set u random(1, 1000)
SELECT ok FROM dd_charge_credit('u' || :u, 1);
SQL

results=$out/citus-$(date -u +%Y%m%dT%H%M%SZ).tsv
: >"$results"
# run ROUND SETUP PORT CLIENTS
run() {
    local log tps failed
    log=$(pgbench -n -c "$4" -j 2 -T "$seconds" -f "$work/charge.sql" -h 127.0.0.1 -p "$3" postgres 2>&1)
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$log")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$log")
    [ -n "$tps" ] && [ "${failed:-0}" = 0 ] || { printf '%s\n' "$log" >&2; dd_die "pgbench failed ($2, $4 clients)"; }
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$4" "$tps" | tee -a "$results"
}
for r in $(seq "$rounds"); do
    for n in $clients_list; do
        if [ $((r % 2)) = 1 ]; then
            run "$r" single "$port" "$n"; run "$r" citus "$((port + 1))" "$n"
        else
            run "$r" citus "$((port + 1))" "$n"; run "$r" single "$port" "$n"
        fi
    done
done

for p in "$port" "$((port + 1))"; do
    bad=$(psql -X -At -h 127.0.0.1 -p "$p" -d postgres -c 'SELECT count(*) FROM dd_credit_audit()')
    [ "$bad" = 0 ] || dd_die "dd_credit_audit() is not empty on port $p"
done

dd_log "medians over $rounds rounds, $seconds s each (charges per second)"
printf '%-8s %12s %12s %8s\n' clients single citus share
for n in $clients_list; do
    awk -F'\t' -v n="$n" '
        function median(a, k,   i, j, t) {
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        $3 == n && $2 == "single" { s[++ns] = $4 }
        $3 == n && $2 == "citus" { c[++nc] = $4 }
        END { ms = median(s, ns); mc = median(c, nc); printf "%-8s %12.0f %12.0f %7.0f%%\n", n, ms, mc, 100 * mc / ms }
    ' "$results"
done
echo "results: $results; dd_credit_audit() empty on both"
