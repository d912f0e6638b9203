#!/usr/bin/env bash
# test/t/074_dump_under_load.sh -- pg_dump while the ledger is written.
# (test/t/010_dump_restore.sh checks that a dump of a quiet database keeps
# every row and sequence; this one, that a dump taken under load is a
# consistent ledger and that idempotency survives the restore.)
#
# 16 clients charge (request ids repeat, balances run low), grant (with
# repeated idempotency keys), refund and track events for 8 seconds.  While
# they run, pg_dump -Fc, and pg_dump -Fd -j 2 (two connections sharing one
# snapshot), each restored into a fresh database.  In each restored
# database:
#   - dd_credit_audit() is empty: the dump holds every balance together with
#     exactly the ledger rows it reflects;
#   - a charge with a request id the dump holds is a replay (replayed =
#     true, the original usage_id and balance) and debits nothing; a grant
#     with an idempotency key it holds grants nothing; a refund it holds is
#     refused as done (55000); an event id it holds is dropped;
#   - new request ids charge, with fresh usage ids;
#   - a clips cursor of the source is refused (the cursor key is not
#     dumped), a new one works.
# The load must have written before, during and after the dumps.
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 23

src=dd_dump_load
dumps=$DD_ROOT/tmp_check/dump_load
here=$DD_ROOT/test/t/dump_load
fresh_db "$src"
rm -rf "$dumps.dir" "$dumps.dump"

q "$src" "
CREATE EXTENSION dd_clipper;
SELECT count(dd_grant_credit('u' || i, 50, 'seed')) FROM generate_series(1, 1000) i;
CREATE FUNCTION try_refund(u text, req text) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM dd_refund_credit(u, req);
    RETURN true;
EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state THEN
    RETURN false;
END \$\$;
INSERT INTO clips (user_id, title) SELECT 'u1', 'clip ' || i FROM generate_series(1, 10) i;
" >/dev/null
ok $? "1,000 users with 50 credits each, 10 clips"
cursor=$(q "$src" "SELECT dd_clips_page('u1', 3) ->> 'continueCursor'")
usage() { q "$1" "SELECT count(*) FROM api_usage_log"; }

pgbench_run "$dumps.pgbench.log" -n -c 16 -j 2 -T 8 -d "$src" \
    -f "$here/charge.sql@60" -f "$here/grant.sql@10" -f "$here/refund.sql@10" \
    -f "$here/event.sql@20" &
load=$!
sleep 2
n_before=$(usage "$src")
"$DD_BINDIR/pg_dump" -Fc -d "$src" -f "$dumps.dump" 2>"$dumps.dump.log"
ok $? "pg_dump -Fc under load"
n_between=$(usage "$src")
"$DD_BINDIR/pg_dump" -Fd -j 2 -d "$src" -f "$dumps.dir" 2>"$dumps.dir.log"
ok $? "pg_dump -Fd -j 2 under load"
n_after=$(usage "$src")
wait $load
pgbench_ok "$dumps.pgbench.log" "the load: 16 clients, 8 s, no failed transaction"
diag "usage rows: $n_before when the first dump began, $n_between between the dumps," \
     "$n_after after them, $(usage "$src") at the end"
[ "$n_before" -gt 0 ] && [ "$n_between" -gt "$n_before" ] && [ "$n_after" -gt "$n_between" ] &&
    [ "$(usage "$src")" -gt "$n_after" ]
ok $? "charges committed before, during and after the dumps"

# check DB: the restored database DB.
check() {
    local db=$1 what=$2 replays grants refunds events
    is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" \
       "$what: dd_credit_audit() is empty"
    # Replays: 200 charged request ids the dump holds, charged again.
    q "$db" "CREATE TABLE sample AS
             SELECT user_id, request_id, id, balance_after FROM api_usage_log
             WHERE credits > 0 ORDER BY random() LIMIT 200;
             CREATE TABLE total AS SELECT sum(balance) AS b FROM api_credits" >/dev/null
    replays=$(q "$db" "SELECT count(*) FILTER (WHERE c.ok AND c.replayed AND c.usage_id = s.id
                                                AND c.balance = s.balance_after) || '/' || count(*)
                       FROM sample s, LATERAL dd_charge_credit(s.user_id, 3, s.request_id) c")
    is "$replays" "200/200" "$what: 200 charged request ids sent again are replays, with their usage row and balance"
    grants=$(q "$db" "SELECT count(*) FROM credit_grants g, LATERAL dd_grant_credit(g.user_id, 1000, 'again', g.idempotency_key)
                      WHERE g.idempotency_key IS NOT NULL")
    refunds=$(psql -X -q -t -A -d "$db" -c "DO \$\$DECLARE r record; n int := 0; BEGIN
            FOR r IN SELECT user_id, request_id FROM credit_refunds LOOP
                BEGIN PERFORM dd_refund_credit(r.user_id, r.request_id);
                EXCEPTION WHEN object_not_in_prerequisite_state THEN n := n + 1; END;
            END LOOP;
            RAISE NOTICE 'refused %', n; END\$\$" 2>&1 | sed -n 's/.*refused \([0-9]*\)/\1/p')
    events=$(q "$db" "SELECT count(*) FILTER (WHERE x.id IS NULL) || '/' || count(*)
                      FROM (SELECT user_id, event_id FROM usage_events LIMIT 200) e,
                           LATERAL dd_track_event(e.user_id, 'opened', '{}', e.event_id) x(id)")
    is "$(q "$db" "SELECT b FROM total")" "$(q "$db" "SELECT sum(balance) FROM api_credits")" \
       "$what: the $grants grants with a stored idempotency key sent again granted nothing, and the replays debited nothing"
    is "$refunds" "$(q "$db" "SELECT count(*) FROM credit_refunds")" \
       "$what: every refund the dump holds, sent again, is refused as done (55000)"
    is "$events" "200/200" "$what: 200 stored event ids sent again are dropped"
    is "$(q "$db" "SELECT ok AND NOT replayed AND usage_id > (SELECT max(id) FROM sample)
                   FROM dd_charge_credit('u1', 1, 'after-restore')")" "t" \
       "$what: a new request id charges, with a fresh usage id"
    is "$(psql -X -q -t -A -d "$db" -v VERBOSITY=sqlstate \
              -c "SELECT dd_clips_page('u1', 3, cursor => '$cursor')" 2>&1 | tr -d '\n'
          )$(q "$db" "SELECT (dd_clips_page('u1', 3) -> 'page' -> 0) IS NOT NULL")" "ERROR:  22P02t" \
       "$what: a cursor of the source is refused (22P02), a new page works"
    is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" \
       "$what: dd_credit_audit() is still empty"
}

fresh_db "${src}_c"
"$DD_BINDIR/pg_restore" --exit-on-error -d "${src}_c" "$dumps.dump"
ok $? "pg_restore of the -Fc dump into a fresh database"
check "${src}_c" "-Fc"
fresh_db "${src}_d"
"$DD_BINDIR/pg_restore" --exit-on-error -j 2 -d "${src}_d" "$dumps.dir"
ok $? "pg_restore -j 2 of the -Fd dump into a fresh database"
check "${src}_d" "-Fd -j 2"

psql -X -q -d postgres -c "DROP DATABASE $src" -c "DROP DATABASE ${src}_c" \
    -c "DROP DATABASE ${src}_d" >/dev/null
done_testing
