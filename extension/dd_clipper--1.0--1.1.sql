/* extension/dd_clipper--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dd_clipper UPDATE TO '1.1'" to load this file. \quit

--
-- dd_clipper 1.0 -> 1.1
--
-- 1.0 is released and its script is frozen: every schema change from now
-- on is an upgrade script like this one.  CREATE EXTENSION of 1.1 runs
-- dd_clipper--1.0.sql and then this file, so an upgraded database and a
-- fresh install run the same statements; test/t/015_upgrade.sh proves they
-- end up with the same catalog, and that an upgrade keeps every row.
--
-- Rules for this file (they are what an upgrade on a live, possibly
-- distributed, database needs): name every object with @extschema@ and
-- every operator with its schema; never rewrite a big table (add nullable
-- columns without volatile defaults, build no index that a user's table
-- must wait for without saying so in the CHANGELOG); register new tables
-- that hold user data with pg_extension_config_dump.
--
