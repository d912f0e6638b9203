#!/usr/bin/env bash
# test/t/032_api_keys_revoke_race.sh -- revoke racing verify, under load.
# For 5 seconds, 8 clients verify the current keys of 4 slots while 2
# clients revoke them, each revoke holding the key's row 5 ms before it
# commits, after which the slot gets a new key.  The touch interval is 0,
# so a verification usually writes last_used_at and then waits on the row
# of a revoke in flight.  Every call is timed (clock_timestamp before and
# after); just before committing, a revoke records which backends are
# blocked by it (pg_blocking_pids), and after the commit, when it was over.
#
# Asserted, exactly:
#   - every verification that was waiting on a revoke's row when it
#     committed answered REVOKED (and there were some: printed);
#   - no verification that started after a revoke of its key had
#     committed answered VALID (and there were some: printed).
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 8

db=dd_keys_revoke
here=$DD_ROOT/test/t/api_keys_revoke
log=$DD_ROOT/tmp_check/api_keys_revoke
fresh_db "$db"

q "$db" "
CREATE EXTENSION dd_clipper;
ALTER DATABASE $db SET dd_clipper.key_touch_interval = 0;
CREATE TABLE slots (slot int PRIMARY KEY, key_id bigint, api_key text);
INSERT INTO slots SELECT s, c.key_id, c.api_key
FROM generate_series(1, 4) s, LATERAL dd_create_api_key('u' || s) c;
CREATE UNLOGGED TABLE verifies (pid int, key_id bigint, t0 timestamptz, t1 timestamptz,
                                valid boolean, code text);
CREATE UNLOGGED TABLE revokes (id serial PRIMARY KEY, key_id bigint, revoked boolean,
                               blocked int[], t_commit timestamptz, t_after timestamptz);
CREATE FUNCTION verify(s int) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE k slots; t0 timestamptz; r dd_key_check;
BEGIN
    SELECT * INTO k FROM slots WHERE slot = s;
    t0 := clock_timestamp();
    r := dd_verify_api_key(k.api_key);
    INSERT INTO verifies VALUES (pg_backend_pid(), k.key_id, t0, clock_timestamp(), r.valid, r.code);
    RETURN r.code;
END \$\$;
CREATE FUNCTION slot_revoke(s int) RETURNS int LANGUAGE sql AS \$\$
    INSERT INTO revokes (key_id, revoked)
    SELECT key_id, dd_revoke_api_key(key_id) FROM slots WHERE slot = s
    RETURNING id
\$\$;
-- Who this transaction blocks, then the time: both just before COMMIT.
CREATE FUNCTION revoke_committing(rid int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE b int[];
BEGIN
    SELECT coalesce(array_agg(pid), '{}') INTO b FROM pg_stat_activity
    WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid));
    UPDATE revokes SET blocked = b, t_commit = clock_timestamp() WHERE id = rid;
END \$\$;
CREATE FUNCTION slot_renew(s int) RETURNS void LANGUAGE sql AS \$\$
    UPDATE slots SET (key_id, api_key) = (SELECT key_id, api_key FROM dd_create_api_key('u' || s))
    WHERE slot = s
\$\$;
" >/dev/null
ok $? "4 key slots and the timing functions"

pgbench_run "$log.revoke.log" -n -c 2 -j 1 -T 5 -f "$here/revoke.sql" "$db" &
pgbench_run "$log.verify.log" -n -c 8 -j 2 -T 5 -f "$here/verify.sql" "$db"
wait
pgbench_ok "$log.verify.log" "verifiers: no error, no failed transaction, no deadlock"
pgbench_ok "$log.revoke.log" "revokers: no error, no failed transaction, no deadlock"
diag "verifications: $(pgbench_processed "$log.verify.log"), revokes: $(pgbench_processed "$log.revoke.log")"

# Verifications blocked by a revoke when it was about to commit (so they
# started before the commit and finished after it).
waited=$(q "$db" "
    SELECT count(*) || ' ' || count(*) FILTER (WHERE v.valid)
    FROM revokes r JOIN verifies v ON v.key_id = r.key_id AND v.pid = ANY (r.blocked)
         AND v.t0 < r.t_commit AND v.t1 > r.t_commit
    WHERE r.revoked")
diag "verifications waiting on a revoke's row when it committed: ${waited% *}"
[ "${waited% *}" -gt 0 ] 2>/dev/null
ok $? "verifications were waiting on a revoke's row when it committed (${waited% *})"
is "${waited#* }" "0" "none of them answered VALID"

# Verifications that started after a revoke of their key had committed.
after=$(q "$db" "
    SELECT count(*) || ' ' || count(*) FILTER (WHERE v.valid)
    FROM revokes r JOIN verifies v ON v.key_id = r.key_id AND v.t0 > r.t_after
    WHERE r.revoked")
diag "verifications started after their key's revoke had committed: ${after% *}"
[ "${after% *}" -gt 0 ] 2>/dev/null
ok $? "verifications started after their key's revoke had committed (${after% *})"
is "${after#* }" "0" "none of them answered VALID"

inflight=$(q "$db" "
    SELECT count(*) FROM revokes r JOIN verifies v ON v.key_id = r.key_id
    WHERE r.revoked AND v.t0 < r.t_commit AND v.t1 > r.t_after")
diag "verifications in flight across a revoke's commit: $inflight"
is "$(q "$db" "SELECT count(*) FILTER (WHERE code = 'VALID') > 0
                  AND count(*) FILTER (WHERE code = 'REVOKED') > 0
                  AND count(*) FILTER (WHERE code NOT IN ('VALID', 'REVOKED')) = 0
               FROM verifies")" "t" \
   "verifications answered VALID and REVOKED, nothing else"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
