#!/usr/bin/env bash
# test/t/075_row_security.sh -- row security is a boundary: a confined role
# tries to escape and sees none of another user's rows.
#
# Two users, u1 and u2, with rows in every per-user table.  rs_confined is a
# LOGIN role with the application and billing roles' grants, subject to
# row security (not the owner, no BYPASSRLS); rs_signer is trusted to sign
# claims (EXECUTE on dd_sign_claim) and nothing else.  rs_confined gets a
# claim for u1 and tries, one way after another, to see or touch u2's rows:
#
#   * no claim; SET / set_config / RESET of dd_clipper.user_id (the 1.0
#     setting); a shadow dd_claim_user_id() in pg_temp first on its
#     search_path; reading the keys or signing itself;
#   * forged tokens: u1's token with the user changed to u2, a token for u2
#     signed with a guessed secret, under an unknown key id, truncated,
#     expired (also one signed with the real secret), signed with a key
#     that was retired since;
#   * the SECURITY DEFINER functions called for u2 (balance, charge, grant,
#     log, events, keys, audit, purge) and the invoker ones (pages, feed);
#   * writes: INSERT of a u2 clip, UPDATE and DELETE of u2's rows;
#   * a claim left behind by an earlier transaction on the same connection
#     (a pooler's next client), by a rolled-back savepoint, by PREPARE
#     TRANSACTION; and a parallel plan, whose workers have no claim.
#
# Every attempt is followed by the count of u2's rows rs_confined can see
# in the five tables: it must be 0 each time.  The tokens are checked to be
# exactly HMAC-SHA256 (recomputed here with Perl's Digest::SHA).
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 61

db=dd_row_security
fresh_db "$db"

# as ROLE: psql as ROLE on stdin, unaligned, errors shown as SQLSTATEs.
as() { PGUSER=$1 psql -X -q -t -A -v VERBOSITY=sqlstate -d "$db" 2>&1; }
# state ROLE SQL: the SQLSTATE of SQL's first error, or "ok".
state() {
    local out
    out=$(PGUSER=$1 psql -X -q -t -A -v VERBOSITY=sqlstate -v ON_ERROR_STOP=1 -d "$db" -c "$2" 2>&1 >/dev/null)
    if [ -z "$out" ]; then echo ok; else printf '%s\n' "$out" | grep -oE '^ERROR: +[0-9A-Z]{5}' | head -1 | awk '{print $2}'; fi
}
# u2 rows visible: one SELECT summing u2's rows of the five tables.
U2="SELECT (SELECT count(*) FROM clips WHERE user_id = 'u2')
         + (SELECT count(*) FROM clip_tombstones WHERE user_id = 'u2')
         + (SELECT count(*) FROM api_credits WHERE user_id = 'u2')
         + (SELECT count(*) FROM api_usage_log WHERE user_id = 'u2')
         + (SELECT count(*) FROM usage_events WHERE user_id = 'u2') AS u2_rows"
U1="SELECT (SELECT count(*) FROM clips WHERE user_id = 'u1')
         + (SELECT count(*) FROM clip_tombstones WHERE user_id = 'u1')
         + (SELECT count(*) FROM api_credits WHERE user_id = 'u1')
         + (SELECT count(*) FROM api_usage_log WHERE user_id = 'u1')
         + (SELECT count(*) FROM usage_events WHERE user_id = 'u1') AS u1_rows"

q postgres "DROP ROLE IF EXISTS rs_confined" >/dev/null 2>&1
q postgres "DROP ROLE IF EXISTS rs_signer" >/dev/null 2>&1
q "$db" "
CREATE EXTENSION dd_clipper;
CREATE ROLE rs_confined LOGIN;
CREATE ROLE rs_signer LOGIN;
SELECT dd_grant_billing_role('rs_confined');
GRANT EXECUTE ON FUNCTION dd_purge_usage_events(interval, int, int) TO rs_confined;
GRANT USAGE ON SCHEMA public TO rs_signer;
GRANT EXECUTE ON FUNCTION dd_sign_claim(text, timestamptz) TO rs_signer;
-- Rows of both users in every per-user table.
SELECT dd_grant_credit(u, 100) FROM (VALUES ('u1'), ('u2')) v(u);
SELECT dd_charge_credit(u, 1, 'r-' || u) FROM (VALUES ('u1'), ('u2')) v(u);
SELECT dd_track_event(u, 'signed_in') FROM (VALUES ('u1'), ('u2')) v(u);
INSERT INTO clips (user_id, title) VALUES ('u1', 'mine'), ('u2', 'secret'), ('u2', 'deleted');
DELETE FROM clips WHERE title = 'deleted';
SELECT dd_enable_row_security();
" >/dev/null
ok $? "two users with rows in all five tables; row security on"
is "$(q "$db" "$U2")" 5 "u2 has 5 rows (the owner sees them)"
u2_key=$(q "$db" "SELECT key_id FROM dd_create_api_key('u2')")

# Tokens from the trusted signer.
sign() { PGUSER=rs_signer q "$db" "SELECT dd_sign_claim('$1', $2)"; }
t_u1=$(sign u1 "now() + interval '10 minutes'")
t_u2=$(sign u2 "now() + interval '10 minutes'")
[ -n "$t_u1" ] && [ -n "$t_u2" ]
ok $? "a trusted role that is granted dd_sign_claim signs claims"

# --- the claim itself -------------------------------------------------------

is "$(as rs_confined <<<"$U2")" 0 "no claim: none of u2's rows"
is "$(as rs_confined <<<"$U1")" 0 "no claim: none of u1's rows either"
is "$(as rs_confined <<SQL
BEGIN;
SELECT dd_set_claim('$t_u1');
$U1;
$U2;
COMMIT;
SQL
)" "u1
4
0" "a claim for u1: u1's 4 rows, none of u2's"

is "$(as rs_confined <<SQL
BEGIN;
SELECT dd_set_claim('$t_u1');
SET dd_clipper.user_id = 'u2';
SET LOCAL dd_clipper.user_id = 'u2';
SELECT set_config('dd_clipper.user_id', 'u2', false) IS NOT NULL;
$U2;
COMMIT;
SET dd_clipper.user_id = 'u2';
$U2;
RESET dd_clipper.user_id;
RESET ALL;
$U2;
SQL
)" "u1
t
0
0
0" "SET, SET LOCAL, set_config, RESET of dd_clipper.user_id: no u2 row"

q "$db" "ALTER ROLE rs_confined SET dd_clipper.user_id = 'u2'" >/dev/null
is "$(as rs_confined <<SQL
SELECT dd_claim_user_id() IS NULL;
CREATE FUNCTION pg_temp.u2_rows() RETURNS bigint LANGUAGE sql
    SET dd_clipper.user_id = 'u2' AS \$\$ $U2 \$\$;
SHOW dd_clipper.user_id;
SELECT pg_temp.u2_rows();
$U2;
SQL
)" "t
u2
0
0" "ALTER ROLE ... SET and a function's SET clause of dd_clipper.user_id: no u2 row"
q "$db" "ALTER ROLE rs_confined RESET dd_clipper.user_id" >/dev/null

is "$(as rs_confined <<SQL
CREATE FUNCTION pg_temp.dd_claim_user_id() RETURNS text LANGUAGE sql AS \$\$ SELECT 'u2' \$\$;
SET search_path = pg_temp, public;
BEGIN;
SELECT dd_set_claim('$t_u1');
$U2;
COMMIT;
SQL
)" "u1
0" "a shadow dd_claim_user_id() in pg_temp: the policies call the extension's"

is "$(state rs_confined "SELECT count(*) FROM row_security_keys")" 42501 "the keys cannot be read"
is "$(state rs_confined "SELECT dd_sign_claim('u2', now() + interval '1 minute')")" 42501 "the confined role cannot sign"
is "$(state rs_confined "SELECT dd_rotate_claim_key()")" 42501 "nor rotate a key"
is "$(state rs_confined "SET ROLE rs_signer")" 42501 "nor become the signer"
is "$(state rs_signer "SELECT count(*) FROM row_security_keys")" 42501 "the signer cannot read the keys either"

# --- forged tokens ------------------------------------------------------------

secret=$(q "$db" "SELECT encode(secret, 'hex') FROM row_security_keys WHERE key_id = 1")
# token KEY_ID EXPIRES_UNIX USER SECRET_HEX: a claim as claim_codec.h lays it
# out, signed here with HMAC-SHA256.
token() {
    perl -MDigest::SHA=hmac_sha256 -MMIME::Base64 -e '
        my ($kid, $exp, $user, $hex) = @ARGV;
        sub b64u { my $s = encode_base64($_[0], ""); $s =~ tr{+/}{-_}; $s =~ s/=+$//; $s }
        my $us = ($exp - 946684800) * 1000000;
        my $signed = "ddc1." . b64u(pack("N", $kid) . pack("q>", $us) . $user);
        print $signed, ".", b64u(hmac_sha256($signed, pack("H*", $hex)));
    ' "$@"
}
in_10min=$(( $(date +%s) + 600 ))
is "$(PGUSER=rs_signer q "$db" "SELECT dd_sign_claim('u1', '2099-01-01 00:00:00+00')")" \
   "$(token 1 4070908800 u1 "$secret")" "a token is exactly HMAC-SHA256 of its signed part under the key"
is "$(as rs_confined <<SQL
SELECT dd_set_claim('$(token 1 "$in_10min" u1 "$secret")');
SQL
)" u1 "a token made outside with the real secret verifies (positive control)"

# u1's token with the payload changed to u2, the MAC kept.
forged=$(perl -MMIME::Base64 -e '
    my ($t) = @ARGV; my (undef, $p, $m) = split /\./, $t;
    $p =~ tr{-_}{+/}; my $raw = decode_base64($p . "=" x ((4 - length($p) % 4) % 4));
    substr($raw, 12) = "u2";
    my $s = encode_base64($raw, ""); $s =~ tr{+/}{-_}; $s =~ s/=+$//;
    print "ddc1.$s.$m";' "$t_u1")
attempt() {   # attempt DESCRIPTION TOKEN EXPECTED_STATE
    is "$(state rs_confined "SELECT dd_set_claim('$2')")" "$3" "$1: $3"
    is "$(as rs_confined <<SQL
BEGIN;
SELECT dd_set_claim('$t_u1');
SAVEPOINT s;
SELECT dd_set_claim('$2');
ROLLBACK TO s;
SELECT dd_claim_user_id();
$U2;
COMMIT;
SQL
)" "u1
ERROR:  $3
u1
0" "$1, then the claim is still u1's and no u2 row is seen"
}
attempt "u1's token with its user changed to u2" "$forged" 28000
attempt "a token for u2 signed with a guessed secret" "$(token 1 "$in_10min" u2 "$(printf '%064d' 7)")" 28000
attempt "a token for u2 under an unknown key id" "$(token 99 "$in_10min" u2 "$secret")" 28000
attempt "u2's real token truncated by one character" "${t_u2%?}" 28000
attempt "a token for u2 signed with the real secret, expired" "$(token 1 $(( $(date +%s) - 1 )) u2 "$secret")" 28000
is "$(state rs_confined "SELECT dd_set_claim('')")" 28000 "an empty token: 28000"
is "$(state rs_confined "SELECT dd_set_claim(NULL)")" 22004 "a NULL token: 22004"

t_short=$(sign u1 "clock_timestamp() + interval '4 seconds'")
is "$(state rs_confined "SELECT dd_set_claim('$t_short')")" ok "a token that expires in 4 s verifies now"
sleep 4.2
is "$(state rs_confined "SELECT dd_set_claim('$t_short')")" 28000 "and is refused after its expiry: 28000"
is "$(state rs_signer "SELECT dd_sign_claim('u1', now() - interval '1 second')")" 22023 "a claim that expired already cannot be signed"

# Rotation: the new key signs, the old verifies until retired.
t_old=$(sign u1 "now() + interval '10 minutes'")
new_key=$(q "$db" "SELECT dd_rotate_claim_key()")
is "$new_key" 2 "dd_rotate_claim_key() makes key 2"
t_new=$(sign u1 "now() + interval '10 minutes'")
[ "${t_new:5:6}" = "AAAAAg" ]
ok $? "claims are signed with the new key from then on"
is "$(state rs_confined "SELECT dd_set_claim('$t_old')")" ok "a claim of the old key still verifies"
is "$(q "$db" "SELECT dd_retire_claim_key(1)")" t "dd_retire_claim_key(1) retires it"
is "$(state rs_confined "SELECT dd_set_claim('$t_old')")" 28000 "a claim of the retired key is refused"
is "$(as rs_confined <<SQL
BEGIN;
SELECT dd_set_claim('$t_new');
$U2;
COMMIT;
SQL
)" "u1
0" "a claim of the new key verifies"
t_u2=$(sign u2 "now() + interval '10 minutes'")

# --- functions ------------------------------------------------------------------

fn() {   # fn SQL EXPECTED DESCRIPTION: SQL run with u1's claim, in one transaction
    is "$(state rs_confined "SELECT dd_set_claim('$t_new'); $1")" "$2" "$3"
}
fn "SELECT dd_credit_balance('u2')" 42501 "dd_credit_balance for u2: refused"
fn "SELECT dd_charge_credit('u2', 1)" 42501 "dd_charge_credit for u2: refused"
fn "SELECT dd_grant_credit('u2', 1)" 42501 "dd_grant_credit for u2: refused, though the role may grant"
fn "SELECT dd_refund_credit('u2', 'r-u2')" 42501 "dd_refund_credit for u2: refused"
fn "SELECT dd_log_usage('u2', '/x')" 42501 "dd_log_usage for u2: refused"
fn "SELECT dd_track_event('u2', 'x')" 42501 "dd_track_event for u2: refused"
fn "SELECT dd_track_events('[{\"user_id\": \"u1\", \"event\": \"a\"}, {\"user_id\": \"u2\", \"event\": \"b\"}]')" 42501 \
   "dd_track_events with one u2 event among u1's: refused, nothing stored"
fn "SELECT * FROM dd_create_api_key('u2')" 42501 "dd_create_api_key for u2: refused"
fn "SELECT dd_revoke_api_key($u2_key)" P0002 "dd_revoke_api_key of u2's key: no such key"
fn "SELECT count(*) FROM dd_credit_audit()" 42501 "dd_credit_audit (every user's balances): refused"
fn "SELECT dd_purge_usage_events('1 second', 1000, NULL)" 42501 "a purge (every user's rows): refused"
is "$(state rs_confined "SELECT dd_credit_balance('u1')")" 42501 "without a claim, even u1's balance is refused"
fn "SELECT dd_credit_balance('u1'), dd_charge_credit('u1', 1)" ok "with the claim, u1's own calls work"
is "$(as rs_confined <<SQL
BEGIN;
SELECT dd_set_claim('$t_new');
SELECT jsonb_array_length(dd_clips_page('u2') -> 'page'), jsonb_array_length(dd_clip_changes('u2') -> 'changes');
SELECT jsonb_array_length(dd_clips_page('u1') -> 'page');
UPDATE clips SET title = 'pwned' WHERE user_id = 'u2';
DELETE FROM clips WHERE user_id = 'u2';
COMMIT;
SQL
)" "u1
0|0
1" "dd_clips_page and dd_clip_changes for u2: empty; UPDATE and DELETE of u2's clips touch nothing"
is "$(state rs_confined "SELECT dd_set_claim('$t_new'); INSERT INTO clips (user_id, title) VALUES ('u2', 'planted')")" 42501 \
   "an INSERT of a u2 clip: refused by the policy's check"
is "$(q "$db" "SELECT count(*) FROM clips WHERE user_id = 'u2' AND title = 'secret'") $(q "$db" "SELECT balance FROM api_credits WHERE user_id = 'u2'")" \
   "1 99" "u2's clip and balance are untouched"

# --- claims left behind ------------------------------------------------------------

# One connection, as a transaction-mode pooler hands it on: the trusted
# application sets u2's claim for its transaction; the next client on the
# same connection (here SET ROLE to the confined role) gets nothing.
is "$(as postgres <<SQL
BEGIN;
SELECT dd_set_claim('$t_u2');
COMMIT;
SET ROLE rs_confined;
$U2;
RESET ROLE;
BEGIN;
SELECT dd_set_claim('$t_u2');
ROLLBACK;
SET ROLE rs_confined;
$U2;
SQL
)" "u2
0
u2
0" "a claim ends with its transaction, committed or rolled back: the connection's next user sees no u2 row"

is "$(as postgres <<SQL
BEGIN;
SET LOCAL ROLE rs_confined;
SELECT dd_set_claim('$t_new');
SAVEPOINT s;
SELECT dd_set_claim('$t_u2');
ROLLBACK TO s;
SELECT dd_claim_user_id();
$U2;
SAVEPOINT t;
SELECT dd_set_claim('$t_u2');
RELEASE t;
SELECT dd_claim_user_id();
COMMIT;
SQL
)" "u1
u2
u1
0
u2
u2" "a claim set in a savepoint is undone by ROLLBACK TO, kept by RELEASE"

is "$(as postgres <<SQL
BEGIN;
SELECT dd_set_claim('$t_u2');
PREPARE TRANSACTION 'rs';
SELECT dd_claim_user_id() IS NULL;
COMMIT PREPARED 'rs';
SQL
)" "u2
t" "PREPARE TRANSACTION ends the claim"

# Parallel query: the claim lives in the leader's memory, so the policy's
# function is PARALLEL RESTRICTED and never runs in a worker (where it
# would answer NULL); with every parallel cost at 0 and only sequential
# scans allowed, the count is still exactly u1's.
q "$db" "INSERT INTO clips (user_id, title) SELECT CASE WHEN g % 2 = 0 THEN 'u1' ELSE 'u2' END, 'p' || g FROM generate_series(1, 20000) g; ANALYZE clips" >/dev/null
is "$(q "$db" "SELECT proparallel FROM pg_proc WHERE oid = 'dd_claim_user_id()'::regprocedure")" r \
   "dd_claim_user_id() is PARALLEL RESTRICTED"
is "$(as rs_confined <<SQL
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET enable_indexscan = off;
SET enable_indexonlyscan = off; SET enable_bitmapscan = off;
BEGIN;
SELECT dd_set_claim('$t_new');
SELECT count(*), count(*) FILTER (WHERE user_id = 'u2') FROM clips;
COMMIT;
SQL
)" "u1
10001|0" "with parallel query as cheap as it gets, the confined role sees exactly u1's clips"

# A database still on 1.0, with this library: 1.0's behaviour whole until
# ALTER EXTENSION UPDATE (its policies read the setting, its functions
# are not confined); then the claim.
db10=dd_row_security_10
fresh_db "$db10"
q "$db10" "CREATE EXTENSION dd_clipper VERSION '1.0';
SELECT dd_grant_app_role('rs_confined');
INSERT INTO clips (user_id, title) VALUES ('u1', 'a'), ('u2', 'b');
SELECT dd_enable_row_security();" >/dev/null
is "$(PGUSER=rs_confined psql -X -q -t -A -d "$db10" -c "SET dd_clipper.user_id = 'u1'" -c "SELECT count(*) FROM clips" -c "SELECT (dd_charge_credit('u2', 0)).ok")" \
   "1
f" "on 1.0 the setting still selects the rows, and the functions are not confined"
q "$db10" "ALTER EXTENSION dd_clipper UPDATE" >/dev/null
is "$(PGUSER=rs_confined psql -X -q -t -A -v VERBOSITY=sqlstate -d "$db10" -c "SET dd_clipper.user_id = 'u1'" -c "SELECT count(*) FROM clips" -c "SELECT (dd_charge_credit('u2', 0)).ok" 2>&1)" \
   "0
ERROR:  42501" "after ALTER EXTENSION UPDATE, the setting selects nothing and the functions are confined"
q postgres "DROP DATABASE $db10" >/dev/null

# The server is still up.
is "$(q "$db" "SELECT 1")" 1 "the server is still up"

q "$db" "DROP EXTENSION dd_clipper" >/dev/null
for s in "DROP DATABASE $db" "DROP ROLE rs_confined" "DROP ROLE rs_signer"; do
    q postgres "$s" >/dev/null 2>&1
done
done_testing
