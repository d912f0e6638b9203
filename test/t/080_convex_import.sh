#!/usr/bin/env bash
# test/t/080_convex_import.sh -- bin/dd_convex_import on exports in Convex's
# exact layout (test/convex/make_export.py builds them: malformed lines,
# missing optional fields, unicode user ids, very long strings, Int64
# strings, unknown fields, plaintext and hashed keys, file bodies, one with
# a wrong hash, a component table, a table it does not import).
#
# Proves: the counts and a sample of mapped values of every table, times
# exact to the microsecond on rounding boundaries; skipped lines reported
# in compiler form without aborting the table, and --strict failing and
# rolling back; a second import writes no row version (xmin and ctid of
# every row, and the tables' insert/update/delete counters, unchanged);
# documents added to the export, and only those, are added; imported keys
# verify (VALID, REVOKED, EXPIRED) with dd_clipper.legacy_keys on and are
# MALFORMED with it off, a malformed ddk_ key stays MALFORMED; the audit is
# empty, also after a charge and a re-import; blob references with the
# right hash, --blobs-dir's files, a mismatched body reported; --dry-run
# writes nothing; a bad ZIP, a missing file and a failed connection exit 2
# with a message; the plaintext key is nowhere in the data directory (WAL
# included) after a CHECKPOINT; a hostile search_path changes nothing, and
# a role without the privileges gets an error and writes nothing.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 49

work=$DD_ROOT/tmp_check/convex
rm -rf "$work"
mkdir -p "$work"
python3 "$DD_ROOT/test/convex/make_export.py" base "$work/base.zip"
python3 "$DD_ROOT/test/convex/make_export.py" grown "$work/grown.zip"
KEY_PLAIN=sk_live_4f8Qz1xVb7Lk2Np9Rt6Wc3Ym5Hd0Js8Ga
KEY_REVOKED=sk_live_revokedR3v0k3dR3v0k3dR3v0k3dXYZ
KEY_EXPIRED=sk_live_expiredE5p1r3dE5p1r3dE5p1r3dXYZ
KEY_HEX=sk_live_hashedAsHexHashedAsHexHashedAsH
KEY_B64=sk_live_hashedAsB64HashedAsB64HashedAsB
U=$'\u30e6\u30fc\u30b6\u30fc\u2603-\u00e9'   # the unicode user id of the fixture

db=dd_convex
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
imp() { dd_convex_import --dbname "dbname=$db" "$@"; }

counts() {
    q "$db" "SELECT format('%s %s %s %s %s %s %s', (SELECT count(*) FROM api_keys), (SELECT count(*) FROM api_credits),
        (SELECT count(*) FROM api_usage_log), (SELECT count(*) FROM clips), (SELECT count(*) FROM usage_events),
        (SELECT count(*) FROM convex_unmapped), (SELECT count(*) FROM credit_grants))"
}

# --dry-run: the full report, nothing written.
out=$(imp --dry-run "$work/base.zip" 2>&1)
rc=$?
is "$rc $(counts)" "0 0 0 0 0 0 0 0" "--dry-run exits 0 and writes no row"
printf '%s\n' "$out" | grep -qx 'clips: read 6, inserted 4, updated 0, unchanged 0, skipped 2'
ok $? "--dry-run reports what an import would do"

# The first import.
out=$(imp "$work/base.zip" 2>&1)
rc=$?
printf '%s\n' "$out" >"$work/first.out"
is "$rc" 0 "the import exits 0 when every document was imported or reported"
is "$(grep -E '^[A-Za-z_]+: read' "$work/first.out")" \
"_storage: read 3, checked 3, mismatched 1, missing 0, skipped 0
apiKeys: read 8, inserted 5, updated 0, unchanged 0, skipped 3
apiCredits: read 4, inserted 3, updated 0, unchanged 0, skipped 1
apiUsageLog: read 7, inserted 5, updated 0, unchanged 0, skipped 2
clips: read 6, inserted 4, updated 0, unchanged 0, skipped 2
usageEvents: read 5, inserted 3, updated 0, unchanged 0, skipped 2" \
   "one line per table with read, inserted, updated, unchanged, skipped"
is "$(grep ': skipped: ' "$work/first.out")" \
"apiKeys/documents.jsonl:6: skipped: not a JSON object
apiKeys/documents.jsonl:7: skipped: neither key nor keyHash
apiKeys/documents.jsonl:8: skipped: key: starts with ddk_ but is not a dd_clipper key, so it could never verify
apiCredits/documents.jsonl:3: skipped: balance: not an integer
apiUsageLog/documents.jsonl:5: skipped: malformed JSON
apiUsageLog/documents.jsonl:7: skipped: credits: negative
clips/documents.jsonl:4: skipped: tags: not an array of strings
clips/documents.jsonl:5: skipped: empty line
usageEvents/documents.jsonl:2: skipped: its eventId is the eventId of line 1
usageEvents/documents.jsonl:4: skipped: event: missing or not a string" \
   "each skipped document as file:line: skipped: reason, and the table goes on"
grep -q '^_storage/stor00000003x*\.png: sha256 mismatch: ' "$work/first.out"
ok $? "a file body that does not match its sha256 is reported"
grep -q '^note: _components/ratelimiter/rateLimits/documents.jsonl: a component' "$work/first.out" &&
    grep -q '^note: notes/documents.jsonl: not one of the tables' "$work/first.out"
ok $? "a component's table and an unknown table are named, not imported"
grep -qF "$KEY_PLAIN" "$work/first.out"
is "$?" 1 "no message quotes a key"

# A sample of mapped values from every table.
is "$(q "$db" "SELECT format('%s|%s|%s|%s|%s', user_id, name, revoked_at IS NOT NULL, expires_at, last_used_at - created_at) FROM api_keys ORDER BY id")" \
"user_1|laptop|f||00:00:05
user_1|old|t||
user_2||f|2001-09-09 01:46:40+00|
$U|hex|f||
user_2|b64|f||" "api_keys: user, name, revocation, expiry, last use"
is "$(q "$db" "SELECT encode(key_hash, 'hex') FROM api_keys WHERE name = 'b64'")" \
   "$(printf '%s' "$KEY_B64" | sha256sum | cut -d' ' -f1)" "api_keys: a base64 keyHash is stored as its 32 bytes"
is "$(q "$db" "SELECT string_agg(format('%s=%s', user_id, balance), ' ' ORDER BY user_id COLLATE \"C\") FROM api_credits")" \
   "user_1=100 user_3=0 $U=9007199254740993" "api_credits: balances, an Int64 string marked in generated_schema.jsonl exact"
is "$(q "$db" "SELECT string_agg(format('%s/%s/%s/%s/%s', user_id, request_id, credits, (SELECT k.name FROM api_keys k WHERE k.id = u.api_key_id), metadata), ' ' ORDER BY id) FROM api_usage_log u")" \
   "user_1/r1/3/laptop/{\"ms\": 12} user_1/r2/4/laptop/ $U/r1/9007199254740993// user_2//0// user_4/r9/5//" \
   "api_usage_log: apiKeyId resolved to the key's id, credits (Int64 exact), absent fields defaulted"
is "$(q "$db" "SELECT format('%s|%s|%s|%s|%s|%s|%s', title, blob_provider, blob_key, encode(blob_sha256, 'hex'), blob_size, blob_content_type, tags) FROM clips WHERE convex_id LIKE 'clip00000001%'")" \
   "First clip|convex|stor00000001xxxxxxxxxxxxxxxxxxxx|$(printf 'first clip body\n' | sha256sum | cut -d' ' -f1)|16|text/plain|{a,b}" \
   "clips: the blob reference, with the body's SHA-256, size and content type"
is "$(q "$db" "SELECT format('%s|%s|%s', char_length(transcript), title, user_id) FROM clips WHERE convex_id LIKE 'clip00000002%'")" \
   "220000|Ünïcödé ☃|$U" "clips: a 220,000-character transcript and unicode text kept whole"
is "$(q "$db" "SELECT format('%s|%s|%s', status, deleted_at IS NOT NULL, notes) FROM clips WHERE convex_id LIKE 'clip00000006%'")" \
   "archived|t|with \"quotes\", a backslash \\ and a tab	" "clips: status, soft delete, quotes, backslashes and tabs"
is "$(q "$db" "SELECT string_agg(format('%s:%s', event, properties), ' ' ORDER BY id) FROM usage_events WHERE user_id = 'user_1'")" \
   'opened:{"n": 1}' "usage_events: event and properties"
# _creationTime 1777907009446.7735 ms = ...446773.5 us, rounds up;
# 1777907009446.0004999 ms rounds down; occurredAt -0.0005 ms = -0.5 us, away from zero.
is "$(q "$db" "SELECT (extract(epoch FROM created_at) * 1000000)::bigint FROM clips WHERE convex_id LIKE 'clip00000003%'")" \
   "1777907009446774" "_creationTime exact to the microsecond (half a microsecond rounds up)"
is "$(q "$db" "SELECT format('%s %s', (extract(epoch FROM received_at) * 1000000)::bigint, occurred_at) FROM usage_events WHERE event = 'edge'")" \
   "1777907009446000 1969-12-31 23:59:59.999999+00" "times below half a microsecond round down; before the epoch, away from zero"
is "$(q "$db" "SELECT string_agg(format('%s %s', table_name, fields), ', ' ORDER BY table_name) FROM convex_unmapped")" \
   'apiCredits {"plan": "free"}, apiKeys {"scopes": ["read"]}, apiUsageLog {"apiKeyId": "gone00000001xxxxxxxxxxxxxxxxxxxx"}, clips {"legacyRating": 4}' \
   "unknown fields and an unresolved reference are kept in convex_unmapped"
is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" 0 "the audit is empty after the import"
is "$(q "$db" "SELECT string_agg(format('%s=%s', user_id, amount), ' ' ORDER BY user_id COLLATE \"C\") FROM credit_grants WHERE idempotency_key = 'convex:opening'")" \
   "user_1=107 user_4=5 $U=18014398509481986" "the opening grant is the balance plus the imported charges"

# Idempotency: a second import writes no row version.
tables="api_keys api_credits api_usage_log clips usage_events convex_unmapped convex_opening_balances credit_grants"
versions() {
    local t sql=""
    for t in $tables; do
        sql="$sql UNION ALL SELECT '$t', md5(string_agg(x.xmin::text || x.ctid::text, ',' ORDER BY x.ctid)) FROM $t x"
    done
    q "$db" "SELECT string_agg(t || '=' || coalesce(d, ''), ' ') FROM (${sql# UNION ALL}) s(t, d)"
}
tuples() {
    q "$db" "SELECT pg_stat_clear_snapshot(); SELECT sum(n_tup_ins + n_tup_upd + n_tup_del + n_tup_hot_upd) FROM pg_stat_user_tables WHERE relname IN ('${tables// /\',\'}')" | tail -1
}
before=$(versions)
sleep 0.6   # the importer's counters of the first run reach the statistics
tup_before=$(tuples)
out=$(imp "$work/base.zip" 2>&1)
rc=$?
is "$rc $(printf '%s\n' "$out" | grep -cE '^(apiKeys|apiCredits|apiUsageLog|clips|usageEvents): read [0-9]+, inserted 0, updated 0, unchanged [0-9]+, skipped')" \
   "0 5" "a second import reports every table inserted 0, updated 0"
is_same "$(versions)" "$before" "a second import writes no row version (xmin and ctid of every row unchanged)"
sleep 0.6
is_same "$(tuples)" "$tup_before" "a second import inserts, updates and deletes no tuple (pg_stat_user_tables)"

# Keys: the customer's exact strings verify, with legacy_keys on only.
verify() { q "$db" "SET dd_clipper.legacy_keys = ${2:-on}; SELECT code FROM dd_verify_api_key('$1')" | tail -1; }
is "$(verify "$KEY_PLAIN") $(verify "$KEY_REVOKED") $(verify "$KEY_EXPIRED") $(verify "$KEY_HEX") $(verify "$KEY_B64")" \
   "VALID REVOKED EXPIRED VALID VALID" "imported keys verify: VALID, REVOKED, EXPIRED (plaintext, hex and base64 hashes)"
is "$(verify "$KEY_PLAIN" off) $(verify "sk_live_neverIssued" on)" "MALFORMED NOT_FOUND" \
   "with legacy_keys off an old key is MALFORMED; on, an unknown one is NOT_FOUND"
is "$(verify "ddk_${KEY_PLAIN}" on) $(verify "$(printf 'x%.0s' $(seq 513))" on)" "MALFORMED MALFORMED" \
   "a malformed ddk_ key, and a text over 512 bytes, stay MALFORMED with legacy_keys on"
is "$(q "$db" "SET dd_clipper.legacy_keys = on; SELECT format('%s %s %s', code, ok, balance) FROM dd_authorize_and_charge('$KEY_PLAIN', 1, 'native-1')" | tail -1)" \
   "VALID t 99" "dd_authorize_and_charge charges through an imported key"

# The export grows: only the new documents are added, a changed one updated.
out=$(imp "$work/grown.zip" 2>&1)
rc=$?
is "$rc $(printf '%s\n' "$out" | grep -E '^(apiCredits|apiUsageLog|clips):' | tr '\n' ';')" \
   "0 apiCredits: read 4, inserted 0, updated 1, unchanged 2, skipped 1;apiUsageLog: read 8, inserted 1, updated 0, unchanged 5, skipped 2;clips: read 7, inserted 1, updated 1, unchanged 3, skipped 2;" \
   "a re-import after documents were added adds only those, and updates the changed one"
is "$(q "$db" "SELECT format('%s %s', (SELECT count(*) FROM api_usage_log), (SELECT title FROM clips WHERE convex_id LIKE 'clip00000001%'))")" \
   "7 First clip (renamed)" "the added usage row is there once (beside the native charge), the changed clip changed"
is "$(q "$db" "SELECT format('%s %s %s', (SELECT count(*) FROM dd_credit_audit()), dd_credit_balance('user_1'),
        (SELECT amount FROM credit_grants WHERE user_id = 'user_1' AND idempotency_key = 'convex:opening'))")" \
   "0 93 107" "after a native charge and a re-import the audit is empty: Convex's -6 moved the balance, the grant kept balance + charges"

# The plaintext key is nowhere on disk.
q "$db" "CHECKPOINT" >/dev/null
datadir=${DD_DATADIR:-$(q postgres "SHOW data_directory")}
hits=$(grep -rlaF -e "$KEY_PLAIN" -e "$KEY_REVOKED" "$datadir" 2>/dev/null)
is "${hits:-none}" "none" "after the imports and a CHECKPOINT no file of the data directory (pg_wal included) holds a plaintext key"

# --blobs-dir: the bodies that match, named by their SHA-256.
db=dd_convex_blobs
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
out=$(imp --blobs-dir "$work/blobs" "$work/base.zip" 2>&1)
rc=$?
is "$rc $(ls "$work/blobs" | wc -l)" "0 2" "--blobs-dir gets the two bodies that match their sha256, not the one that does not"
bad=0
for f in "$work/blobs"/*; do
    [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || bad=1
done
is "$bad" 0 "each file in --blobs-dir is named by its SHA-256 in hex"
printf '%s\n' "$out" | grep -q "^_storage: read 3, checked 3, mismatched 1, missing 0, skipped 0, written 2 to $work/blobs\$"
ok $? "the _storage line counts files checked, mismatched and written"
is "$(q "$db" "SELECT count(*) FROM clips c WHERE c.blob_key IS NOT NULL AND encode(c.blob_sha256, 'hex') IN ($(ls "$work/blobs" | sed "s/.*/'&'/" | paste -sd,))")" \
   "2" "every clip's blob_sha256 is the hash of a body written to --blobs-dir"

# --strict: a table with a skipped document is rolled back, the run fails.
db=dd_convex_strict
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
out=$(imp --strict "$work/base.zip" 2>&1)
rc=$?
is "$rc $(counts)" "1 0 0 0 0 0 0 0" "--strict: skipped documents fail the run (exit 1) and their tables are rolled back"
printf '%s\n' "$out" | grep -q 'clips: documents were skipped; rolled back (--strict)' &&
    printf '%s\n' "$out" | grep -q '^clips/documents.jsonl:4: skipped: '
ok $? "--strict still reports each skipped document, and says what it rolled back"

# Bad input to the command.
printf 'not a zip' >"$work/bad.zip"
out=$(imp "$work/bad.zip" 2>&1)
rc=$?
is "$rc" 2 "a file that is not a ZIP exits 2"
printf '%s\n' "$out" | grep -q 'bad.zip: not a readable ZIP archive'
ok $? "... saying so"
out=$(imp "$work/no such file.zip" 2>&1)
is "$? $(printf '%s\n' "$out" | grep -c 'cannot read the file')" "2 1" "a missing ZIP exits 2 with a message"
out=$(dd_convex_import --dbname "host=/nonexistent port=1 dbname=$db connect_timeout=2" "$work/base.zip" 2>&1)
is "$? $(printf '%s\n' "$out" | grep -c 'cannot connect to the database')" "2 1" "a failed connection exits 2 with a message"
out=$(dd_convex_import --dbname "dbname=postgres" "$work/base.zip" 2>&1)
is "$? $(printf '%s\n' "$out" | grep -c 'dd_clipper is not installed')" "2 1" "a database without the extension exits 2 with a message"
cp "$work/base.zip" "$work/it's a \"quoted\" \$(name) .zip"
out=$(dd_convex_import --dry-run --dbname "dbname=dd_convex_strict" "$work/it's a \"quoted\" \$(name) .zip" 2>&1)
is "$? $(printf '%s\n' "$out" | grep -c 'clips: read 6, inserted 4')" "0 1" "a ZIP path with spaces, quotes and \$( ) is read as it is"

# A hostile search_path: shadowing functions and operators change nothing.
db=dd_convex_hostile
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
q "$db" "CREATE SCHEMA evil;
CREATE FUNCTION evil.sha256(bytea) RETURNS bytea LANGUAGE sql AS \$\$SELECT '\\x00'::bytea\$\$;
CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS \$\$SELECT 'string'\$\$;
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS \$\$SELECT true\$\$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS \$\$SELECT 'evil'\$\$;
CREATE FUNCTION evil.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE sql AS \$\$SELECT '{}'::jsonb\$\$;
CREATE TABLE evil.api_keys (x int);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
ALTER DATABASE $db SET search_path = evil, public" >/dev/null
is "$(q "$db" "SELECT count(*) FROM pg_proc WHERE pronamespace = 'evil'::regnamespace")" 5 "a hostile schema first on the search_path, shadowing sha256, jsonb_typeof, =, format, jsonb_array_elements"
out=$(imp "$work/base.zip" 2>&1)
rc=$?
is "$rc $(printf '%s\n' "$out" | grep -E '^[A-Za-z_]+: read' | md5sum)" \
   "0 $(grep -E '^[A-Za-z_]+: read' "$work/first.out" | md5sum)" "a hostile search_path: the same report"
is "$(q "$db" "SET search_path = public; SET dd_clipper.legacy_keys = on; SELECT code FROM dd_verify_api_key('$KEY_PLAIN')" | tail -1) $(q "$db" "SELECT count(*) FROM public.api_keys")" \
   "VALID 5" "a hostile search_path: the real tables got the rows, with the real hashes"

# A role without the privileges: an error, and nothing written.
db=dd_convex_lowpriv
fresh_db "$db"
q "$db" "CREATE EXTENSION dd_clipper" >/dev/null
q postgres "DROP ROLE IF EXISTS convex_lowpriv" >/dev/null 2>&1
q postgres "CREATE ROLE convex_lowpriv LOGIN" >/dev/null
q "$db" "GRANT USAGE ON SCHEMA public TO convex_lowpriv" >/dev/null
out=$(dd_convex_import --dbname "dbname=$db user=convex_lowpriv" "$work/base.zip" 2>&1)
rc=$?
is "$rc $(printf '%s\n' "$out" | grep -c 'permission denied')" "2 1" "a role without the privileges gets permission denied (exit 2)"
db=dd_convex_lowpriv
is "$(counts)" "0 0 0 0 0 0 0" "... and nothing is written"

for d in dd_convex dd_convex_blobs dd_convex_strict dd_convex_hostile dd_convex_lowpriv; do
    q postgres "DROP DATABASE $d" >/dev/null
done
q postgres "DROP ROLE convex_lowpriv" >/dev/null
done_testing
