#!/usr/bin/env bash
# test/t/043_clips_plan.sh -- the plans dd_clips_page itself runs, not a
# copy of its query: auto_explain (contrib) logs every nested statement's
# plan as a NOTICE in JSON, and each plan of the page query is checked with
# jsonpath.  On one user with 20,000 clips among 200 users, the first page
# and page 300 newest first, and the first page oldest first, are each one
# scan of the (user_id, created_at, id) index in the sort's direction, page
# 300 starting at the cursor (a row comparison in the index condition), with
# no Sort, no sequential scan and no bitmap scan of clips: a deep page costs
# what the first does.
set -u
source "$DD_ROOT/test/lib/tap.bash"

plan 10

db=dd_clips_plan
fresh_db "$db"
q "$db" "
CREATE EXTENSION dd_clipper;
INSERT INTO clips (user_id, title, created_at)
SELECT CASE WHEN i % 2 = 0 THEN 'heavy' ELSE 'user' || (i % 199) END, 'bulk ' || i,
       '2025-01-01'::timestamptz + (i / 3) * interval '1 second'
FROM generate_series(1, 40000) i;
ANALYZE clips;
CREATE FUNCTION cursor_at(u text, size int, pages int) RETURNS text
LANGUAGE plpgsql AS \$\$
DECLARE c text;
BEGIN
    FOR i IN 1 .. pages - 1 LOOP
        c := dd_clips_page(u, size, c)->>'continueCursor';
    END LOOP;
    RETURN c;
END \$\$;" >/dev/null
ok $? "40,000 clips, 20,000 of them one user's"
deep=$(q "$db" "SELECT cursor_at('heavy', 50, 300)")

# plans CALL: the JSON plans of the page query (the one with the "dd rank"
# column) that one call of dd_clips_page ran, one per line.
plans() {
    psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" 2>&1 >/dev/null <<SQL | awk '
        /^NOTICE:  duration: .* plan:$/ { if (p != "") print p; p = ""; next }
        /^NOTICE:/ { if (p != "") print p; p = ""; next }
        { sub(/^[ \t]+/, ""); p = p $0 }
        END { if (p != "") print p }' | grep -F 'dd rank'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
SET auto_explain.log_format = json;
SET client_min_messages = notice;
SELECT $1;
SQL
}

# check_plan NAME JSON DIRECTION COND_REGEX WHAT
check_plan() {
    local name=$1 plan=$2 dir=$3 cond=$4 what=$5
    if [ -z "$plan" ]; then
        ok 1 "$name: auto_explain logged the page query's plan"
        ok 1 "$name: one $dir scan of clips_user_id_created_at_id_idx"
        ok 1 "$name: no Sort, no sequential or bitmap scan"
        return
    fi
    ok 0 "$name: auto_explain logged the page query's plan"
    is "$(q "$db" "SELECT count(*) FROM jsonb_path_query(\$j\$$plan\$j\$::jsonb,
                   'strict \$.**.\"Node Type\" ? (@ like_regex \"Scan\$\")')")|$(q "$db" "
                   SELECT jsonb_path_exists(\$j\$$plan\$j\$::jsonb,
                   'strict \$.** ? (@.\"Node Type\" == \"Index Scan\"
                                    && @.\"Index Name\" == \"clips_user_id_created_at_id_idx\"
                                    && @.\"Scan Direction\" == \"$dir\"
                                    && @.\"Index Cond\" like_regex \"$cond\")')")" \
       "2|t" "$name: one $dir scan of clips_user_id_created_at_id_idx, index condition $what"
    is "$(q "$db" "SELECT jsonb_path_query_array(\$j\$$plan\$j\$::jsonb,
                   'strict \$.**.\"Node Type\" ? (@ like_regex \"Sort|Seq Scan|Bitmap\")')")" \
       "[]" "$name: no Sort, no sequential or bitmap scan"
    [ "$(printf '%s\n' "$plan" | wc -l)" -eq 1 ] || diag "$name: more than one plan logged"
}

# The subquery scan over the LIMIT counts as the other "Scan" node.
p=$(plans "dd_clips_page('heavy', 50)")
check_plan "newest, page 1" "$p" Backward "^\\\\(user_id = " "on user_id"
p=$(plans "dd_clips_page('heavy', 50, '$deep')")
check_plan "newest, page 300" "$p" Backward "ROW\\\\(created_at, id\\\\) < ROW" "on user_id and (created_at, id) < the cursor"
p=$(plans "dd_clips_page('heavy', 50, sort => 'oldest')")
check_plan "oldest, page 1" "$p" Forward "^\\\\(user_id = " "on user_id"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
