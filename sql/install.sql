--
-- install: the extension installs, documents itself (its members, \d and
-- COMMENT ON every object), works in a non-default schema, and can be
-- dropped and created again.
--
CREATE EXTENSION dd_clipper;

SELECT extname, extversion, extrelocatable, nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'dd_clipper';

-- The extension's members, as \dx+ dd_clipper lists them on 15.  From 17 on
-- \dx+ also lists each table's row type and its array type; those are left
-- out, so the list reads the same on every supported version.
SELECT pg_describe_object(d.classid, d.objid, 0) COLLATE "C" AS "Object description"
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dd_clipper')
  AND d.deptype = 'e'
  AND NOT (d.classid = 'pg_type'::regclass
           AND EXISTS (SELECT FROM pg_type t
                       WHERE t.oid = d.objid
                         AND (t.typcategory = 'A'
                              OR (SELECT relkind FROM pg_class
                                  WHERE oid = t.typrelid) <> 'c')))
ORDER BY 1;

\d api_keys
\d api_credits
\d api_usage_log
\d clips
\d usage_events

-- Every table, type and function of the extension is commented.
SELECT pg_describe_object(d.classid, d.objid, 0) COLLATE "C" AS uncommented
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dd_clipper')
  AND d.deptype = 'e'
  AND d.classid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass)
  AND NOT (d.classid = 'pg_class'::regclass
           AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('S', 'i'))
  -- Of the types, the composite types the script creates; from 17 on each
  -- table's row type is a member too, documented by its table's comment.
  AND NOT (d.classid = 'pg_type'::regclass
           AND (SELECT t.typtype <> 'c' OR c.relkind IS DISTINCT FROM 'c'
                FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
                WHERE t.oid = d.objid))
  AND obj_description(d.objid, d.classid::regclass::name) IS NULL
ORDER BY 1;

-- Nothing is granted to PUBLIC on any table.
SELECT c.relname COLLATE "C" AS public_can_use
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
  AND (has_table_privilege('public', c.oid, 'SELECT')
       OR has_table_privilege('public', c.oid, 'INSERT')
       OR has_table_privilege('public', c.oid, 'UPDATE')
       OR has_table_privilege('public', c.oid, 'DELETE'))
ORDER BY 1;

-- The balance can never go negative.
\set VERBOSITY terse
INSERT INTO api_credits (user_id, balance) VALUES ('regress_user', -1);
\set VERBOSITY default

-- A clip needs only its user and title; everything else has a default.
INSERT INTO clips (user_id, title) VALUES ('regress_user', 'First clip')
RETURNING user_id, title, tags, status, deleted_at, search;

DROP EXTENSION dd_clipper;

-- The schema named at CREATE EXTENSION holds every object.
CREATE SCHEMA regress_dd;
CREATE EXTENSION dd_clipper SCHEMA regress_dd;
SELECT c.relname COLLATE "C" AS relname
FROM pg_class c
WHERE c.relnamespace = 'regress_dd'::regnamespace AND c.relkind = 'r'
ORDER BY 1;
SELECT count(*) AS objects_elsewhere
FROM pg_class c
WHERE c.relname IN ('api_keys', 'api_credits', 'api_usage_log', 'clips', 'usage_events')
  AND c.relnamespace <> 'regress_dd'::regnamespace;
INSERT INTO regress_dd.clips (user_id, title) VALUES ('regress_user', 'Elsewhere')
RETURNING user_id, title;
DROP EXTENSION dd_clipper;
DROP SCHEMA regress_dd;

-- Dropped and created again: a clean, empty install.
CREATE EXTENSION dd_clipper;
SELECT count(*) AS clips FROM clips;
DROP EXTENSION dd_clipper;
