#!/usr/bin/env bash
# test/t/042_clips_feed_load.sh -- the change feed's promise under load:
# writers insert, update, soft-delete, undelete and hard-delete clips of
# three users in transactions that take their id early and commit late
# (so commits come out of order all the time), while pollers keep a mirror
# of each user's clips from dd_clip_changes alone, always polling with the
# version they were given.  Afterwards every mirror equals the table
# exactly (ids, versions, titles), and no (clip, version) was ever
# delivered twice (a primary key on what was delivered would have failed
# the poll).
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 8

db=dd_clips_feed_load
fresh_db "$db"
export PGDATABASE=$db
work=$DD_ROOT/tmp_check/clips_feed_load
rm -rf "$work"
mkdir -p "$work"

q "$db" "
CREATE EXTENSION dd_clipper;
INSERT INTO clips (user_id, title) SELECT 'u' || (i % 3), 'seed ' || i FROM generate_series(1, 60) i;

-- One write of a random kind on a random clip of the user.
CREATE FUNCTION clip_write(u text, op int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE target bigint;
BEGIN
    SELECT id INTO target FROM clips WHERE user_id = u
    ORDER BY id OFFSET floor(random() * 20) LIMIT 1;
    IF op <= 3 OR target IS NULL THEN
        INSERT INTO clips (user_id, title) VALUES (u, 'new ' || random());
    ELSIF op <= 6 THEN
        UPDATE clips SET title = 'edit ' || random() WHERE user_id = u AND id = target;
    ELSIF op = 7 THEN
        UPDATE clips SET deleted_at = now() WHERE user_id = u AND id = target;
    ELSIF op = 8 THEN
        UPDATE clips SET deleted_at = NULL WHERE user_id = u AND id = target;
    ELSE
        DELETE FROM clips WHERE user_id = u AND id = target;
    END IF;
END \$\$;

-- The client side: a mirror of each user's live clips, built from the feed.
CREATE TABLE mirror (user_id text, id bigint, version bigint, title text, PRIMARY KEY (user_id, id));
CREATE TABLE delivered (user_id text, id bigint, version bigint, PRIMARY KEY (user_id, id, version));
CREATE TABLE poll_state (user_id text PRIMARY KEY, since bigint NOT NULL, polls int NOT NULL DEFAULT 0);
INSERT INTO poll_state (user_id, since) VALUES ('u0', 0), ('u1', 0), ('u2', 0);

CREATE FUNCTION poll(u text) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE
    s bigint;
    r jsonb;
    c jsonb;
    n int := 0;
BEGIN
    SELECT since INTO s FROM poll_state WHERE user_id = u FOR UPDATE;
    r := dd_clip_changes(u, s, 50);
    FOR c IN SELECT * FROM jsonb_array_elements(r->'changes') LOOP
        INSERT INTO delivered VALUES (u, (c->>'id')::bigint, (c->>'version')::bigint);
        IF c->>'op' = 'upsert' THEN
            INSERT INTO mirror VALUES (u, (c->>'id')::bigint, (c->>'version')::bigint, c->'clip'->>'title')
            ON CONFLICT (user_id, id) DO UPDATE SET version = EXCLUDED.version, title = EXCLUDED.title;
        ELSE
            DELETE FROM mirror WHERE user_id = u AND id = (c->>'id')::bigint;
        END IF;
        n := n + 1;
    END LOOP;
    IF (r->>'version')::bigint < s THEN
        RAISE EXCEPTION 'version went back from % to %', s, r->>'version';
    END IF;
    UPDATE poll_state SET since = (r->>'version')::bigint, polls = polls + 1 WHERE user_id = u;
    RETURN n;
END \$\$;
" >/dev/null
ok $? "schema, seed clips, writer and poller functions"

# Writers: the transaction id is taken first, then a pause, then the write:
# a writer that started earlier often commits after later ones.
cat >"$work/write.sql" <<'SQL'
\set u random(0, 2)
\set op random(1, 10)
BEGIN;
SELECT pg_current_xact_id();
SELECT pg_sleep(random() * 0.02);
SELECT clip_write('u' || :u, :op);
SELECT pg_sleep(random() * 0.01);
COMMIT;
SQL
cat >"$work/poll.sql" <<'SQL'
\set u random(0, 2)
SELECT poll('u' || :u);
SQL

pgbench_run "$work/write.log" -n -c 6 -j 2 -T 8 -f "$work/write.sql" "$db" &
pgbench_run "$work/poll.log" -n -c 2 -j 1 -T 8 -f "$work/poll.sql" "$db"
wait

pgbench_ok "$work/write.log" "writers ran without an error, a failed transaction or a deadlock"
pgbench_ok "$work/poll.log" \
    "pollers ran without an error or a failed transaction (no change delivered twice, no version going back)"
writes=$(pgbench_processed "$work/write.log")
polls=$(pgbench_processed "$work/poll.log")
diag "writes: $writes, polls during the run: $polls"
[ "${writes:-0}" -ge 100 ] && [ "${polls:-0}" -ge 100 ]
ok $? "at least 100 writes and 100 polls interleaved"

# After the writers stop, poll until each user's feed has nothing new.
for u in u0 u1 u2; do
    for _ in $(seq 1 200); do
        [ "$(q "$db" "SELECT poll('$u')")" = 0 ] && break
    done
done

diff_rows() {
    q "$db" "
    SELECT count(*) FROM (
        (SELECT user_id, id, version, title FROM clips WHERE deleted_at IS NULL
         EXCEPT SELECT user_id, id, version, title FROM mirror)
        UNION ALL
        (SELECT user_id, id, version, title FROM mirror
         EXCEPT SELECT user_id, id, version, title FROM clips WHERE deleted_at IS NULL)) d"
}
is "$(diff_rows)" 0 "every mirror equals its user's live clips: ids, versions and titles"
is_same "$(q "$db" "SELECT count(*) FROM mirror")" "$(q "$db" "SELECT count(*) FROM clips WHERE deleted_at IS NULL")" \
   "the mirrors hold as many clips as the table"
ok "$( [ "$(q "$db" "SELECT count(*) FROM clip_tombstones")" -gt 0 ] \
       && [ "$(q "$db" "SELECT count(*) FROM clips WHERE deleted_at IS NOT NULL")" -gt 0 ]; echo $?)" \
   "hard and soft deletes happened"
is "$(q "$db" "SELECT count(*) FROM delivered d JOIN clips c USING (user_id, id) WHERE d.version > c.version AND c.deleted_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM clip_tombstones t WHERE t.user_id = d.user_id AND t.clip_id = d.id)")" 0 \
   "no live clip was delivered with a version newer than its current one"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
