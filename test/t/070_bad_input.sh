#!/usr/bin/env bash
# test/t/070_bad_input.sh -- every function x bad input, and the SQLSTATE
# each gets.
#
# test/lib/bad_input.sql lists the cases from the catalog: every function
# of the extension (found through pg_depend, so a new function is covered
# without editing anything) called with good arguments, then once per
# argument and bad input -- NULL, empty, 1 MB, multibyte over every limit,
# negative, zero, the type's minimum and maximum, infinities, malformed and
# wrongly shaped JSON, tampered cursors, keys and claims, SQL fragments
# that try to escape, relations that do not exist -- with the others good.
# Functions run in a transaction that is rolled back; procedures, which
# commit, are CALLed on their own.  Fixtures make the good calls real: a
# user with credit and a charged request, keys, a claim, clips and their
# cursors, a table and a migration on it (dd_migration_start's worker is
# waited for after each call), a staged Convex export for
# dd_convex_import_table.
#
# Asserts: every case ran and reported a SQLSTATE; none is XX000 (an
# internal error: a bad input must get a clear one); the server never
# crashed (still up, and its log has no "terminated by signal"); every
# good call succeeds (trigger functions aside); and the table of (function,
# argument, input, SQLSTATE) is exactly test/t/070_bad_input.expected, and
# its rendering is exactly the README's table between the bad-input
# markers.  DD_BLESS=1 rewrites both from this run, for a human to review
# with git diff.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 8

db=dd_bad_input
expected=$DD_ROOT/test/t/070_bad_input.expected
readme=$DD_ROOT/README.md
work=$DD_ROOT/tmp_check/bad_input
mkdir -p "$work"
fresh_db "$db"
q postgres "DROP ROLE IF EXISTS bad_input_role" >/dev/null 2>&1

# The server log, to find crashes from here on.
datadir=$(q postgres "SHOW data_directory")
serverlog=${DD_DATADIR:-$datadir}/server.log
log_from=$(stat -c %s "$serverlog" 2>/dev/null || echo 0)

psql -X -q -v ON_ERROR_STOP=1 -d "$db" >"$work/fixture.log" 2>&1 <<'SQL'
CREATE EXTENSION dd_clipper;
CREATE ROLE bad_input_role;
CREATE TABLE bad_fixture (k text PRIMARY KEY, v text NOT NULL);
CREATE TABLE bad_docs (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO bad_docs (id) SELECT g FROM generate_series(1, 10) g;
CREATE VIEW bad_view AS SELECT * FROM bad_docs;
CREATE TABLE bad_nopk (n int);
-- What bin/dd_convex_import stages: one line of an export per row.
CREATE TABLE bad_convex_docs (file text, line bigint, doc text);
INSERT INTO bad_convex_docs VALUES
  ('clips/documents.jsonl', 1, '{"_id": "k1", "_creationTime": 1777907009446.7734, "userId": "u1", "title": "t"}'),
  ('clips/documents.jsonl', 2, '{"_id": '),
  ('clips/generated_schema.jsonl', 1, '"{...}"');
CREATE TABLE bad_convex_jsonb (file text, line bigint, doc jsonb);
SELECT dd_migration_create('m_fixture', 'bad_docs', 'n = 1', 'n = 0', 100);
SELECT dd_grant_credit('u1', 1000000);
SELECT dd_charge_credit('u1', 1, 'req-refund');
SELECT dd_track_event('u1', 'e');
INSERT INTO clips (user_id, title) SELECT 'u1', 'clip ' || g FROM generate_series(1, 3) g;
INSERT INTO clips (user_id, title) VALUES ('u2', 'other');
-- one character of t changed, at position i
CREATE FUNCTION bad_change(t text, i int) RETURNS text LANGUAGE sql AS
  $$ SELECT overlay(t PLACING CASE substr(t, i, 1) WHEN 'A' THEN 'B' ELSE 'A' END FROM i FOR 1) $$;
INSERT INTO bad_fixture SELECT 'api_key', api_key FROM dd_create_api_key('u1', 'good');
INSERT INTO bad_fixture SELECT 'key_id', key_id::text FROM dd_create_api_key('u1', 'revoked in a rollback');
INSERT INTO bad_fixture SELECT 'api_key_revoked', api_key FROM dd_create_api_key('u1', 'revoked');
SELECT dd_revoke_api_key(id) FROM api_keys WHERE name = 'revoked';
INSERT INTO bad_fixture SELECT 'api_key_tampered', bad_change(v, 20) FROM bad_fixture WHERE k = 'api_key';
BEGIN;
SELECT api_key AS unknown_key FROM dd_create_api_key('u1') \gset
ROLLBACK;
INSERT INTO bad_fixture VALUES ('api_key_unknown', :'unknown_key');
INSERT INTO bad_fixture SELECT 'token', dd_sign_claim('u1', now() + interval '1 day');
INSERT INTO bad_fixture SELECT 'token_tampered', bad_change(v, 12) FROM bad_fixture WHERE k = 'token';
INSERT INTO bad_fixture SELECT 'token_expired', dd_sign_claim('u1', clock_timestamp() + interval '1 second');
INSERT INTO bad_fixture SELECT 'cursor_tampered', bad_change(dd_clips_page('u1', 1) ->> 'continueCursor', 20);
INSERT INTO bad_fixture SELECT 'cursor_other', dd_clips_page('u2', 1) ->> 'continueCursor';
-- Wait until no migration worker runs (after dd_migration_start).
CREATE FUNCTION bad_input_wait_workers() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                               WHERE backend_type = 'dd_clipper migration');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT pg_sleep(1.1);   -- token_expired expires
SQL
ok $? "fixtures: a user with credit, keys, a claim, clips and cursors, a migration"
[ $? -eq 0 ] || sed 's/^/# /' "$work/fixture.log"

# The cases, and a psql script that runs each and echoes its SQLSTATE.
psql -X -q -t -A -F $'\t' -v ON_ERROR_STOP=1 -d "$db" -f "$DD_ROOT/test/lib/bad_input.sql" \
    >"$work/cases.tsv" 2>"$work/cases.err"
ncases=$(grep -c . "$work/cases.tsv")
awk -F'\t' '
    BEGIN { print "\\o /dev/null"; print "SET statement_timeout = '\''120s'\'';" }
    {
        if ($4 == "f") print "BEGIN;";
        print $5 ";";
        print "\\set st :SQLSTATE";
        if ($4 == "f") print "ROLLBACK;";
        printf "\\echo @@ %d :st\n", NR;
        if ($1 ~ /^dd_migration_start\(/) print "SELECT bad_input_wait_workers();";
    }' "$work/cases.tsv" >"$work/cases.sql"

start=$(date +%s)
psql -X -q -d "$db" -v VERBOSITY=terse -f "$work/cases.sql" >"$work/run.out" 2>"$work/run.err"
diag "$ncases cases in $(( $(date +%s) - start )) s"

# function, argument, input, SQLSTATE (00000 is ok).
awk -F'\t' 'NR == FNR { st[$2] = $3; next }
    { s = (FNR in st) ? st[FNR] : "none"; if (s == "00000") s = "ok";
      printf "%s\t%s\t%s\t%s\n", $1, ($2 == "" ? "-" : $2), $3, s }' \
    <(sed -n 's/^@@ \([0-9]*\) \(.*\)$/x\t\1\t\2/p' "$work/run.out") "$work/cases.tsv" \
    | { printf 'function\targument\tinput\tsqlstate\n'; cat; } >"$work/table.tsv"

missing=$(awk -F'\t' 'NR > 1 && ($4 == "none" || $4 == "")' "$work/table.tsv")
is "$(grep -c '^@@ ' "$work/run.out")" "$ncases" "every one of the $ncases cases ran and reported its SQLSTATE"
[ -n "$missing" ] && printf '%s\n' "$missing" | head -20 | sed 's/^/#   /'

xx=$(awk -F'\t' '$4 ~ /^XX/' "$work/table.tsv")
[ -z "$xx" ]
ok $? "no input gets XX000 (an internal error)"
[ -n "$xx" ] && printf '%s\n' "$xx" | sed 's/^/#   /'

crashes=$(tail -c +$((log_from + 1)) "$serverlog" 2>/dev/null | grep -E 'terminated by signal|was terminated|server process .* exited with exit code [^0]')
is "$(q postgres "SELECT 'up'") ${crashes:-no crash}" "up no crash" "the server is up and its log shows no crash"
[ -n "$crashes" ] && printf '%s\n' "$crashes" | head -5 | sed 's/^/#   /'

# dd_distribute needs Citus, which this cluster has not: its good call must
# fail with exactly that (0A000), as its bad inputs do.
bad_valid=$(awk -F'\t' '$3 == "valid call" && $1 ~ /^dd_distribute\(/ { if ($4 != "0A000") print; next }
    $3 == "valid call" && $4 != "ok" && $1 !~ /^dd_(clips_stamp|clips_publish|clips_refuse_truncate|migration_keep_in_step)\(/' "$work/table.tsv")
[ -z "$bad_valid" ]
ok $? "the good call of every function (trigger functions aside; dd_distribute answers 0A000 without Citus) succeeds, so each bad input is tried on a call that works"
[ -n "$bad_valid" ] && printf '%s\n' "$bad_valid" | sed 's/^/#   /'

# The README's table: one row per (function, argument), a column per
# common input, every other input with its SQLSTATE in the last column.
render() {
    perl -F'\t' -lane '
        BEGIN {
            @cols = ("NULL", "empty", "1 MB", "negative", "zero", "minimum", "maximum");
            %col = map { $_ => 1 } @cols;
            print "| function | argument | ", join(" | ", @cols), " | other inputs |";
            print "|", "---|" x (@cols + 3);
        }
        next if $. == 1;
        my ($f, $a, $in, $st) = @F;
        if (!exists $seen{"$f\t$a"}) { push @rows, "$f\t$a"; $seen{"$f\t$a"} = {}; }
        if ($col{$in}) { $seen{"$f\t$a"}{$in} = $st; }
        elsif ($in eq "valid call") { push @{ $other{"$f\t$a"} }, $st; }
        else { push @{ $other{"$f\t$a"} }, "$in → $st"; }
        END {
            my $last = "";
            for my $r (@rows) {
                my ($f, $a) = split /\t/, $r;
                my $fs = $f eq $last ? "" : "`$f`";
                $last = $f;
                my $as = $a eq "-" ? "(all good)" : "`$a`";
                print "| $fs | $as | ", join(" | ", map { $seen{$r}{$_} // "" } @cols),
                      " | ", join("; ", @{ $other{$r} // [] }), " |";
            }
        }' "$1"
}
render "$work/table.tsv" >"$work/table.md"
begin='<!-- bad-input-table: generated by test/t/070_bad_input.sh (DD_BLESS=1 regenerates it) -->'
end='<!-- end of bad-input-table -->'
readme_table=$(awk -v b="$begin" -v e="$end" '$0 == e { on = 0 } on { print } $0 == b { on = 1 }' "$readme")

# Bless only a run whose checks above all passed.
if [ "${DD_BLESS:-0}" = 1 ] && [ "$_tap_failed" -gt 0 ]; then
    diag "DD_BLESS=1: not blessing a run with failures"
elif [ "${DD_BLESS:-0}" = 1 ]; then
    cp "$work/table.tsv" "$expected"
    awk -v b="$begin" -v e="$end" -v f="$work/table.md" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$readme" >"$work/README.md" && cp "$work/README.md" "$readme"
    diag "DD_BLESS=1: wrote $expected and the README's table; review them with git diff"
fi

diff -u "$expected" "$work/table.tsv" >"$work/table.diff"
ok $? "the table of (function, argument, input, SQLSTATE) is test/t/070_bad_input.expected"
[ -s "$work/table.diff" ] && head -40 "$work/table.diff" | sed 's/^/#   /'
readme_table=$(awk -v b="$begin" -v e="$end" '$0 == e { on = 0 } on { print } $0 == b { on = 1 }' "$readme")
[ -n "$readme_table" ] && [ "$readme_table" = "$(cat "$work/table.md")" ]
ok $? "the README's bad-input table is this table (DD_BLESS=1 regenerates both)"
is "$(awk -F'\t' 'NR > 1 { print $1 }' "$work/table.tsv" | sort -u | wc -l)" \
   "$(q "$db" "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper' WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'")" \
   "every function of the extension is in the table"

q "$db" "DROP EXTENSION dd_clipper" >/dev/null
q postgres "DROP DATABASE $db" >/dev/null
q postgres "DROP ROLE bad_input_role" >/dev/null
done_testing
