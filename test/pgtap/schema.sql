--
-- test/pgtap/schema.sql -- schema checks of the five tables of DESIGN.md
-- and the ledger tables: columns and types, primary and unique keys (every
-- one on a per-user table includes user_id), indexes, the balance check,
-- and registration with pg_dump.  What the constraints refuse is in
-- test/pgtap/tables.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(85);

-- api_keys --------------------------------------------------------------
SELECT has_table('api_keys');
SELECT col_type_is('api_keys', 'id', 'bigint');
SELECT col_type_is('api_keys', 'user_id', 'text');
SELECT col_type_is('api_keys', 'name', 'text');
SELECT col_type_is('api_keys', 'prefix', 'text');
SELECT col_type_is('api_keys', 'key_hash', 'bytea');
SELECT col_type_is('api_keys', 'created_at', 'timestamp with time zone');
SELECT col_type_is('api_keys', 'last_used_at', 'timestamp with time zone');
SELECT col_type_is('api_keys', 'expires_at', 'timestamp with time zone');
SELECT col_type_is('api_keys', 'revoked_at', 'timestamp with time zone');
SELECT col_type_is('api_keys', 'convex_id', 'text');
SELECT col_is_pk('api_keys', 'id');
SELECT col_is_unique('api_keys', ARRAY['key_hash']);
SELECT has_index('api_keys', 'api_keys_user_id_idx', ARRAY['user_id']);

-- api_credits -----------------------------------------------------------
SELECT has_table('api_credits');
SELECT col_type_is('api_credits', 'user_id', 'text');
SELECT col_type_is('api_credits', 'balance', 'bigint');
SELECT col_not_null('api_credits', 'balance');
SELECT col_default_is('api_credits', 'balance', '0');
SELECT col_type_is('api_credits', 'created_at', 'timestamp with time zone');
SELECT col_type_is('api_credits', 'updated_at', 'timestamp with time zone');
SELECT col_has_default('api_credits', 'created_at');
SELECT col_has_default('api_credits', 'updated_at');
SELECT col_is_pk('api_credits', 'user_id');
SELECT col_has_check('api_credits', 'balance');

-- ledger tables ---------------------------------------------------------
SELECT has_table('credit_grants');
SELECT col_is_pk('credit_grants', ARRAY['user_id', 'id']);
SELECT col_is_unique('credit_grants', ARRAY['user_id', 'idempotency_key']);
SELECT has_table('credit_refunds');
SELECT col_is_pk('credit_refunds', ARRAY['user_id', 'id']);
SELECT col_is_unique('credit_refunds', ARRAY['user_id', 'request_id']);
SELECT has_table('api_usage_rollup');
SELECT col_is_pk('api_usage_rollup', 'user_id');

-- api_usage_log ---------------------------------------------------------
SELECT has_table('api_usage_log');
SELECT col_type_is('api_usage_log', 'id', 'bigint');
SELECT col_type_is('api_usage_log', 'user_id', 'text');
SELECT col_type_is('api_usage_log', 'request_id', 'text');
SELECT col_type_is('api_usage_log', 'endpoint', 'text');
SELECT col_type_is('api_usage_log', 'credits', 'bigint');
SELECT col_type_is('api_usage_log', 'api_key_id', 'bigint');
SELECT col_type_is('api_usage_log', 'metadata', 'jsonb');
SELECT col_type_is('api_usage_log', 'created_at', 'timestamp with time zone');
SELECT col_type_is('api_usage_log', 'convex_id', 'text');
SELECT col_is_pk('api_usage_log', ARRAY['user_id', 'id']);
SELECT col_is_unique('api_usage_log', ARRAY['user_id', 'request_id']);
SELECT has_index('api_usage_log', 'api_usage_log_user_id_created_at_idx');

-- clips -----------------------------------------------------------------
SELECT has_table('clips');
SELECT col_type_is('clips', 'id', 'bigint');
SELECT col_type_is('clips', 'user_id', 'text');
SELECT col_type_is('clips', 'title', 'text');
SELECT col_type_is('clips', 'source_url', 'text');
SELECT col_type_is('clips', 'transcript', 'text');
SELECT col_type_is('clips', 'notes', 'text');
SELECT col_type_is('clips', 'tags', 'text[]');
SELECT col_type_is('clips', 'status', 'text');
SELECT col_type_is('clips', 'blob_provider', 'text');
SELECT col_type_is('clips', 'blob_key', 'text');
SELECT col_type_is('clips', 'blob_sha256', 'bytea');
SELECT col_type_is('clips', 'blob_size', 'bigint');
SELECT col_type_is('clips', 'blob_content_type', 'text');
SELECT col_type_is('clips', 'created_at', 'timestamp with time zone');
SELECT col_type_is('clips', 'updated_at', 'timestamp with time zone');
SELECT col_type_is('clips', 'deleted_at', 'timestamp with time zone');
SELECT col_type_is('clips', 'search', 'tsvector');
SELECT col_type_is('clips', 'version', 'bigint');
SELECT col_type_is('clips', 'convex_id', 'text');
SELECT col_is_pk('clips', ARRAY['user_id', 'id']);
SELECT has_index('clips', 'clips_user_id_created_at_id_idx');
SELECT has_index('clips', 'clips_tags_idx');
SELECT has_index('clips', 'clips_search_idx');

-- usage_events ----------------------------------------------------------
SELECT has_table('usage_events');
SELECT col_type_is('usage_events', 'id', 'bigint');
SELECT col_type_is('usage_events', 'user_id', 'text');
SELECT col_type_is('usage_events', 'event', 'text');
SELECT col_type_is('usage_events', 'properties', 'jsonb');
SELECT col_type_is('usage_events', 'event_id', 'text');
SELECT col_type_is('usage_events', 'occurred_at', 'timestamp with time zone');
SELECT col_type_is('usage_events', 'received_at', 'timestamp with time zone');
SELECT col_type_is('usage_events', 'convex_id', 'text');
SELECT col_is_pk('usage_events', ARRAY['user_id', 'id']);
SELECT col_is_unique('usage_events', ARRAY['user_id', 'event_id']);
SELECT has_index('usage_events', 'usage_events_received_at_brin');

-- every unique constraint of a per-user table includes user_id ----------
SELECT is_empty(
    $$SELECT conrelid::regclass::text || ' ' || conname
      FROM pg_constraint
      WHERE contype IN ('p', 'u')
        AND conrelid IN ('api_credits'::regclass, 'api_usage_log'::regclass,
                         'clips'::regclass, 'usage_events'::regclass,
                         'credit_grants'::regclass, 'credit_refunds'::regclass)
        AND NOT EXISTS (
            SELECT 1 FROM pg_attribute a
            WHERE a.attrelid = conrelid AND a.attname = 'user_id'
              AND a.attnum = ANY (conkey))$$,
    'every primary key and unique constraint on a per-user table includes user_id');

-- every table's rows are kept by pg_dump --------------------------------
SELECT set_eq(
    $$SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'dd_clipper'
      AND true$$,
    $$SELECT c.oid::regclass::text FROM pg_class c
      JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
      WHERE c.relkind IN ('r', 'S', 'p')$$,
    'every table and sequence of the extension is registered with pg_extension_config_dump');

-- convex_id is unique per user through a partial unique index: rows that
-- were not imported (convex_id NULL) add no entry to it.
SELECT set_eq(
    $$SELECT c.relname::text, i.indisunique, pg_get_indexdef(i.indexrelid, 1, true) AS col1,
             pg_get_indexdef(i.indexrelid, 2, true) AS col2, pg_get_expr(i.indpred, i.indrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
       WHERE i.indexrelid::regclass::text LIKE '%_user_id_convex_id_key'$$,
    $$VALUES ('api_keys', true, 'user_id', 'convex_id', '(convex_id IS NOT NULL)'),
             ('api_credits', true, 'user_id', 'convex_id', '(convex_id IS NOT NULL)'),
             ('api_usage_log', true, 'user_id', 'convex_id', '(convex_id IS NOT NULL)'),
             ('clips', true, 'user_id', 'convex_id', '(convex_id IS NOT NULL)'),
             ('usage_events', true, 'user_id', 'convex_id', '(convex_id IS NOT NULL)')$$,
    'each of the five has a unique index on (user_id, convex_id) for imported rows only');

SELECT * FROM finish();
ROLLBACK;
