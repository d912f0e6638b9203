#!/usr/bin/env bash
# test/t/050_events_race.sh -- many clients sending overlapping batches of
# events, each batch in its own random order, store every (user_id,
# event_id) exactly once and never deadlock (batches insert in (user_id,
# event_id) order, whatever the order they were sent in); a final pass of
# every id stores exactly the ones still missing.  The run logs its lock
# waits (log_lock_waits, deadlock_timeout = 1ms, in this database only) and
# counts the batches that waited for another transaction's event id: the
# race it proves must have happened.
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 7

db=dd_events_race
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper;
ALTER DATABASE $db SET log_lock_waits = on;
ALTER DATABASE $db SET deadlock_timeout = '1ms';" >/dev/null
ok $? "extension created"

work=$DD_ROOT/tmp_check/050_events_race
mkdir -p "$work"
# Batch b of 300 ids out of 1,000 for one of 3 users; batches overlap
# (ids b*100 + i*37 mod 1000) and list their events in random order.
cat >"$work/batch.sql" <<'SQL'
\set b random(0, 9)
\set u random(1, 3)
SELECT dd_track_events((SELECT jsonb_agg(jsonb_build_object(
           'user_id', 'u' || :u, 'event', 'e',
           'event_id', 'id-' || ((:b * 100 + i * 37) % 1000)) ORDER BY random())
       FROM generate_series(1, 300) i));
SQL
# One transaction in five is a single dd_track_event on a shared id.
cat >"$work/one.sql" <<'SQL'
\set b random(0, 9)
\set u random(1, 3)
SELECT dd_track_event('u' || :u, 'e', '{}', 'id-' || (:b * 37 % 1000));
SQL

pgbench_run "$work/pgbench.log" -n -c 8 -j 2 -t 30 \
    -f "$work/batch.sql@4" -f "$work/one.sql@1" "$db"
pgbench_ok "$work/pgbench.log" \
    "8 clients x 30 overlapping batches: no client failed (no deadlock, no duplicate error)"

# Lock waits logged during the run whose waiting statement is a batch.
waits=$(server_log_since "$work/pgbench.log" | awk '
    /still waiting for/ { w = 1; next }
    /STATEMENT:/ { if (w && /dd_track_events\(/) n++; w = 0 }
    END { print n + 0 }')
diag "batches that waited for another transaction's event id: $waits"
[ "${waits:-0}" -gt 0 ]
ok $? "batches raced: some waited for another transaction's event id ($waits)"

is "$(q "$db" "SELECT count(*) - count(DISTINCT (user_id, event_id)) FROM usage_events")" "0" \
   "every (user_id, event_id) is stored once"

before=$(q "$db" "SELECT count(*) FROM usage_events")
stored=$(q "$db" "SELECT sum(dd_track_events((SELECT jsonb_agg(jsonb_build_object(
                      'user_id', 'u' || u, 'event', 'e', 'event_id', 'id-' || i))
                  FROM generate_series(0, 999) i)))
              FROM generate_series(1, 3) u")
is "$stored" "$((3000 - ${before:-0}))" "a final pass stores exactly the ids still missing ($((3000 - ${before:-0})))"
is "$(q "$db" "SELECT count(*) FROM usage_events")" "3000" "3 users x 1,000 ids, each once"
is "$(q "$db" "SELECT dd_track_events((SELECT jsonb_agg(jsonb_build_object(
                  'user_id', 'u1', 'event', 'e', 'event_id', 'id-' || i))
              FROM generate_series(0, 999) i))")" "0" "a repeated batch stores nothing"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
