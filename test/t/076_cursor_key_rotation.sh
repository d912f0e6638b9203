#!/usr/bin/env bash
# test/t/076_cursor_key_rotation.sh -- dd_rotate_cursor_key() and the
# cursors in flight when it runs.
#
# The documented policy: a rotation keeps the key it replaces as
# previous_key, and a cursor made with it still continues its listing
# exactly (the next cursor is made with the new key), until the next
# rotation; dd_rotate_cursor_key(keep_previous => false) drops it at once.
# A cursor of a key that is gone fails its integrity check with 22P02, and
# NULL starts over.  A user's listing paged across a rotation returns every
# clip once.  Only the extension's owner can rotate.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 16

db=dd_cursor_rotation
fresh_db "$db"
state() {
    local out
    out=$(psql -X -q -t -A -v VERBOSITY=sqlstate -v ON_ERROR_STOP=1 -d "$db" -c "$1" 2>&1 >/dev/null)
    if [ -z "$out" ]; then echo ok; else printf '%s\n' "$out" | grep -oE '^ERROR: +[0-9A-Z]{5}' | head -1 | awk '{print $2}'; fi
}
page() {   # page CURSOR|NULL: ids of one page of 3 (oldest first) and the next cursor
    q "$db" "SELECT (SELECT string_agg(e->>'id', ',') FROM jsonb_array_elements(p->'page') e) || ' ' || (p->>'continueCursor')
             FROM dd_clips_page('u1', 3, $1, sort => 'oldest') p"
}

q postgres "DROP ROLE IF EXISTS cr_app" >/dev/null 2>&1
q "$db" "CREATE EXTENSION dd_clipper;
INSERT INTO clips (user_id, title) SELECT 'u1', 'clip ' || g FROM generate_series(1, 12) g;
CREATE ROLE cr_app; SELECT dd_grant_app_role('cr_app');" >/dev/null
ok $? "12 clips of u1"

key0=$(q "$db" "SELECT encode(key, 'hex') FROM clip_cursor_key")
read -r ids1 c1 <<<"$(page NULL)"
is "$ids1" "1,2,3" "page 1"
is "$(q "$db" "SELECT dd_rotate_cursor_key()")" "" "dd_rotate_cursor_key() rotates"
is "$(q "$db" "SELECT encode(previous_key, 'hex') = '$key0' AND encode(key, 'hex') <> '$key0' AND rotated_at IS NOT NULL FROM clip_cursor_key")" t \
   "the old key is kept as previous_key, a new key is in place"

read -r ids2 c2 <<<"$(page "'$c1'")"
is "$ids2" "4,5,6" "a cursor made before the rotation continues exactly where it stopped"
[ -n "$c2" ] && [ "$c2" != "$c1" ]
ok $? "and its next cursor is made with the new key"
read -r ids2b c2b <<<"$(page "'$c1'")"
is "$ids2b $c2b" "$ids2 $c2" "the old cursor can be used again until the next rotation (a retry)"

q "$db" "SELECT dd_rotate_cursor_key()" >/dev/null
is "$(state "SELECT dd_clips_page('u1', 3, '$c1', sort => 'oldest')")" 22P02 \
   "after a second rotation, the cursor two keys old fails its integrity check (22P02)"
read -r ids3 c3 <<<"$(page "'$c2'")"
is "$ids3" "7,8,9" "the cursor one key old still works"

q "$db" "SELECT dd_rotate_cursor_key(keep_previous => false)" >/dev/null
is "$(q "$db" "SELECT previous_key IS NULL FROM clip_cursor_key")" t "keep_previous => false keeps no old key"
is "$(state "SELECT dd_clips_page('u1', 3, '$c3', sort => 'oldest')")" 22P02 \
   "and every cursor in flight is refused at once (22P02)"
is "$(psql -X -q -d "$db" -c "SELECT dd_clips_page('u1', 3, '$c3', sort => 'oldest')" 2>&1 | grep -c 'cursor failed its integrity check')" 1 \
   "with the message that says to start over"

# A whole listing paged across rotations returns every clip once.
all=""
cursor=NULL
for i in 1 2 3 4 5; do
    read -r ids next <<<"$(page "$cursor")"
    [ -n "$ids" ] && all="$all${all:+,}$ids"
    cursor="'$next'"
    [ "$i" = 2 ] && q "$db" "SELECT dd_rotate_cursor_key()" >/dev/null
done
is "$all" "1,2,3,4,5,6,7,8,9,10,11,12" "a listing paged across a rotation sees every clip once"

is "$(state "SELECT dd_rotate_cursor_key(NULL)")" 22004 "keep_previous NULL: 22004"
is "$(state "SET ROLE cr_app; SELECT dd_rotate_cursor_key()")" 42501 "an application role cannot rotate"
is "$(state "SET ROLE cr_app; SELECT previous_key FROM clip_cursor_key")" 42501 "nor read the keys"

q "$db" "DROP EXTENSION dd_clipper" >/dev/null
q postgres "DROP DATABASE $db" >/dev/null
q postgres "DROP ROLE cr_app" >/dev/null
done_testing
