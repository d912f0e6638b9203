--
-- citus: dd_distribute() and dd_undistribute() where Citus is not installed
-- (test/citus/run.sh runs them on a coordinator and two workers).  The first
-- is a clear error, the second has nothing to undo; neither runs for a role
-- without EXECUTE, and a hostile search_path cannot make them believe Citus
-- is there.
--
CREATE EXTENSION dd_clipper;
CREATE ROLE regress_citus_nobody;

SELECT dd_distribute();
SELECT dd_undistribute();

-- A schema placed first that fakes Citus: a pg_extension listing it and the
-- functions dd_distribute would call.  Both functions run with their own
-- search_path, so none of these is reached.
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.pg_extension (extname name);
INSERT INTO regress_evil.pg_extension VALUES ('citus');
CREATE FUNCTION regress_evil.citus_is_coordinator() RETURNS boolean
    LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION regress_evil.create_reference_table(regclass) RETURNS void
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked: %', $1; END $$;
SET search_path = regress_evil, pg_catalog, public;
SELECT dd_distribute();
SELECT dd_undistribute();
RESET search_path;

-- Neither is granted to PUBLIC.
SET ROLE regress_citus_nobody;
\set VERBOSITY sqlstate
SELECT dd_distribute();
SELECT dd_undistribute();
\set VERBOSITY default
RESET ROLE;

-- Tables stay local, rows untouched.
SELECT dd_grant_credit('u1', 5);
SELECT count(*) AS rows FROM api_credits;

DROP SCHEMA regress_evil CASCADE;
DROP ROLE regress_citus_nobody;
DROP EXTENSION dd_clipper;
