#!/usr/bin/env bash
# test/t/015_upgrade.sh -- the upgrade chain.
#
#   * A released script never changes: each one's SHA-256 is recorded here
#     when it is released.
#   * From every released version, on a database holding user data,
#     ALTER EXTENSION dd_clipper UPDATE reaches the latest version, keeps
#     every row (the same rows, byte for byte), keeps the ledger balanced
#     and request-id replays working, and leaves exactly the catalog a fresh
#     install of the latest version has (test/lib/catalog.sql: functions with
#     their definitions and privileges, tables, columns, indexes,
#     constraints, triggers, policies, comments, extconfig).
#
# scripts/test.sh runs it on every PostgreSQL version it supports.
set -u
source "$DD_ROOT/test/lib/tap.bash"

# Released versions and the SHA-256 of their install or upgrade script.
# Add a line when a version is released; never change one.
released=(
    "dd_clipper--1.0.sql d6afd35e274fd38bfa6416545c8a28538f2a538e9c86d02e19bbe5745378444a"
)
# The versions an installation can be upgraded from.
from_versions=(1.0)

latest=$(make -s -C "$DD_ROOT" print-version)
catalog=$DD_ROOT/test/lib/catalog.sql
out=$DD_ROOT/tmp_check/upgrade
mkdir -p "$out"

plan $((${#released[@]} + 1 + ${#from_versions[@]} * 9))

for r in "${released[@]}"; do
    file=${r%% *}
    want=${r##* }
    got=$(sha256sum "$DD_ROOT/extension/$file" 2>/dev/null | cut -d' ' -f1)
    is "$got" "$want" "released script $file is unchanged"
done

fresh_db dd_upgrade_fresh
q dd_upgrade_fresh "CREATE EXTENSION dd_clipper" >/dev/null
psql -X -A -t -q -v ON_ERROR_STOP=1 -d dd_upgrade_fresh -f "$catalog" >"$out/fresh.catalog"
rc=$?
[ "$rc" -eq 0 ] && [ "$(wc -l <"$out/fresh.catalog")" -gt 100 ]
ok $? "a fresh install of $latest describes its catalog ($(wc -l <"$out/fresh.catalog") facts)"

# rows DB: every row of every table that holds user data, in a fixed order,
# as one digest per table.
rows() {
    q "$1" "
SELECT string_agg(format('%s %s %s', t, n, d), ' ' ORDER BY t)
  FROM (SELECT 'api_keys' t, count(*) n, md5(string_agg(x::text, '|' ORDER BY x.id)) d FROM api_keys x
        UNION ALL SELECT 'api_credits', count(*), md5(string_agg(x::text, '|' ORDER BY x.user_id)) FROM api_credits x
        UNION ALL SELECT 'credit_grants', count(*), md5(string_agg(x::text, '|' ORDER BY x.id)) FROM credit_grants x
        UNION ALL SELECT 'credit_refunds', count(*), md5(string_agg(x::text, '|' ORDER BY x.id)) FROM credit_refunds x
        UNION ALL SELECT 'api_usage_log', count(*), md5(string_agg(x::text, '|' ORDER BY x.user_id, x.id)) FROM api_usage_log x
        UNION ALL SELECT 'clips', count(*), md5(string_agg(x::text, '|' ORDER BY x.user_id, x.id)) FROM clips x
        UNION ALL SELECT 'clip_tombstones', count(*), md5(string_agg(x::text, '|' ORDER BY x.user_id, x.clip_id)) FROM clip_tombstones x
        UNION ALL SELECT 'usage_events', count(*), md5(string_agg(x::text, '|' ORDER BY x.user_id, x.id)) FROM usage_events x) s"
}

for v in "${from_versions[@]}"; do
    db=dd_upgrade_from_${v//./_}
    fresh_db "$db"
    q "$db" "CREATE EXTENSION dd_clipper VERSION '$v'" >/dev/null
    # User data, written through the functions of version $v.
    key=$(q "$db" "
SELECT dd_grant_credit('u1', 100, 'opening', 'g1');
SELECT dd_grant_credit('u2', 7, 'opening', 'g2');
SELECT ok FROM dd_charge_credit('u1', 3, 'req-1', '/v1/clip');
SELECT ok FROM dd_charge_credit('u1', 4, 'req-2', '/v1/clip');
SELECT ok FROM dd_charge_credit('u2', 9, 'req-3', '/v1/clip');
SELECT dd_refund_credit('u1', 'req-2', 'bad output');
SELECT dd_log_usage('u2', '/v1/free', 'req-4');
INSERT INTO clips (user_id, title, tags) SELECT 'u1', 'clip ' || i, ARRAY['t' || i % 3] FROM generate_series(1, 20) i;
UPDATE clips SET title = title || ' (edited)' WHERE user_id = 'u1' AND id % 4 = 0;
DELETE FROM clips WHERE user_id = 'u1' AND id % 5 = 0;
SELECT dd_track_event('u1', 'opened', '{\"n\": 1}', 'e1');
SELECT dd_track_event('u2', 'opened', '{}', 'e2');
SELECT api_key FROM dd_create_api_key('u1', 'laptop');" | tail -1)
    before=$(rows "$db")
    q "$db" "ALTER EXTENSION dd_clipper UPDATE" >/dev/null
    ok $? "$v: ALTER EXTENSION dd_clipper UPDATE succeeds on a database with data"
    is "$(q "$db" "SELECT extversion FROM pg_extension WHERE extname = 'dd_clipper'")" \
       "$latest" "$v: the extension is now at $latest"
    is_same "$(rows "$db")" "$before" "$v: every row of every table is kept, byte for byte"
    is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" \
       "$v: the ledger still balances (dd_credit_audit is empty)"
    is "$(q "$db" "SELECT format('%s %s %s', ok, balance, replayed) FROM dd_charge_credit('u1', 3, 'req-1')")" \
       "t 97 t" "$v: a request charged before the upgrade replays after it"
    is "$(q "$db" "SELECT format('%s %s %s', ok, balance, replayed) FROM dd_charge_credit('u1', 5, 'req-5')")" \
       "t 92 f" "$v: a new charge after the upgrade debits"
    is "$(q "$db" "SELECT code FROM dd_verify_api_key('$key')")" "VALID" \
       "$v: a key made before the upgrade verifies after it"
    psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$db" -f "$catalog" >"$out/from-$v.catalog"
    ok $? "$v: the upgraded catalog can be described"
    # Two empty descriptions (a failed query) are not equal catalogs.
    diff -u "$out/fresh.catalog" "$out/from-$v.catalog" >"$out/from-$v.diff" &&
        [ -s "$out/fresh.catalog" ] && [ -s "$out/from-$v.catalog" ]
    rc=$?
    ok $rc "$v: the upgraded catalog equals a fresh install of $latest"
    [ "$rc" -ne 0 ] && sed -n '1,40s/^/# /p' "$out/from-$v.diff"
    psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done

psql -X -q -d postgres -c "DROP DATABASE dd_upgrade_fresh" >/dev/null
done_testing
