#!/usr/bin/env bash
# test/citus/run.sh -- dd_clipper on a Citus cluster: a coordinator and two
# workers on loopback, every promise checked through the coordinator and
# directly on a worker, from an upgrade of a 1.0 install to DROP EXTENSION.
#
# Needs a Citus already installed in the server under test (Citus is not a
# Debian package); without one it prints a TAP skip and exits 0.  Run on its
# own (bash test/citus/run.sh) it builds this checkout into a private copy
# of the server, as scripts/test.sh does; scripts/test.sh runs it too.
# DD_CITUS_PORT (default DD_PORT + 3, or 54332) is the coordinator's port;
# the workers take the next two.
set -u
source "$(dirname "$0")/../../scripts/lib.sh"
source "$DD_ROOT/test/citus/lib.sh"
source "$DD_ROOT/test/lib/tap.bash"
cd "$DD_ROOT"

bindir=$(citus_bindir) || { echo "1..0 # SKIP the build failed"; exit 1; }
if ! citus_available "$bindir"; then
    echo "1..0 # SKIP Citus is not installed in $("$bindir/pg_config" --pkglibdir) (see README, Scale out)"
    exit 0
fi
export PATH=$bindir:$PATH
port=${DD_CITUS_PORT:-$(( ${DD_PORT:-54329} + 3 ))}
w1=$((port + 1))
w2=$((port + 2))
work=$DD_ROOT/tmp_check/citus
mkdir -p "$work"
# DD_CITUS_KEEP=1 leaves the nodes running, to look at them afterwards.
[ -n "${DD_CITUS_KEEP:-}" ] || trap citus_stop EXIT
citus_start "$bindir" "$port" || { echo "1..0 # SKIP the Citus cluster did not start"; citus_stop; exit 1; }

plan 31

# c [-p PORT] SQL...: one value from a node (the coordinator by default).
c() { psql -X -At -v ON_ERROR_STOP=1 -d postgres "$@" 2>>"$work/stderr.log"; }
# sqlstate PORT SQL: the SQLSTATE the statement fails with, or "ok".
sqlstate() {
    local out
    out=$(psql -X -At -v VERBOSITY=sqlstate -d postgres -p "$1" -c "$2" 2>&1 >/dev/null)
    if [ -z "$out" ]; then echo ok; else printf '%s\n' "$out" | sed -n 's/^ERROR: *\([0-9A-Z]\{5\}\).*/\1/p' | head -1; fi
}
latest=$(make -s print-version)

# --- 1. Upgrade: a 1.0 install distributed by hand, with data ----------------
c -q >"$work/upgrade.log" <<'SQL'
CREATE EXTENSION dd_clipper VERSION '1.0';
SELECT dd_grant_credit('old', 50);
SELECT ok FROM dd_charge_credit('old', 5, 'old-req');
INSERT INTO clips (user_id, title) VALUES ('old', 'kept'), ('old', 'deleted');
DELETE FROM clips WHERE user_id = 'old' AND title = 'deleted';
SELECT dd_track_event('old', 'signup', '{}', 'old-event');
BEGIN;
SET LOCAL citus.enable_unsafe_triggers = on;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL session_replication_role = replica;
SELECT create_reference_table('api_keys');
SELECT create_distributed_table(t, 'user_id',
         colocate_with => CASE WHEN t = 'api_credits' THEN 'default' ELSE 'api_credits' END)
  FROM unnest(ARRAY['api_credits', 'credit_grants', 'credit_refunds', 'api_usage_rollup',
                    'api_usage_log', 'clips', 'clip_tombstones', 'usage_events']) t;
COMMIT;
SQL
old_key=$(c -c "SELECT api_key FROM dd_create_api_key('old', 'from 1.0')")
c -c "ALTER EXTENSION dd_clipper UPDATE" >>"$work/upgrade.log"
is "$(c -c "SELECT string_agg(result, ',') FROM run_command_on_all_nodes(\$\$SELECT extversion FROM pg_extension WHERE extname = 'dd_clipper'\$\$)")" \
   "$latest,$latest,$latest" "ALTER EXTENSION UPDATE on the coordinator updates every node to $latest"
is "$(c -c 'SELECT dd_distribute()' -c 'SELECT dd_distribute()' | grep -vc '^NOTICE')" 2 \
   "dd_distribute() runs, and again (idempotent)"
is "$(c -c "SELECT string_agg(partmethod::text || count, ',' ORDER BY partmethod) FROM (SELECT partmethod, count(*) FROM pg_dist_partition p JOIN pg_depend d ON d.objid = p.logicalrelid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper' GROUP BY partmethod) s")" \
   "h8,n3" "8 per-user tables distributed by hash, 3 reference tables"
is "$(c -c "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE partmethod = 'h'")" 1 \
   "the per-user tables are colocated"
is "$(c -c "SELECT dd_credit_balance('old')")|$(c -c "SELECT usage_id, replayed FROM dd_charge_credit('old', 5, 'old-req')")" \
   "45|1|t" "after the upgrade: the 1.0 balance, and its charge replays"
is "$(c -p $w1 -c "SELECT code FROM dd_verify_api_key('$old_key')")" VALID \
   "a key made under 1.0 verifies on a worker"
is "$(c -c "SELECT string_agg(title, ',') FROM clips WHERE user_id = 'old'")|$(c -c "SELECT count(*) FROM clip_tombstones WHERE user_id = 'old'")|$(c -c "SELECT count(*) FROM usage_events WHERE user_id = 'old'")" \
   "kept|1|1" "clips, tombstones and events kept"

# --- 2. One hot user, 16 clients, coordinator and worker ---------------------
c -c "SELECT dd_grant_credit('hot', 1000)" >/dev/null
echo "SELECT ok FROM dd_charge_credit('hot', 1);" >"$work/charge.sql"
pgbench -n -c 8 -j 2 -t 100 -f "$work/charge.sql" -h 127.0.0.1 -p "$port" postgres >"$work/hot_c.log" 2>&1 &
pgbench -n -c 8 -j 2 -t 100 -f "$work/charge.sql" -h 127.0.0.1 -p "$w1" postgres >"$work/hot_w.log" 2>&1
wait
failed=$(cat "$work/hot_c.log" "$work/hot_w.log" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
processed=$(cat "$work/hot_c.log" "$work/hot_w.log" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
is "$processed|$failed" "1600|0" "16 clients (8 through the coordinator, 8 on a worker) ran 1,600 charges, none failed"
is "$(c -c "SELECT dd_credit_balance('hot')")|$(c -c "SELECT count(*) FROM api_usage_log WHERE user_id = 'hot'")" \
   "0|1000" "1,000 credits: balance 0 and exactly 1,000 usage rows"
hot_group=$(c -c "SELECT p.groupid FROM pg_dist_placement p WHERE p.shardid = get_shard_id_for_distribution_column('api_credits', 'hot')")
is "$(c -c "SELECT count(*) FROM api_usage_log WHERE user_id = 'hot' AND id >> 48 = $hot_group")" 1000 \
   "every charge ran on the node holding the user's shard (its ids are that node's)"

# --- 3. Replays and refunds ----------------------------------------------------
c -c "SELECT dd_grant_credit('payer', 100)" >/dev/null
first=$(c -c "SELECT usage_id FROM dd_charge_credit('payer', 10, 'r1')")
is "$(c -p $w2 -c "SELECT usage_id, replayed FROM dd_charge_credit('payer', 10, 'r1')")" "$first|t" \
   "a charge replayed on a worker returns the original usage id"
is "$(c -p $w1 -c "SELECT dd_refund_credit('payer', 'r1')")" 100 "a refund on a worker gives the credits back"
is "$(sqlstate "$port" "SELECT dd_refund_credit('payer', 'r1')")" 55000 "a second refund through the coordinator is refused"
is "$(c -c 'SELECT count(*) FROM dd_credit_audit()')" 0 "dd_credit_audit() is empty"

# --- 4. Keys -------------------------------------------------------------------
c -c "SELECT dd_grant_credit('keyed', 5)" >/dev/null
read -r key_id key < <(c -c "SELECT key_id, api_key FROM dd_create_api_key('keyed', 'k')" | tr '|' ' ')
is "$(c -p $w1 -c "SELECT code FROM dd_verify_api_key('$key')")$(c -p $w2 -c "SELECT code FROM dd_verify_api_key('$key')")" \
   VALIDVALID "a key made through the coordinator verifies on both workers"
is "$(c -p $w2 -c "SELECT valid, code, ok, balance FROM dd_authorize_and_charge('$key', 2, 'a1')")" \
   "t|VALID|t|3" "dd_authorize_and_charge on a worker"
c -p $w2 -c "SELECT dd_revoke_api_key($key_id)" >/dev/null
is "$(c -c "SELECT code FROM dd_verify_api_key('$key')")$(c -p $w1 -c "SELECT code FROM dd_verify_api_key('$key')")$(c -p $w2 -c "SELECT code FROM dd_verify_api_key('$key')")" \
   REVOKEDREVOKEDREVOKED "revoked on a worker: REVOKED on every node"

# --- 5. Clips: one cursor across nodes, deletes in the feed ---------------------
for i in 1 2 3 4 5 6 7; do
    c -c "INSERT INTO clips (user_id, title, created_at) VALUES ('pager', 'clip $i', now() + interval '$i seconds')" >/dev/null
done
titles=()
cursor=
nodes=("$port" "$w1" "$w2" "$port")
for n in "${nodes[@]}"; do
    if [ -z "$cursor" ]; then
        page=$(c -p "$n" -c "SELECT dd_clips_page('pager', 2)")
    else
        page=$(c -p "$n" -c "SELECT dd_clips_page('pager', 2, '$cursor')")
    fi
    titles+=("$(c -c "SELECT string_agg(t, ',') FROM jsonb_array_elements_text(jsonb_path_query_array('$page'::jsonb, '\$.page[*].title')) t")")
    cursor=$(c -c "SELECT '$page'::jsonb->>'continueCursor'")
    done_flag=$(c -c "SELECT '$page'::jsonb->>'isDone'")
done
is "$(IFS='|'; echo "${titles[*]}")|$done_flag" "clip 7,clip 6|clip 5,clip 4|clip 3,clip 2|clip 1|true" \
   "one cursor walks the pages on the coordinator, worker 1, worker 2 and the coordinator"
feed0=$(c -c "SELECT dd_clip_changes('pager', 0, 100)")
v0=$(c -c "SELECT '$feed0'::jsonb->>'version'")
soft=$(c -c "SELECT id FROM clips WHERE user_id = 'pager' AND title = 'clip 1'")
hard=$(c -c "SELECT id FROM clips WHERE user_id = 'pager' AND title = 'clip 2'")
c -p $w1 -c "UPDATE clips SET deleted_at = now() WHERE user_id = 'pager' AND id = $soft" >/dev/null
c -p $w2 -c "DELETE FROM clips WHERE user_id = 'pager' AND id = $hard" >/dev/null
feed1=$(c -c "SELECT dd_clip_changes('pager', $v0, 100)")
is "$(c -c "SELECT string_agg(x->>'op' || ' ' || (x->>'id'), ',' ORDER BY (x->>'id')::bigint) FROM jsonb_array_elements('$feed1'::jsonb->'changes') x")" \
   "delete $soft,delete $hard" "a soft and a hard delete made on the workers are in the feed polled through the coordinator"
v1=$(c -c "SELECT '$feed1'::jsonb->>'version'")
is "$(c -p $w1 -c "SELECT jsonb_array_length(dd_clip_changes('pager', $v1, 100)->'changes')")" 0 \
   "polling again with the returned version (on a worker) repeats nothing"
is "$(sqlstate "$port" "SELECT 1, dd_clip_changes('pager', 0, 100)")" 55000 \
   "a call Citus cannot delegate is refused on a node without the user's shard, not answered from the wrong snapshot"

# --- 6. The feed never misses a change, writers on two nodes ---------------------
cat >"$work/feed_write.sql" <<'SQL'
\set r random(1, 3)
INSERT INTO clips (user_id, title) VALUES ('feed', 'w' || :client_id);
UPDATE clips SET title = title || '+' WHERE user_id = 'feed' AND id = (SELECT max(id) FROM clips WHERE user_id = 'feed');
SQL
c -c "CREATE TABLE feed_seen (id bigint PRIMARY KEY, op text, version bigint)" >/dev/null
pgbench -n -c 2 -T 8 -f "$work/feed_write.sql" -h 127.0.0.1 -p "$port" postgres >"$work/feed_c.log" 2>&1 &
wc_pid=$!
pgbench -n -c 2 -T 8 -f "$work/feed_write.sql" -h 127.0.0.1 -p "$w2" postgres >"$work/feed_w.log" 2>&1 &
ww_pid=$!
since=0
polls=0
# poll: one call of the feed through the coordinator, as a client makes it
# (a statement of its own, so Citus delegates it); the changes are applied
# to feed_seen, and since moves to the returned version; got is how many
# changes it brought.
poll() {
    local feed
    feed=$(c -c "SELECT dd_clip_changes('feed', $since, 100)") || return 1
    [ -n "$feed" ] || return 1
    c -q <<<"INSERT INTO feed_seen SELECT (x->>'id')::bigint, x->>'op', (x->>'version')::bigint
             FROM jsonb_array_elements('$feed'::jsonb->'changes') x
             ON CONFLICT (id) DO UPDATE SET op = excluded.op, version = excluded.version" >/dev/null
    since=$(c <<<"SELECT '$feed'::jsonb->>'version'")
    polls=$((polls + 1))
    got=$(c <<<"SELECT jsonb_array_length('$feed'::jsonb->'changes')")
}
while kill -0 $wc_pid 2>/dev/null || kill -0 $ww_pid 2>/dev/null; do poll; done
wait $wc_pid $ww_pid
# Writers done: poll until a poll brings nothing new.
got=1
while [ "$got" != 0 ]; do poll || break; done
feed_failed=$(cat "$work/feed_c.log" "$work/feed_w.log" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
feed_clips=$(c -c "SELECT count(*) FROM clips WHERE user_id = 'feed'")
is "$((feed_clips > 100))|$feed_failed|$((polls > 10))" "1|0|1" "4 writers on 2 nodes inserted $feed_clips clips (none failed) while $polls polls ran"
is "$(c -c "SELECT count(*) FROM (SELECT id, version FROM clips WHERE user_id = 'feed') c FULL JOIN feed_seen s ON s.id = c.id WHERE c.id IS NULL OR s.id IS NULL OR s.version IS DISTINCT FROM c.version")" 0 \
   "the poller through the coordinator holds every clip at its latest version"

# --- 7. Events with duplicates -------------------------------------------------
batch='[{"user_id":"ev1","event":"a","event_id":"x"},{"user_id":"ev1","event":"a","event_id":"x"},{"user_id":"ev2","event":"b","event_id":"x"},{"user_id":"ev2","event":"c"},{"user_id":"ev3","event":"d","event_id":"y"}]'
is "$(c -c "SELECT dd_track_events('$batch')")|$(c -p $w1 -c "SELECT dd_track_events('$batch')")" "4|1" \
   "a batch with a duplicate stores 4 of 5; again on a worker only the event without an id"
is "$(c -p $w2 -c "SELECT dd_track_event('ev1', 'a', '{}', 'x') IS NULL")|$(c -c "SELECT count(*) FROM usage_events WHERE user_id IN ('ev1', 'ev2', 'ev3')")" \
   "t|5" "a single duplicate on a worker is dropped; 5 rows in all"

# --- 8. Ids unique across nodes --------------------------------------------------
is "$(c -c "SELECT (SELECT count(*) = count(DISTINCT id) FROM clips)::text || (SELECT count(*) = count(DISTINCT id) FROM api_usage_log)::text || (SELECT count(*) = count(DISTINCT id) FROM usage_events)::text")" \
   truetruetrue "ids are unique in clips, api_usage_log and usage_events"
is "$(c -c "SELECT count(DISTINCT id >> 48) >= 2 FROM clips WHERE user_id IN ('feed', 'pager', 'old')")$(c -c "SELECT count(DISTINCT id >> 48) >= 2 FROM api_usage_log")" \
   tt "rows entered on different nodes (their ids are from different node ranges)"

# --- 9. Undistribute and DROP EXTENSION ------------------------------------------
counts="SELECT (SELECT count(*) FROM clips) || ',' || (SELECT count(*) FROM api_usage_log) || ',' || (SELECT count(*) FROM usage_events) || ',' || (SELECT count(*) FROM api_keys) || ',' || (SELECT count(*) FROM clip_tombstones) || ',' || (SELECT sum(balance) FROM api_credits)"
before=$(c -c "$counts")
c -c "SELECT dd_undistribute()" >"$work/undistribute.log"
is "$(c -c "$counts")" "$before" "dd_undistribute() keeps every row (clips, usage, events, keys, tombstones, balances)"
is "$(c -c "SELECT string_agg(result, ',') FROM run_command_on_all_nodes(\$\$SELECT count(*) FROM pg_dist_partition\$\$)")|$(c -c 'SELECT count(*) FROM dd_credit_audit()')|$(c -c "SELECT ok FROM dd_charge_credit('payer', 1)")" \
   "0,0,0|0|t" "no table is distributed on any node; audit empty; charges work on the coordinator"
c -c "DROP TABLE feed_seen" -c "DROP EXTENSION dd_clipper" >/dev/null
shards="SELECT count(*) FROM pg_class WHERE relname ~ '^(api_keys|api_credits|credit_grants|credit_refunds|api_usage_rollup|api_usage_log|clips|clip_tombstones|clip_cursor_key|usage_events|row_security_keys)(_[0-9]+)?\$'"
is "$(c -c "$shards")|$(c -p $w1 -c "$shards")|$(c -p $w2 -c "$shards")" "0|0|0" \
   "after DROP EXTENSION no table or shard is left on any node"
is "$(c -c 'SELECT count(*) FROM pg_dist_shard')" 0 "and no shard in Citus's metadata"

done_testing
