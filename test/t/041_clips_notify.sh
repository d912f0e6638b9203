#!/usr/bin/env bash
# test/t/041_clips_notify.sh -- every clip change sends one NOTIFY on
# channel dd_clipper_clips, at commit, with the payload
# {"table","user_id","id","op","version"}; a rolled-back change sends none.
# A psql session LISTENs while other sessions write (psql's \!), then
# prints what it received.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 7

db=dd_clips_notify
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
# The writers started with psql's \! connect to the same database.
PGDATABASE=$db
export PGDATABASE

out=$(psql -X -q -d "$db" <<'SQL' 2>&1
LISTEN dd_clipper_clips;
\! psql -X -q -c "INSERT INTO clips (user_id, title) VALUES ('u1', 'a'), ('u1', 'b')"
\! psql -X -q -c "BEGIN" -c "INSERT INTO clips (user_id, title) VALUES ('u1', 'rolled back')" -c "ROLLBACK"
\! psql -X -q -c "UPDATE clips SET title = 'a2' WHERE id = 1"
\! psql -X -q -c "UPDATE clips SET deleted_at = now() WHERE id = 2"
\! psql -X -q -c "DELETE FROM clips WHERE id = 1"
SELECT 1;
SQL
)
notes=$(printf '%s\n' "$out" | grep '^Asynchronous notification "dd_clipper_clips"' \
    | sed -E 's/^.*with payload "(.*)" received from server process.*$/\1/')
diag "received:"
printf '%s\n' "$notes" | sed 's/^/#   /'

is "$(printf '%s\n' "$notes" | grep -c .)" 5 "five changes committed, five notifications (none for the rollback)"
is "$(printf '%s\n' "$notes" | sed -E 's/"version":[0-9]+/"version":N/')" \
'{"table":"clips","user_id":"u1","id":1,"op":"upsert","version":N}
{"table":"clips","user_id":"u1","id":2,"op":"upsert","version":N}
{"table":"clips","user_id":"u1","id":1,"op":"upsert","version":N}
{"table":"clips","user_id":"u1","id":2,"op":"delete","version":N}
{"table":"clips","user_id":"u1","id":1,"op":"delete","version":N}' \
   "payloads name table, user, id and op, in commit order (a soft delete is a delete)"

v_soft=$(q "$db" "SELECT version FROM clips WHERE id = 2")
v_hard=$(q "$db" "SELECT version FROM clip_tombstones WHERE clip_id = 1")
is_same "$(printf '%s\n' "$notes" | sed -n 4p | sed -E 's/.*"version":([0-9]+).*/\1/')" "$v_soft" \
   "the soft delete's payload carries the clip's version"
is_same "$(printf '%s\n' "$notes" | sed -n 5p | sed -E 's/.*"version":([0-9]+).*/\1/')" "$v_hard" \
   "the hard delete's payload carries the tombstone's version"
is "$(q "$db" "SELECT jsonb_path_query_array(dd_clip_changes('u1'), '\$.changes[*].version')::text")" \
   "[$v_soft, $v_hard]" "the feed reports the same versions"

# A user id with quotes and control characters is escaped into valid JSON.
out=$(psql -X -q -d "$db" <<'SQL' 2>&1
LISTEN dd_clipper_clips;
\! psql -X -q -c "INSERT INTO clips (user_id, title) VALUES (E'we\"ird\\n\\u0001', 'x')"
SELECT 1;
SQL
)
payload=$(printf '%s\n' "$out" | grep '^Asynchronous notification' \
    | sed -E 's/^.*with payload "(.*)" received from server process.*$/\1/')
is "$(q "$db" "SELECT (\$\$$payload\$\$::jsonb)->>'user_id' = E'we\"ird\\n\\u0001'")" t \
   "a user id with quotes and control characters arrives as valid JSON"

# Nothing is sent by a statement that changes no clip.
out=$(psql -X -q -d "$db" <<'SQL' 2>&1
LISTEN dd_clipper_clips;
\! psql -X -q -c "UPDATE clips SET title = 'none' WHERE false"
SELECT 1;
SQL
)
is "$(printf '%s\n' "$out" | grep -c '^Asynchronous notification')" 0 "no change, no notification"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
