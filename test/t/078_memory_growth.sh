#!/usr/bin/env bash
# test/t/078_memory_growth.sh -- no backend memory growth on the request
# path.
#
# Each function an application calls per request -- dd_charge_credit,
# dd_authorize_and_charge, dd_verify_api_key, dd_credit_balance,
# dd_clip_changes, dd_log_usage, dd_track_event, dd_track_events,
# dd_clips_page, and the clips triggers (dd_clips_stamp, dd_clips_publish)
# that every write of a clip fires -- runs 1,000,000 times in one session,
# in statements of 10,000 calls, after a warm-up (every function once, then
# 20,000 calls of the one measured) that fills the plan and catalog caches.
# The calls mix the function's code paths, each at least 100,000 times:
# new and replayed request ids, refusals, valid, revoked, unknown and
# malformed keys, first and next pages, searches, empty and full polls,
# inserts, updates and deletes.  The functions run in two sessions at once
# (two cores), five each, one after another.
#
# Ten times during each million, the session records the sum of
# total_bytes over pg_backend_memory_contexts (every memory context of the
# backend, measured between statements) and its private resident memory
# (RssAnon in /proc/self/status, which also sees malloc outside the
# contexts).  From the first sample to the last, neither may grow by more
# than 1 MB: less than one byte per call, where a leak of one 16-byte chunk
# per call in any context that outlives a statement would add 16 MB or
# more.  Two settings keep PostgreSQL's own one-time growth out of the
# measure: jit = off (LLVM's allocations grow a JIT-compiling backend's
# RssAnon by about 100 kB per compiled statement on PostgreSQL 15, whatever
# the statement calls), and gin_pending_list_limit = 64kB, so that the
# clips' GIN pending lists are flushed (a flush grows the backend's WAL
# record buffers once, to their largest) during the warm-up already, not
# for the first time in the middle of the million.
#
# DD_MEMORY_CALLS changes the number of calls per function (a multiple of
# 100,000; the promise is about the default, 1,000,000), for a quicker run
# while working on the code.
set -u
source "$DD_ROOT/test/lib/tap.bash"

calls=${DD_MEMORY_CALLS:-1000000}
batch=10000
batches=$((calls / batch))
bound=1048576
rss_bound_kb=1024

sessions=(
    "dd_charge_credit dd_authorize_and_charge dd_verify_api_key dd_credit_balance dd_clip_changes"
    "dd_log_usage dd_track_event dd_track_events dd_clips_page clips_triggers"
)
functions=(${sessions[0]} ${sessions[1]})

plan $((3 + 2 * ${#functions[@]}))

db=dd_memory_growth
fresh_db "$db"
q "$db" "
CREATE EXTENSION dd_clipper;
-- 10,000 users with credit and 10,200 keys: 9,900 valid, 100 revoked,
-- 200 deleted (well formed, NOT_FOUND); clips to page through.
SELECT count(dd_grant_credit('u' || i, 1000000000, 'seed')) FROM generate_series(1, 10000) i;
CREATE TABLE keys (i int PRIMARY KEY, key_id bigint, api_key text);
INSERT INTO keys SELECT i, c.key_id, c.api_key
    FROM generate_series(1, 10200) i, LATERAL dd_create_api_key('u' || least(i, 10000), 'k') c;
SELECT count(dd_revoke_api_key(key_id)) FROM keys WHERE i BETWEEN 9901 AND 10000;
DELETE FROM api_keys WHERE id IN (SELECT key_id FROM keys WHERE i > 10000);
INSERT INTO clips (user_id, title, notes, tags, status)
    SELECT 'c' || (i % 10), 'clip ' || i || CASE WHEN i % 3 = 0 THEN ' postgres' ELSE '' END,
           'notes ' || i, CASE WHEN i % 2 = 0 THEN '{a,b}' ELSE '{b}' END::text[], 'ready'
    FROM generate_series(1, 500) i;
INSERT INTO clips (user_id, title) SELECT 'f', 'clip ' || i FROM generate_series(1, 2) i;
CREATE TABLE cursors AS
    SELECT dd_clips_page('c1', 2) ->> 'continueCursor' AS newest,
           dd_clips_page('c1', 2, search => 'postgres', sort => 'relevance') ->> 'continueCursor' AS relevance;
" >/dev/null &&
# (after the clips committed) A version past every change: polls with it
# are empty.
q "$db" "CREATE TABLE feed AS SELECT (dd_clip_changes('nobody') ->> 'version')::bigint AS since;
         ANALYZE" >/dev/null
ok $? "10,000 users with credit, 10,200 keys, 500 clips"

# The key of call g: one in ten revoked, one in ten unknown.
key_of_g="CASE g % 10 WHEN 2 THEN 9901 + g % 100 WHEN 3 THEN 10001 + g % 200 ELSE g END"

# stmt FUNCTION B: one statement of $batch calls of FUNCTION (g = 1..10000;
# B numbers the statements, so request ids are new in each).
stmt() {
    local b=$2 r="'$1-$2-' || g"
    case $1 in
        dd_charge_credit)
            # 8 in 10 new, 1 a replay of the last statement, 1 refused.
            echo "SELECT count(*) FROM generate_series(1, $batch) g, LATERAL dd_charge_credit(
                'u' || g, CASE WHEN g % 10 = 1 THEN 1000000000000 ELSE 1 END,
                CASE WHEN g % 10 = 0 THEN '$1-$((b - 1))-' || g ELSE $r END, '/mem',
                metadata => CASE WHEN g % 2 = 0 THEN '{\"m\": 1}'::jsonb END) c;" ;;
        dd_authorize_and_charge)
            # New request ids, replays, malformed, revoked and unknown keys.
            echo "SELECT count(*) FROM generate_series(1, $batch) g JOIN keys k ON k.i = $key_of_g,
                LATERAL dd_authorize_and_charge(CASE WHEN g % 10 = 1 THEN 'ddk_malformed' ELSE k.api_key END, 1,
                CASE WHEN g % 10 = 0 THEN '$1-$((b - 1))-' || g ELSE $r END, '/mem') c;" ;;
        dd_log_usage)
            echo "SELECT count(*) FROM generate_series(1, $batch) g, LATERAL dd_log_usage('u' || g, '/free',
                CASE WHEN g % 10 = 0 THEN '$1-$((b - 1))-' || g ELSE $r END) c;" ;;
        dd_verify_api_key)
            # Valid, malformed, revoked and unknown keys; every other
            # statement writes last_used_at on every call of a valid key.
            echo "SET dd_clipper.key_touch_interval = $(( b % 2 == 0 ? 0 : 3600 ));"
            echo "SELECT count(*) FROM generate_series(1, $batch) g JOIN keys k ON k.i = $key_of_g,
                LATERAL dd_verify_api_key(CASE WHEN g % 10 = 1 THEN 'ddk_malformed' || g ELSE k.api_key END) c;" ;;
        dd_credit_balance)
            # Users with a balance, and users without.
            echo "SELECT count(*) FROM generate_series(1, $batch) g, LATERAL dd_credit_balance(
                CASE WHEN g % 10 = 0 THEN 'nobody' || g ELSE 'u' || g END) c;" ;;
        dd_track_event)
            # New ids, a repeat of the last statement's, no id at all.
            echo "SELECT count(*) FROM generate_series(1, $batch) g, LATERAL dd_track_event('u' || g, 'ev',
                CASE WHEN g % 2 = 0 THEN '{\"p\": 1}'::jsonb END,
                CASE WHEN g % 10 = 0 THEN '$1-$((b - 1))-' || g WHEN g % 10 = 1 THEN NULL ELSE $r END) c;" ;;
        dd_track_events)
            # Batches of one event; one in ten a batch of three that repeats
            # a stored id (the retry path).
            echo "SELECT count(*) FROM generate_series(1, $batch) g, LATERAL dd_track_events(CASE WHEN g % 10 = 0
                THEN jsonb_build_array(
                    jsonb_build_object('user_id', 'u' || g, 'event', 'a', 'event_id', '$1-$((b - 1))-' || (g + 1)),
                    jsonb_build_object('user_id', 'u' || g, 'event', 'b', 'event_id', '$1-$b-b' || g),
                    jsonb_build_object('user_id', 'u' || g, 'event', 'c', 'occurred_at', 1772359200000 + g))
                ELSE jsonb_build_array(jsonb_build_object('user_id', 'u' || g, 'event', 'a', 'event_id', '$1-$b-' || g))
                END) c;" ;;
        dd_clips_page)
            # Newest and oldest first pages, next pages, searches, tags.
            echo "SELECT count(*) FROM generate_series(1, $batch) g, cursors k, LATERAL dd_clips_page('c1', 2,
                cursor => CASE g % 5 WHEN 1 THEN k.newest WHEN 3 THEN k.relevance END,
                search => CASE WHEN g % 5 IN (2, 3) THEN 'postgres' END,
                tags => CASE WHEN g % 5 = 4 THEN '{a}'::text[] END,
                sort => CASE g % 5 WHEN 4 THEN 'oldest' WHEN 2 THEN 'relevance' WHEN 3 THEN 'relevance' ELSE 'newest' END) c;" ;;
        dd_clip_changes)
            # Empty polls, and one in ten reads 1 of the 2 changes of user f.
            echo "SELECT count(*) FROM generate_series(1, $batch) g, feed f,
                LATERAL dd_clip_changes(CASE WHEN g % 10 = 0 THEN 'f' ELSE 'c' || (g % 10) END,
                                        CASE WHEN g % 10 = 0 THEN 0 ELSE f.since END, 1) c;" ;;
        clips_triggers)
            # The triggers dd_clips_stamp and dd_clips_publish fire once per
            # row written: 5,000 rows inserted (for a new user each time),
            # 4,000 updated, 1,000 deleted (leaving tombstones).
            echo "INSERT INTO clips (user_id, title, notes) SELECT 'x$b', 't' || g, g % 5 FROM generate_series(1, 5000) g;"
            echo "UPDATE clips SET status = 's' WHERE user_id = 'x$((b - 1))' AND notes <> '0';"
            echo "DELETE FROM clips WHERE user_id = 'x$((b - 2))' AND notes = '0';" ;;
    esac
}

# sample FUNCTION I: one line "M|function|I|context bytes|RssAnon kB", and
# one line per memory context name with its bytes (shown if it grew).
sample() {
    echo "SELECT 'M', '$1', $2, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),
          substring(pg_read_file('/proc/self/status') from 'RssAnon:\s+(\d+) kB');"
    echo "SELECT 'C', '$1', $2, name, sum(total_bytes) FROM pg_backend_memory_contexts GROUP BY name;"
}

# The backend's CPU time so far, in clock ticks (utime + stime).
cpu="(SELECT split_part(s, ' ', 12)::bigint + split_part(s, ' ', 13)::bigint
      FROM substring(pg_read_file('/proc/self/stat') from '\\) (.*)\$') s)"

# script SESSION: the SQL of one session.
script() {
    local f b
    echo "\\set ON_ERROR_STOP 1"
    echo "SET jit = off;"
    echo "SET gin_pending_list_limit = 64;"
    # Every function of the session once first, so that what the first one
    # measures is not what the later ones fill in.
    for f in $1; do stmt "$f" 0; done
    for f in $1; do
        echo "SELECT 'T', '$f', 'start', extract(epoch FROM clock_timestamp()), $cpu;"
        for b in 1 2; do stmt "$f" "$b"; done
        sample "$f" 0
        for b in $(seq 3 $((batches + 2))); do
            stmt "$f" "$b"
            [ $(((b - 2) % (batches / 10))) -eq 0 ] && sample "$f" $(((b - 2) / (batches / 10)))
        done
        echo "SELECT 'T', '$f', 'end', extract(epoch FROM clock_timestamp()), $cpu;"
    done
}

out=$DD_ROOT/tmp_check/memory_growth
start=$(date +%s)
pids=()
for i in "${!sessions[@]}"; do
    script "${sessions[$i]}" >"$out.$i.sql"
    psql -X -q -t -A -d "$db" -f "$out.$i.sql" >"$out.$i.out" 2>"$out.$i.err" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$out".[0-9].out >"$out.out"
[ $rc = 0 ] && ! grep -q . "$out".[0-9].err
ok $? "two sessions ran ${#functions[@]} functions x $calls calls"
diag "$(( $(date +%s) - start )) s for ${#functions[@]} x $calls calls (and the warm-up)"
cat "$out".[0-9].err | head -20 | sed 's/^/#   /'

for f in "${functions[@]}"; do
    traj=$(awk -F'|' -v f="$f" '$1 == "M" && $2 == f { printf "%s%s", sep, $4; sep = " " }' "$out.out")
    rss=$(awk -F'|' -v f="$f" '$1 == "M" && $2 == f { printf "%s%s", sep, $5; sep = " " }' "$out.out")
    secs=$(awk -F'|' -v f="$f" -v hz="$(getconf CLK_TCK)" '$1 == "T" && $2 == f { t[$3] = $4; u[$3] = $5 }
        END { printf "%.1f s, %.1f s of CPU", t["end"] - t["start"], (u["end"] - u["start"]) / hz }' "$out.out")
    read -r -a c <<<"$traj"
    read -r -a k <<<"$rss"
    n=${#c[@]}
    if [ "$n" -ne 11 ]; then
        ok 1 "$f: $calls calls sampled"
        ok 1 "$f: $calls calls sampled"
        continue
    fi
    grew=$((c[10] - c[0]))
    rss_grew=$((k[10] - k[0]))
    diag "$f: memory contexts ${c[0]} -> ${c[10]} bytes, RssAnon ${k[0]} -> ${k[10]} kB ($secs)"
    [ "$grew" -le "$bound" ]
    ok $? "$f: $calls calls, memory contexts grew $grew bytes (at most $bound)"
    if [ "$grew" -gt "$bound" ]; then
        diag "  every 10%: ${c[*]}"
        awk -F'|' -v f="$f" '$1 == "C" && $2 == f { v[$3, $4] = $5; n[$4] = 1 }
            END { for (k in n) if (v[10, k] != v[0, k])
                  printf "#   %s: %+d bytes\n", k, v[10, k] - v[0, k] }' "$out.out" | head -10
    fi
    [ "$rss_grew" -le "$rss_bound_kb" ]
    ok $? "$f: $calls calls, private resident memory grew $rss_grew kB (at most $rss_bound_kb)"
    [ "$rss_grew" -gt "$rss_bound_kb" ] && diag "  every 10%: ${k[*]} kB"
done

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
ok $? "database dropped"
done_testing
