--
-- test/lib/catalog.sql -- every catalog fact about the installed dd_clipper
-- that a user or a client can observe, one line each, sorted, without OIDs.
--
-- test/t/015_upgrade.sh runs it on a database upgraded from an earlier
-- release and on a fresh install of the latest one, and diffs the two:
-- members of the extension; functions and procedures with their full
-- definitions, volatility, security and privileges; tables, views and
-- sequences with their columns, defaults, identity, options, privileges and
-- row security; indexes, constraints, triggers and policies; composite
-- types; comments on all of them; and the extension's extconfig.
--
-- Run with psql -X -A -t (one fact per line).
--
SET search_path = pg_catalog;

WITH ext AS (
    SELECT oid, extnamespace FROM pg_extension WHERE extname = 'dd_clipper'
),
member AS (
    SELECT d.classid, d.objid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass
       AND d.refobjid = ext.oid
       AND d.deptype = 'e'
),
rel AS (
    SELECT c.oid, c.relname, c.relkind::text
      FROM pg_class c
     WHERE c.oid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass)
),
fn AS (
    SELECT p.oid
      FROM pg_proc p
     WHERE p.oid IN (SELECT objid FROM member WHERE classid = 'pg_proc'::regclass)
),
facts(fact) AS (
    -- what the extension is made of
    SELECT 'member ' || pg_describe_object(classid, objid, 0)
      FROM member
    UNION ALL
    SELECT 'extension ' || e.extname || ' schema ' || e.extnamespace::regnamespace
           || ' relocatable ' || e.extrelocatable
           || ' config ' || coalesce((SELECT string_agg(x::regclass::text, ',' ORDER BY n)
                                        FROM unnest(e.extconfig) WITH ORDINALITY u(x, n)), '')
           || ' conditions ' || coalesce(array_to_string(e.extcondition, '|'), '')
      FROM pg_extension e WHERE e.extname = 'dd_clipper'
    -- functions and procedures
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure
           || ' kind ' || p.prokind::text || ' volatile ' || p.provolatile::text
           || ' strict ' || p.proisstrict || ' definer ' || p.prosecdef
           || ' leakproof ' || p.proleakproof || ' parallel ' || p.proparallel::text
           || ' cost ' || p.procost || ' rows ' || p.prorows
           || ' config ' || coalesce(array_to_string(p.proconfig, ','), '')
           || ' acl ' || coalesce(p.proacl::text, 'default')
           || ' owner_is_ext_owner ' || (p.proowner = (SELECT extowner FROM pg_extension WHERE extname = 'dd_clipper'))
      FROM pg_proc p WHERE p.oid IN (SELECT oid FROM fn)
    UNION ALL
    SELECT 'function body ' || p.oid::regprocedure || E'\n'
           || CASE WHEN p.prokind::text IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE p.prosrc END
      FROM pg_proc p WHERE p.oid IN (SELECT oid FROM fn)
    -- relations: tables, views, sequences, and their columns
    UNION ALL
    SELECT 'relation ' || r.relname || ' kind ' || c.relkind::text
           || ' persistence ' || c.relpersistence::text
           || ' options ' || coalesce(array_to_string(c.reloptions, ','), '')
           || ' acl ' || coalesce(c.relacl::text, 'default')
           || ' rowsecurity ' || c.relrowsecurity || ' force ' || c.relforcerowsecurity
           || ' replident ' || c.relreplident::text
      FROM rel r JOIN pg_class c ON c.oid = r.oid
    UNION ALL
    SELECT 'column ' || r.relname || '.' || a.attname || ' #' || a.attnum
           || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' notnull ' || a.attnotnull
           || ' default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
           || ' identity ' || a.attidentity::text || ' generated ' || a.attgenerated::text
           || ' collation ' || coalesce(a.attcollation::regcollation::text, '')
           -- (pg_attver, where the server keeps it, is a per-install
           -- attribute version, not a user-visible option)
           || ' options ' || coalesce((SELECT string_agg(o, ',' ORDER BY o)
                                         FROM unnest(a.attoptions) o
                                        WHERE o NOT LIKE 'pg\_attver=%'), '')
           || ' acl ' || coalesce(a.attacl::text, 'default')
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
    UNION ALL
    SELECT 'view ' || r.relname || E'\n' || pg_get_viewdef(r.oid, true)
      FROM rel r WHERE r.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'sequence ' || r.relname || ' ' || format_type(s.seqtypid, NULL)
           || ' start ' || s.seqstart || ' increment ' || s.seqincrement
           || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache
           || ' cycle ' || s.seqcycle
      FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
    -- indexes, constraints, triggers, policies of the extension's tables
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
           || ' options ' || coalesce(array_to_string(ic.reloptions, ','), '')
      FROM rel r
      JOIN pg_index i ON i.indrelid = r.oid
      JOIN pg_class ic ON ic.oid = i.indexrelid
    UNION ALL
    SELECT 'constraint ' || r.relname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
           || ' deferrable ' || co.condeferrable || ' deferred ' || co.condeferred
           || ' validated ' || co.convalidated
      FROM rel r JOIN pg_constraint co ON co.conrelid = r.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
      FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'policy ' || r.relname || '.' || po.polname
           || ' cmd ' || po.polcmd::text || ' permissive ' || po.polpermissive
           || ' roles ' || (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::regrole::text END, ',' ORDER BY 1)
                              FROM unnest(po.polroles) x)
           || ' using ' || coalesce(pg_get_expr(po.polqual, po.polrelid), '')
           || ' check ' || coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '')
      FROM rel r JOIN pg_policy po ON po.polrelid = r.oid
    -- types the extension made (composite result types, enums, domains)
    UNION ALL
    SELECT 'type ' || t.oid::regtype || ' kind ' || t.typtype::text
           || ' base ' || coalesce(nullif(t.typbasetype, 0)::regtype::text, '')
           || ' labels ' || coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                                        FROM pg_enum WHERE enumtypid = t.oid), '')
      FROM pg_type t
     WHERE t.oid IN (SELECT objid FROM member WHERE classid = 'pg_type'::regclass)
    -- comments on every member and on every column of a member relation
    UNION ALL
    SELECT 'comment ' || pg_describe_object(m.classid, m.objid, 0) || ': '
           || coalesce(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)), '<none>')
      FROM member m
    UNION ALL
    SELECT 'comment column ' || r.relname || '.' || a.attname || ': '
           || coalesce(col_description(r.oid, a.attnum), '<none>')
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
    UNION ALL
    SELECT 'comment index ' || ic.relname || ': ' || coalesce(obj_description(ic.oid, 'pg_class'), '<none>')
      FROM rel r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    UNION ALL
    SELECT 'comment trigger ' || t.tgname || ': ' || coalesce(obj_description(t.oid, 'pg_trigger'), '<none>')
      FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT 'comment policy ' || po.polname || ' on ' || r.relname || ': '
           || coalesce(obj_description(po.oid, 'pg_policy'), '<none>')
      FROM rel r JOIN pg_policy po ON po.polrelid = r.oid
)
SELECT fact FROM facts ORDER BY fact COLLATE "C";
