#!/usr/bin/env bash
# test/t/050_events_race.sh -- many clients sending overlapping batches of
# events, each batch in its own random order, store every (user_id,
# event_id) exactly once and never deadlock; a final pass of every id
# stores exactly the ones still missing.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 6

db=dd_events_race
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
ok $? "extension created"

script=$DD_ROOT/tmp_check/050_events_race.pgbench
# Batch b of 100 ids out of 1,000 for one of 3 users; batches overlap
# (ids b*100 + i*37 mod 1000) and list their events in random order.
# Every fifth transaction is a single dd_track_event on a shared id.
cat >"$script" <<'SQL'
\set b random(0, 9)
\set u random(1, 3)
\set one random(1, 5)
SELECT CASE WHEN :one = 1
       THEN (SELECT count(dd_track_event('u' || :u, 'e', '{}', 'id-' || (:b * 37 % 1000))))
       ELSE dd_track_events((SELECT jsonb_agg(jsonb_build_object(
                'user_id', 'u' || :u, 'event', 'e',
                'event_id', 'id-' || ((:b * 100 + i * 37) % 1000)) ORDER BY random())
            FROM generate_series(1, 100) i))
       END;
SQL

"$DD_BINDIR/pgbench" -n -c 8 -j 2 -t 8 -f "$script" "$db" >"$DD_ROOT/tmp_check/050_events_race.log" 2>&1
rc=$?
ok $rc "8 clients x 8 overlapping batches: no client failed (no deadlock, no duplicate error)"
[ $rc -eq 0 ] || sed 's/^/# /' "$DD_ROOT/tmp_check/050_events_race.log" | tail -20

is "$(q "$db" "SELECT count(*) - count(DISTINCT (user_id, event_id)) FROM usage_events")" "0" \
   "every (user_id, event_id) is stored once"

before=$(q "$db" "SELECT count(*) FROM usage_events")
stored=$(q "$db" "SELECT sum(dd_track_events((SELECT jsonb_agg(jsonb_build_object(
                      'user_id', 'u' || u, 'event', 'e', 'event_id', 'id-' || i))
                  FROM generate_series(0, 999) i)))
              FROM generate_series(1, 3) u")
is "$stored" "$((3000 - before))" "a final pass stores exactly the ids still missing ($((3000 - before)))"
is "$(q "$db" "SELECT count(*) FROM usage_events")" "3000" "3 users x 1,000 ids, each once"
is "$(q "$db" "SELECT dd_track_events((SELECT jsonb_agg(jsonb_build_object(
                  'user_id', 'u1', 'event', 'e', 'event_id', 'id-' || i))
              FROM generate_series(0, 999) i))")" "0" "a repeated batch stores nothing"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
