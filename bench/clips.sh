#!/usr/bin/env bash
# bench/clips.sh -- dd_clips_page keyset pages against the OFFSET query an
# ORM writes, and change-feed polls with nothing new.
#
# Builds, installs into a private tree (tmp_bench_clips/), starts a durable
# throwaway cluster (fsync and synchronous_commit on), loads 1,000,000
# clips across 10,000 users (one user, "heavy", with 100,000) in one
# INSERT ... SELECT, then runs, interleaved, DD_BENCH_ROUNDS rounds of
# DD_BENCH_SECONDS seconds each:
#   page 1 and page 1,000 of "heavy" with dd_clips_page   (bench/clips/page*.sql)
#   page 1 and page 1,000 with LIMIT 50 OFFSET n          (bench/clips/offset*.sql)
#   dd_clip_changes polls with nothing new, 2 clients     (bench/clips/poll.sql)
#   SELECT 1, 2 clients, as the round-trip floor          (bench/clips/select1.sql)
# and prints medians and ratios as a markdown table.  Ratios are taken
# within each round (the runs they compare are adjacent, so they share the
# machine's load of the moment) and their median reported.  About 5
# minutes on a 2-core VM.
#
# Environment (the same names in every bench/*.sh runner; the old names
# ROUNDS and SECS still work):
#   DD_BENCH_PORT      port of the throwaway cluster (54432)
#   DD_BENCH_ROUNDS    rounds (5)
#   DD_BENCH_SECONDS   seconds per pgbench run (5)
set -euo pipefail

source "$(dirname "$0")/../scripts/lib.sh"
cd "$DD_ROOT"

port=${DD_BENCH_PORT:-54432}
rounds=${DD_BENCH_ROUNDS:-${ROUNDS:-5}}
secs=${DD_BENCH_SECONDS:-${SECS:-5}}
dir=$DD_ROOT/tmp_bench_clips
scripts=$DD_ROOT/bench/clips

dd_install_packages
dd_build
dd_log "installing into tmp_bench_clips/"
bindir=$(dd_temp_install "$dir")
dd_log "starting a durable throwaway cluster on port $port"
dd_cluster_start "$bindir" "$dir/data" "$port" \
    -c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=30min
trap dd_cluster_stop EXIT
export PGDATABASE=dd_bench
psql -X -q -d postgres -c "CREATE DATABASE dd_bench"
psql -X -q -c "CREATE EXTENSION dd_clipper"

dd_log "loading 1,000,000 clips across 10,000 users (\"heavy\" has 100,000)"
start=$(date +%s)
# One statement.  Row triggers off (session_replication_role = replica, as
# pg_restore --disable-triggers does): a million notifications in one
# transaction is not what is measured here.
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET session_replication_role = replica;
INSERT INTO clips (user_id, title, notes, tags, status, created_at)
SELECT CASE WHEN i % 10 = 0 THEN 'heavy' ELSE 'user' || (i % 9999) END,
       'clip ' || i,
       'notes on topic ' || (i % 97),
       ARRAY['tag' || (i % 7)],
       CASE WHEN i % 50 = 0 THEN 'processing' ELSE 'ready' END,
       '2024-01-01'::timestamptz + (i / 2) * interval '1 second'
FROM generate_series(1, 1000000) i;
RESET session_replication_role;
VACUUM (ANALYZE) clips;
SQL
dd_log "loaded in $(( $(date +%s) - start ))s: $(psql -X -At -c "SELECT count(*) || ' clips, ' || count(DISTINCT user_id) || ' users, heavy: ' || count(*) FILTER (WHERE user_id = 'heavy') FROM clips")"

# The cursor of page 1,000 (walked page by page, as a client would).
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE bench_cursor (first_cursor text, deep_cursor text);
DO $$
DECLARE c text;
BEGIN
    FOR i IN 1 .. 999 LOOP
        c := dd_clips_page('heavy', 50, c)->>'continueCursor';
    END LOOP;
    INSERT INTO bench_cursor VALUES (NULL, c);
END $$;
SQL
# The deep page is the same rows as OFFSET 49950.
same=$(psql -X -At -c "
SELECT (SELECT array_agg((e->>'id')::bigint) FROM jsonb_array_elements(
            dd_clips_page('heavy', 50, (SELECT deep_cursor FROM bench_cursor))->'page') e)
     = (SELECT array_agg(id) FROM (SELECT id FROM clips WHERE user_id = 'heavy' AND deleted_at IS NULL
                                   ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 49950) s)")
[ "$same" = t ] || dd_die "page 1,000 differs from OFFSET 49950"
since=$(psql -X -At -c "SELECT dd_clip_changes('heavy')->>'version'")

# run NAME CLIENTS SCRIPT [pgbench options]: one timed run, prints tps.
run() {
    local name=$1 clients=$2 script=$3
    shift 3
    "$bindir/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$secs" \
        -f "$scripts/$script" "$@" 2>&1 \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' >>"$dir/$name.tps"
}
median() { sort -n "$dir/$1.tps" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

rm -f "$dir"/*.tps "$dir"/*.ratio
# ratio NAME A B: tps(A) / tps(B) of this round's last runs.
ratio_now() { awk -v a="$(tail -1 "$dir/$2.tps")" -v b="$(tail -1 "$dir/$3.tps")" \
    'BEGIN {printf "%.4f\n", a / b}' >>"$dir/$1.ratio"; }
for r in $(seq 1 "$rounds"); do
    dd_log "round $r of $rounds"
    run page1 1 page1.sql
    run page1000 1 page1000.sql
    ratio_now keyset_deep page1 page1000
    run offset1 1 offset1.sql
    run offset1000 1 offset1000.sql
    ratio_now offset_deep offset1 offset1000
    ratio_now offset_vs_keyset page1000 offset1000
    run poll 2 poll.sql -D since="$since"
    run select1 2 select1.sql
done

median_of() { sort -n "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ms() { awk -v t="$(median "$1")" 'BEGIN {printf "%.3f", 1000 / t}'; }
r() { awk -v x="$(median_of "$dir/$1.ratio")" 'BEGIN {printf "%.2f", x}'; }

dd_log "results: medians of $rounds rounds of ${secs}s (latency = 1000 / tps, 1 client; ratios per round)"
cat <<TABLE

| 1,000,000 clips, user with 100,000 | \`dd_clips_page\` (keyset) | ORM \`LIMIT 50 OFFSET n\` |
|---|---|---|
| page 1 (ms) | $(ms page1) | $(ms offset1) |
| page 1,000 (ms) | $(ms page1000) | $(ms offset1000) |
| page 1,000 / page 1 | $(r keyset_deep)× | $(r offset_deep)× |
| page 1,000: OFFSET / keyset | | $(r offset_vs_keyset)× slower |

| change feed, nothing new (2 clients) | per second |
|---|---|
| \`dd_clip_changes('heavy', since)\` polls | $(median poll | cut -d. -f1) |
| \`SELECT 1\` (round-trip floor) | $(median select1 | cut -d. -f1) |

per-round page 1,000 / page 1 (keyset): $(tr '\n' ' ' <"$dir/keyset_deep.ratio")
TABLE
