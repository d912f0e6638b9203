--
-- test/pgtap/schema_events.sql -- schema checks of the events and
-- retention functions: signatures, result types, definer rights, and that
-- PUBLIC can execute none of them.  These only read the catalog; what the
-- functions do is in test/pgtap/events.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(9);

SELECT has_function('dd_track_event', ARRAY['text', 'text', 'jsonb', 'text', 'timestamp with time zone']);
SELECT function_returns('dd_track_event', ARRAY['text', 'text', 'jsonb', 'text', 'timestamp with time zone'], 'bigint');
SELECT has_function('dd_track_events', ARRAY['jsonb']);
SELECT function_returns('dd_track_events', ARRAY['jsonb'], 'bigint');
SELECT has_function('dd_purge_usage_events', ARRAY['interval', 'integer', 'integer']);
SELECT has_function('dd_purge_usage_log', ARRAY['interval', 'integer', 'integer']);
SELECT is_definer('dd_track_events', ARRAY['jsonb']);
SELECT is_definer('dd_purge_usage_log', ARRAY['interval', 'integer', 'integer']);
SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
      WHERE p.proname IN ('dd_track_event', 'dd_track_events', 'dd_purge_usage_events',
                          'dd_purge_usage_log', 'dd_purge_usage_events_proc', 'dd_purge_usage_log_proc')
        AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC cannot execute any events or retention function');

SELECT * FROM finish();
ROLLBACK;
