#!/usr/bin/env bash
# test/t/010_dump_restore.sh -- pg_dump keeps the rows of every dd_clipper
# table (the promise of pg_extension_config_dump), and a restore into a new
# database has every row, the same sequences and a working extension.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 12

src=dd_dump_src
dst=dd_dump_dst
fresh_db "$src"
fresh_db "$dst"

q "$src" "
CREATE EXTENSION dd_clipper;
INSERT INTO api_keys (user_id, name, prefix, key_hash)
    SELECT 'u' || i, 'key ' || i, 'ddk_' || i, sha256(('k' || i)::bytea)
    FROM generate_series(1, 3) i;
INSERT INTO api_credits (user_id, balance) SELECT 'u' || i, i * 10 FROM generate_series(1, 3) i;
INSERT INTO credit_grants (user_id, amount, reason) SELECT 'u' || i, i * 10, 'seed' FROM generate_series(1, 3) i;
INSERT INTO api_usage_log (user_id, request_id, endpoint, credits)
    SELECT 'u1', 'req-' || i, '/v1/clip', 1 FROM generate_series(1, 5) i;
INSERT INTO clips (user_id, title) SELECT 'u2', 'clip ' || i FROM generate_series(1, 7) i;
INSERT INTO usage_events (user_id, event, event_id) SELECT 'u3', 'opened', 'e' || i FROM generate_series(1, 11) i;
" >/dev/null
ok $? "rows written in each table"

"$DD_BINDIR/pg_dump" -Fc -d "$src" -f "$DD_ROOT/tmp_check/dd_dump.dump"
ok $? "pg_dump succeeds"

"$DD_BINDIR/pg_restore" --exit-on-error -d "$dst" "$DD_ROOT/tmp_check/dd_dump.dump"
ok $? "pg_restore into a new database succeeds"

for t in api_keys:3 api_credits:3 credit_grants:3 api_usage_log:5 clips:7 usage_events:11; do
    table=${t%%:*}
    want=${t##*:}
    is "$(q "$dst" "SELECT count(*) FROM $table")" "$want" "$table: all $want rows restored"
done

is "$(q "$dst" "SELECT sum(balance) FROM api_credits")" "60" "balances restored exactly"

# The identity sequences come back where they were: new rows do not collide.
q "$dst" "INSERT INTO clips (user_id, title) VALUES ('u2', 'after restore')" >/dev/null
ok $? "a new clip after restore gets a fresh id (sequence state restored)"

is_same "$(q "$dst" "SELECT extversion FROM pg_extension WHERE extname = 'dd_clipper'")" \
        "$(make -s -C "$DD_ROOT" print-version)" "the extension is restored at its version"

psql -X -q -d postgres -c "DROP DATABASE $src" -c "DROP DATABASE $dst" >/dev/null
done_testing
