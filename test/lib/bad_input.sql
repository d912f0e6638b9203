-- test/lib/bad_input.sql -- the cases of test/t/070_bad_input.sh: every
-- function of the extension (found through pg_depend, so a new function
-- is covered without editing this file) called once with good arguments
-- and then once per (argument, bad input) with that one argument bad.
--
-- Prints one line per case, tab-separated:
--   function  argument  class  kind  call
-- kind is f (a function, run in a transaction that is rolled back) or p (a
-- procedure, CALLed on its own: it may commit).  call is one line of SQL.
--
-- Good values come, first match wins, from: good_by_function (function,
-- argument), good_by_name (argument), good_by_type (type).  Bad values
-- from bad_by_type (every argument of the type) and bad_by_name (the
-- arguments of that name, for inputs that only mean something there:
-- cursors, keys, claims, SQL fragments, relations).  Values that must be
-- made first (a real key, cursor, claim) are read from the fixture table
-- bad_fixture, which the test fills.

WITH
fn AS (
    SELECT p.oid, p.proname, p.prokind, p.prorettype,
           p.oid::regprocedure::text AS sig,
           COALESCE(p.proallargtypes::oid[], p.proargtypes::oid[]) AS types,
           COALESCE(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])) AS modes,
           COALESCE(p.proargnames, array_fill(''::text, ARRAY[p.pronargs])) AS names
      FROM pg_proc p
      JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
),
-- The arguments a call passes: IN, INOUT and VARIADIC, in order.
arg AS (
    SELECT fn.oid, a.pos, a.name, a.type::regtype::text AS type,
           row_number() OVER (PARTITION BY fn.oid ORDER BY a.pos) AS n
      FROM fn, unnest(fn.names, fn.types, fn.modes) WITH ORDINALITY AS a(name, type, mode, pos)
     WHERE a.mode IN ('i', 'b', 'v')
),
good_by_function(proname, name, expr) AS (VALUES
    ('dd_refund_credit', 'request_id', $$'req-refund'$$),
    ('dd_revoke_api_key', 'key_id', $$(SELECT v::bigint FROM bad_fixture WHERE k = 'key_id')$$),
    ('dd_retire_claim_key', 'key_id', $$1$$),
    ('dd_create_api_key', 'name', $$'laptop'$$),
    ('dd_migration_create', 'name', $$'m_new'$$),
    ('dd_migration_create', 'relation', $$'bad_docs'::regclass$$),
    ('dd_migration_create', 'set_sql', $$'n = 2'$$),
    ('dd_migration_create', 'where_sql', $$'n = 1'$$),
    ('dd_migration_create', 'batch_size', $$100$$),
    ('dd_migration_run', 'name', $$'m_fixture'$$),
    ('dd_migration_start', 'name', $$'m_fixture'$$),
    ('dd_migration_cancel', 'name', $$'m_fixture'$$),
    ('dd_migration_drop', 'name', $$'m_fixture'$$),
    ('dd_migration_dry_run', 'name', $$'m_fixture'$$),
    ('dd_migration_remaining', 'name', $$'m_fixture'$$),
    ('dd_enable_row_security', 'enable', $$false$$),
    ('dd_convex_import_table', 'table_name', $$'clips'$$),
    ('dd_convex_import_table', 'documents', $$'bad_convex_docs'::regclass$$)
),
good_by_name(name, expr) AS (VALUES
    ('user_id', $$'u1'$$),
    ('amount', $$1$$),
    ('request_id', $$NULL$$),
    ('endpoint', $$'/x'$$),
    ('api_key_id', $$NULL$$),
    ('metadata', $$'{"m": 1}'::jsonb$$),
    ('api_key', $$(SELECT v FROM bad_fixture WHERE k = 'api_key')$$),
    ('name', $$'n1'$$),
    ('expires_at', $$now() + interval '1 day'$$),
    ('reason', $$'r'$$),
    ('idempotency_key', $$NULL$$),
    ('since', $$0$$),
    ('max', $$10$$),
    ('page_size', $$10$$),
    ('cursor', $$NULL$$),
    ('search', $$NULL$$),
    ('tags', $$NULL$$),
    ('status', $$NULL$$),
    ('sort', $$'newest'$$),
    ('role', $$'bad_input_role'$$),
    ('older_than', $$'30 days'::interval$$),
    ('batch_size', $$100$$),
    ('max_batches', $$NULL$$),
    ('deleted', $$NULL$$),
    ('keep_previous', $$true$$),
    ('token', $$(SELECT v FROM bad_fixture WHERE k = 'token')$$),
    ('event', $$'e'$$),
    ('properties', $$'{}'::jsonb$$),
    ('event_id', $$NULL$$),
    ('occurred_at', $$now()$$),
    ('events', $$'[{"user_id": "u1", "event": "e"}]'::jsonb$$),
    ('run_after', $$NULL$$),
    ('keep_in_step', $$false$$)
),
good_by_type(type, expr) AS (VALUES
    ('text', $$'x'$$),
    ('integer', $$1$$),
    ('bigint', $$1$$),
    ('boolean', $$true$$),
    ('jsonb', $$'{}'::jsonb$$),
    ('timestamp with time zone', $$now()$$),
    ('interval', $$'1 day'::interval$$),
    ('text[]', $$'{}'::text[]$$),
    ('regclass', $$'bad_docs'::regclass$$),
    ('name', $$'bad_input_role'::name$$)
),
-- Bad inputs.  class names the column of the README's table: NULL, empty,
-- 1 MB, negative, zero, minimum, maximum; anything else goes to "other".
bad_by_type(type, ord, class, expr) AS (VALUES
    ('text', 1, 'NULL', $$NULL::text$$),
    ('text', 2, 'empty', $$''$$),
    ('text', 3, '1 MB', $$repeat('x', 1048576)$$),
    ('text', 4, 'multibyte, 1,025 characters', $$repeat('é', 1025)$$),
    ('integer', 1, 'NULL', $$NULL::integer$$),
    ('integer', 5, 'negative', $$-1$$),
    ('integer', 6, 'zero', $$0$$),
    ('integer', 7, 'minimum', $$(-2147483648)::integer$$),
    ('integer', 8, 'maximum', $$2147483647$$),
    ('bigint', 1, 'NULL', $$NULL::bigint$$),
    ('bigint', 5, 'negative', $$-1::bigint$$),
    ('bigint', 6, 'zero', $$0::bigint$$),
    ('bigint', 7, 'minimum', $$(-9223372036854775808)::bigint$$),
    ('bigint', 8, 'maximum', $$9223372036854775807::bigint$$),
    ('boolean', 1, 'NULL', $$NULL::boolean$$),
    ('jsonb', 1, 'NULL', $$NULL::jsonb$$),
    ('jsonb', 3, '1 MB', $$jsonb_build_object('k', repeat('x', 1048576))$$),
    ('jsonb', 10, 'malformed JSON', $$'{"a": '::jsonb$$),
    ('jsonb', 11, 'JSON array', $$'[1, 2]'::jsonb$$),
    ('jsonb', 12, 'JSON string', $$'"x"'::jsonb$$),
    ('jsonb', 13, 'JSON null', $$'null'::jsonb$$),
    ('jsonb', 14, 'JSON object', $$'{"x": 1}'::jsonb$$),
    ('jsonb', 15, 'array of 10,000 objects', $$(SELECT jsonb_agg(jsonb_build_object('user_id', 'u' || g, 'event', 'e')) FROM generate_series(1, 10000) g)$$),
    ('jsonb', 16, 'nested 5,000 deep', $$(repeat('[', 5000) || repeat(']', 5000))::jsonb$$),
    ('timestamp with time zone', 1, 'NULL', $$NULL::timestamptz$$),
    ('timestamp with time zone', 20, 'infinity', $$'infinity'::timestamptz$$),
    ('timestamp with time zone', 21, '-infinity', $$'-infinity'::timestamptz$$),
    ('timestamp with time zone', 22, 'in the past', $$'2000-01-01 00:00:00+00'::timestamptz$$),
    ('interval', 1, 'NULL', $$NULL::interval$$),
    ('interval', 5, 'negative', $$'-1 day'::interval$$),
    ('interval', 6, 'zero', $$'0'::interval$$),
    ('interval', 8, 'maximum', $$'178000000 years'::interval$$),
    ('text[]', 1, 'NULL', $$NULL::text[]$$),
    ('text[]', 2, 'empty', $$'{}'::text[]$$),
    ('text[]', 3, '1 MB', $$ARRAY[repeat('x', 1048576)]$$),
    ('text[]', 30, 'a NULL element', $$'{a,NULL}'::text[]$$),
    ('text[]', 31, 'an empty element', $$'{""}'::text[]$$),
    ('text[]', 32, 'two-dimensional', $$'{{a},{b}}'::text[]$$),
    ('text[]', 33, '100,000 elements', $$(SELECT array_agg('t' || g) FROM generate_series(1, 100000) g)$$),
    ('regclass', 1, 'NULL', $$NULL::regclass$$),
    ('regclass', 6, 'zero', $$0::oid::regclass$$),
    ('regclass', 40, 'no such relation', $$2000000000::oid::regclass$$),
    ('regclass', 41, 'system catalog', $$'pg_catalog.pg_class'::regclass$$),
    ('name', 1, 'NULL', $$NULL::name$$),
    ('name', 2, 'empty', $$''::name$$),
    ('name', 3, '1 MB', $$repeat('x', 1048576)::name$$),
    ('name', 50, 'no such role', $$'bad_input_no_role'::name$$)
),
bad_by_name(name, ord, class, expr) AS (VALUES
    ('cursor', 60, 'malformed cursor', $$'not a cursor'$$),
    ('cursor', 61, 'cursor, one character changed', $$(SELECT v FROM bad_fixture WHERE k = 'cursor_tampered')$$),
    ('cursor', 62, 'cursor of another user', $$(SELECT v FROM bad_fixture WHERE k = 'cursor_other')$$),
    ('api_key', 60, 'malformed key', $$'ddk_x'$$),
    ('api_key', 61, 'key, one character changed', $$(SELECT v FROM bad_fixture WHERE k = 'api_key_tampered')$$),
    ('api_key', 62, 'key never issued', $$(SELECT v FROM bad_fixture WHERE k = 'api_key_unknown')$$),
    ('api_key', 63, 'revoked key', $$(SELECT v FROM bad_fixture WHERE k = 'api_key_revoked')$$),
    ('token', 60, 'malformed claim', $$'ddc1.x.y'$$),
    ('token', 61, 'claim, one character changed', $$(SELECT v FROM bad_fixture WHERE k = 'token_tampered')$$),
    ('token', 62, 'expired claim', $$(SELECT v FROM bad_fixture WHERE k = 'token_expired')$$),
    ('set_sql', 60, 'SQL syntax error', $$'n ='$$),
    ('set_sql', 61, 'a second statement', $$'n = 1; DROP TABLE clips'$$),
    ('set_sql', 62, 'no such column', $$'nope = 1'$$),
    ('where_sql', 60, 'SQL syntax error', $$'n ='$$),
    ('where_sql', 61, 'breaks out of its parentheses', $$'true) OR (true'$$),
    ('where_sql', 62, 'not boolean', $$'n + 1'$$),
    ('relation', 60, 'a view', $$'bad_view'::regclass$$),
    ('relation', 61, 'no primary key', $$'bad_nopk'::regclass$$),
    ('sort', 60, 'unknown sort', $$'sideways'$$),
    ('table_name', 60, 'not a table the import knows', $$'notes'$$),
    ('documents', 60, 'a table of other columns', $$'bad_docs'::regclass$$),
    ('documents', 61, 'doc not text', $$'bad_convex_jsonb'::regclass$$),
    ('name', 60, 'unknown name', $$'bad_input_no_such'$$),
    ('run_after', 60, 'unknown name', $$'bad_input_no_such'$$),
    ('request_id', 60, 'never charged', $$'req-never'$$),
    ('events', 60, 'an element that is not an object', $$'[1]'::jsonb$$),
    ('events', 61, 'an element without user_id', $$'[{"event": "e"}]'::jsonb$$),
    ('events', 62, 'an unknown key', $$'[{"user_id": "u1", "event": "e", "x": 1}]'::jsonb$$),
    ('events', 63, 'occurred_at not a time', $$'[{"user_id": "u1", "event": "e", "occurred_at": "yesterday-ish"}]'::jsonb$$),
    ('events', 64, 'user_id of 1 MB', $$jsonb_build_array(jsonb_build_object('user_id', repeat('x', 1048576), 'event', 'e'))$$)
),
good AS (
    SELECT arg.oid, arg.n, arg.name, arg.type,
           COALESCE(gf.expr, gn.expr, gt.expr, 'NULL') AS expr
      FROM arg
      JOIN fn ON fn.oid = arg.oid
      LEFT JOIN good_by_function gf ON gf.proname = fn.proname AND gf.name = arg.name
      LEFT JOIN good_by_name gn ON gn.name = arg.name
      LEFT JOIN good_by_type gt ON gt.type = arg.type
),
cases AS (
    -- Every function with good arguments.
    SELECT fn.oid, 0 AS n, '' AS argname, 0 AS ord, 'valid call' AS class, 0 AS bad_n, NULL::text AS bad_expr
      FROM fn
    UNION ALL
    SELECT a.oid, a.n, a.name, b.ord, b.class, a.n, b.expr
      FROM arg a JOIN bad_by_type b ON b.type = a.type
    UNION ALL
    SELECT a.oid, a.n, a.name, b.ord, b.class, a.n, b.expr
      FROM arg a JOIN bad_by_name b ON b.name = a.name
)
SELECT fn.sig,
       CASE WHEN c.argname = '' THEN '' ELSE c.argname END,
       c.class,
       fn.prokind,
       CASE WHEN fn.prokind = 'p' THEN 'CALL ' ELSE 'SELECT * FROM ' END
       || quote_ident(fn.proname) || '('
       || COALESCE((SELECT string_agg(CASE WHEN g.n = c.bad_n THEN c.bad_expr ELSE g.expr END, ', ' ORDER BY g.n)
                      FROM good g WHERE g.oid = fn.oid), '')
       || ')'
  FROM cases c
  JOIN fn ON fn.oid = c.oid
 ORDER BY fn.proname, fn.sig, c.n, c.ord, c.class;
