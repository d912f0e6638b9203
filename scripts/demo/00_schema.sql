-- The five tables, created by CREATE EXTENSION dd_clipper.
\echo
\echo '==> dd_clipper is installed: its tables'
SELECT c.relname AS "table", obj_description(c.oid, 'pg_class') AS "holds"
FROM pg_class c
JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
WHERE c.relkind = 'r'
ORDER BY 1;

\echo '==> a clip needs nothing but a user and a title; search is kept by the database'
INSERT INTO clips (user_id, title, notes, tags)
VALUES ('user_demo', 'Postgres locking explained', 'Row locks and SKIP LOCKED', '{postgres,talks}')
RETURNING id, user_id, title, tags, search;
