#!/usr/bin/env bash
# test/t/016_migrations_worker.sh -- dd_migration_start's background worker.
#
#   * It runs the batches as the role that started it: a login role, and a
#     role reached with SET ROLE from a superuser session (the rows record
#     current_user); never as a superuser reached through SECURITY DEFINER.
#   * A role whose UPDATE right is gone gets a failed migration with the
#     error, and not one row changed.
#   * It survives the client that started it disconnecting, and shows what
#     it does in pg_stat_activity.
#   * Killed mid-run three ways -- pg_terminate_backend, kill -9 (the server
#     restarts every backend), a server restart -- it leaves the migration
#     paused with no batch half-applied, and starting it again completes
#     it exactly: every row updated once, processed = rows.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 24

db=dd_migration_worker
fresh_db "$db"
rows=100000

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# wait_for SQL: poll (up to 60 s) until SQL returns t.
wait_for() {
    local i
    for i in $(seq 1 600); do
        [ "$(q "$db" "$1" 2>/dev/null)" = "t" ] && return 0
        sleep 0.1
    done
    return 1
}

# wait_server: until the server accepts connections again (after a crash).
wait_server() {
    local i
    for i in $(seq 1 600); do
        psql -X -q -d postgres -c 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

q "$db" "
CREATE EXTENSION dd_clipper;
CREATE ROLE dd_deployer LOGIN;
SELECT dd_grant_migration_role('dd_deployer');
CREATE TABLE docs (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, who text);
INSERT INTO docs (id) SELECT g FROM generate_series(1, 1000) g;
GRANT SELECT, UPDATE ON docs TO dd_deployer;
-- Every update of a row counts: n = 1 means exactly once.
CREATE TABLE big (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO big (id) SELECT g FROM generate_series(1, $rows) g;
ALTER TABLE big OWNER TO dd_deployer;
" >/dev/null
ok $? "a database with a deployer role and two tables"

# --- privileges ------------------------------------------------------------

q "$db" "SET ROLE dd_deployer; SELECT dd_migration_create('who', 'docs', 'n = 1, who = current_user', 'n = 0', 100)" >/dev/null
PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('who') > 0" >/dev/null
ok $? "a login role starts its migration in a worker"
wait_for "SELECT status = 'completed' FROM dd_migration_progress WHERE name = 'who'"
ok $? "the worker completes it"
is "$(q "$db" "SELECT string_agg(DISTINCT who, ',') || ' ' || count(*) FROM docs WHERE n = 1")" \
   "dd_deployer 1000" "every row was updated as the login role, not the superuser"

q "$db" "UPDATE docs SET n = 0, who = NULL" >/dev/null
is "$(q "$db" "SET ROLE dd_deployer; SELECT dd_migration_start('who') > 0")" "t" \
   "a superuser session that SET ROLE dd_deployer starts it"
wait_for "SELECT status = 'completed' FROM dd_migration_progress WHERE name = 'who'"
ok $? "the worker completes it again (a completed migration re-scans)"
is "$(q "$db" "SELECT string_agg(DISTINCT who, ',') FROM docs")" "dd_deployer" \
   "the batches ran as the role set, not as the session's superuser"

# The worker takes dd_clipper.migration_batch_pause from the session that
# started it: 1,000 rows in batches of 100 wait at least 9 times 200 ms.
q "$db" "UPDATE docs SET n = 0, who = NULL" >/dev/null
PGUSER=dd_deployer q "$db" "SET dd_clipper.migration_batch_pause = '200ms';
                            SELECT dd_migration_start('who') > 0" >/dev/null
wait_for "SELECT status = 'completed' FROM dd_migration_progress WHERE name = 'who'"
is "$(q "$db" "SELECT completed_at - started_at >= interval '1800ms' FROM dd_migration_progress WHERE name = 'who'")" \
   "t" "the worker pauses between batches as its starting session asked"

q "$db" "UPDATE docs SET n = 0, who = NULL; REVOKE UPDATE ON docs FROM dd_deployer" >/dev/null
PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('who') > 0" >/dev/null
wait_for "SELECT status = 'failed' FROM dd_migration_progress WHERE name = 'who'"
ok $? "without UPDATE on the table, the worker's migration fails"
is "$(q "$db" "SELECT error FROM dd_migration_progress WHERE name = 'who'")" \
   "42501: permission denied for table docs" "with the error, SQLSTATE first"
is "$(q "$db" "SELECT count(*) FROM docs WHERE n <> 0 OR who IS NOT NULL")" "0" \
   "and not one row changed"

# A superuser's rights reached through SECURITY DEFINER are refused.
q "$db" "
CREATE FUNCTION start_as_owner(name text) RETURNS int SECURITY DEFINER
    LANGUAGE sql AS \$\$SELECT dd_migration_start(name)\$\$;
GRANT EXECUTE ON FUNCTION start_as_owner(text) TO dd_deployer;" >/dev/null
out=$(PGUSER=dd_deployer psql -X -q -t -A -d "$db" -c "SELECT start_as_owner('who')" 2>&1)
case $out in
*"refuses to run a migration with superuser rights"*) ok 0 "superuser rights through SECURITY DEFINER are refused" ;;
*) ok 1 "superuser rights through SECURITY DEFINER are refused"; diag "$out" ;;
esac

# --- the worker runs on without its client, and says what it does ------------

q "$db" "SET ROLE dd_deployer; SELECT dd_migration_create('bump', 'big', 'n = n + 1', 'n = 0', 100)" >/dev/null
pid=$(PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('bump')")
[ -n "$pid" ]
ok $? "started, and the client that started it disconnected (worker $pid)"
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND backend_type = 'dd_clipper migration'
          AND usename = 'dd_deployer' AND query LIKE 'dd_clipper migration \"bump\": batch %'"
ok $? "pg_stat_activity shows the worker, its login role and its batch"

# exact DESCRIPTION: the migration's counts agree with the rows.
exact() {
    is "$(q "$db" "SELECT format('%s %s %s', count(*) FILTER (WHERE n = 1), max(n),
                     (SELECT processed FROM migrations WHERE name = 'bump')) FROM big")" \
       "$1" "$2"
}

# 1. pg_terminate_backend mid-run.
wait_for "SELECT processed >= 2000 FROM migrations WHERE name = 'bump'"
q "$db" "SELECT pg_terminate_backend($pid)" >/dev/null
wait_for "SELECT status = 'paused' FROM dd_migration_progress WHERE name = 'bump'"
ok $? "terminated mid-run: the migration shows as paused"
done_rows=$(q "$db" "SELECT processed FROM migrations WHERE name = 'bump'")
exact "$done_rows 1 $done_rows" "no batch half-applied: updated rows = processed ($done_rows), none twice"

# 2. kill -9 of the worker: the postmaster restarts every backend.
pid=$(PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('bump')")
wait_for "SELECT processed >= $done_rows + 2000 FROM migrations WHERE name = 'bump'"
kill -9 "$pid"
sleep 1
wait_server
ok $? "kill -9 of the worker: the server restarts"
wait_for "SELECT status = 'paused' FROM dd_migration_progress WHERE name = 'bump'"
ok $? "after the crash the migration shows as paused"
done_rows=$(q "$db" "SELECT processed FROM migrations WHERE name = 'bump'")
exact "$done_rows 1 $done_rows" "after the crash: updated rows = processed ($done_rows), none twice"

# 3. a server restart mid-run.
PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('bump')" >/dev/null
wait_for "SELECT processed >= $done_rows + 2000 FROM migrations WHERE name = 'bump'"
# (-l again: pg_ctl restart does not remember the log file, and later
# tests read the server log)
as_pg "$DD_BINDIR/pg_ctl" -D "$DD_DATADIR" -l "$DD_DATADIR/server.log" -m fast -w restart >/dev/null
wait_server
ok $? "a server restart mid-run"
wait_for "SELECT status = 'paused' FROM dd_migration_progress WHERE name = 'bump'"
ok $? "after the restart the migration shows as paused"
done_rows=$(q "$db" "SELECT processed FROM migrations WHERE name = 'bump'")
exact "$done_rows 1 $done_rows" "after the restart: updated rows = processed ($done_rows), none twice"

# Resumed, it completes exactly.
PGUSER=dd_deployer q "$db" "SELECT dd_migration_start('bump')" >/dev/null
wait_for "SELECT status = 'completed' FROM dd_migration_progress WHERE name = 'bump'"
ok $? "started again, it completes"
exact "$rows 1 $rows" "every one of the $rows rows updated exactly once, processed = $rows"

psql -X -q -d postgres -c "DROP DATABASE $db" -c "DROP ROLE dd_deployer" >/dev/null
done_testing
