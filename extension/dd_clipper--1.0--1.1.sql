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

-- ==== Migrations: backfills in batches, in the foreground or a background worker ====

--
-- Convex's progressive migrations done by the database.  A migration is a
-- SET list and a WHERE filter on one table with a primary key: each batch
-- takes the next batch_size rows in primary-key order that the filter
-- selects, locks them, applies the SET list and commits, with its progress
-- in the same transaction, so a batch is either applied and counted or
-- not at all.  The filter must select exactly the rows still to do: a
-- batch that leaves a row it updated still selected fails the migration,
-- and "completed" means a final check found no row left.
--
-- src/migrations.c runs the batches, as the role that runs or starts the
-- migration (never the extension owner, never a superuser by accident);
-- only its own bookkeeping in this table is written with the owner's
-- rights.  The functions are therefore SECURITY INVOKER.
--

CREATE TABLE @extschema@.migrations (
    id              integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    name            text PRIMARY KEY
                    CONSTRAINT migrations_name_check CHECK (pg_catalog.char_length(name) BETWEEN 1 AND 200),
    relation        regclass NOT NULL,
    key_columns     text[] NOT NULL,
    set_sql         text NOT NULL,
    where_sql       text NOT NULL,
    batch_size      integer NOT NULL
                    CONSTRAINT migrations_batch_size_check CHECK (batch_size > 0),
    search_path     text NOT NULL,
    run_after       text REFERENCES @extschema@.migrations (name),
    keep_in_step    boolean NOT NULL DEFAULT false,
    owner           regrole NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CONSTRAINT migrations_status_check CHECK (status IN
                        ('pending', 'running', 'paused', 'completed', 'failed', 'canceled')),
    cursor          text[],
    processed       bigint NOT NULL DEFAULT 0,
    batches         bigint NOT NULL DEFAULT 0,
    passes          integer NOT NULL DEFAULT 0,
    run_processed   bigint NOT NULL DEFAULT 0,
    error           text,
    runner_pid      integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    updated_at      timestamptz,
    completed_at    timestamptz
);

COMMENT ON TABLE @extschema@.migrations IS
    'Backfill migrations registered by dd_migration_create, with their progress; read dd_migration_progress';
COMMENT ON COLUMN @extschema@.migrations.id IS
    'Number of the migration, the key of the advisory lock its runner holds';
COMMENT ON COLUMN @extschema@.migrations.name IS
    'Name given to dd_migration_create';
COMMENT ON COLUMN @extschema@.migrations.relation IS
    'Table the migration updates';
COMMENT ON COLUMN @extschema@.migrations.key_columns IS
    'Primary key columns of the table when the migration was created, in key order: batches walk the key';
COMMENT ON COLUMN @extschema@.migrations.set_sql IS
    'SET list applied to each selected row, as given (column = expression, ...)';
COMMENT ON COLUMN @extschema@.migrations.where_sql IS
    'Boolean expression selecting the rows still to do, as given';
COMMENT ON COLUMN @extschema@.migrations.batch_size IS
    'Rows per batch; each batch is one transaction';
COMMENT ON COLUMN @extschema@.migrations.search_path IS
    'search_path in effect at dd_migration_create: the expressions are always run with it';
COMMENT ON COLUMN @extschema@.migrations.run_after IS
    'Migration that must complete first; a runner that completes it goes on with this one';
COMMENT ON COLUMN @extschema@.migrations.keep_in_step IS
    'While the migration runs, rows inserted or updated by other writers get the same SET list';
COMMENT ON COLUMN @extschema@.migrations.owner IS
    'Role that created the migration; only its members may run, start, cancel or dry-run it';
COMMENT ON COLUMN @extschema@.migrations.status IS
    'pending, running, paused, completed, failed or canceled, as last written; dd_migration_progress shows a running migration whose runner is gone as paused';
COMMENT ON COLUMN @extschema@.migrations.cursor IS
    'Primary key (as text) of the last row of the last committed batch of the current pass; NULL at the start of a pass';
COMMENT ON COLUMN @extschema@.migrations.processed IS
    'Rows updated by all batches so far';
COMMENT ON COLUMN @extschema@.migrations.batches IS
    'Batches committed so far';
COMMENT ON COLUMN @extschema@.migrations.passes IS
    'Walks over the whole key range; a new pass starts when the final check still finds rows (written behind the cursor meanwhile)';
COMMENT ON COLUMN @extschema@.migrations.run_processed IS
    'Rows updated since the current run started: the rate is this over updated_at - started_at';
COMMENT ON COLUMN @extschema@.migrations.error IS
    'SQLSTATE and message of the error that failed the migration';
COMMENT ON COLUMN @extschema@.migrations.runner_pid IS
    'Process id of the session or background worker running it';
COMMENT ON COLUMN @extschema@.migrations.created_at IS
    'When the migration was created';
COMMENT ON COLUMN @extschema@.migrations.started_at IS
    'When the current (or last) run started';
COMMENT ON COLUMN @extschema@.migrations.updated_at IS
    'When the last batch committed';
COMMENT ON COLUMN @extschema@.migrations.completed_at IS
    'When the final check found no row left';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.migrations_id_seq', '');

CREATE FUNCTION @extschema@.dd_migration_create(
    name            text,
    relation        regclass,
    set_sql         text,
    where_sql       text,
    batch_size      int DEFAULT 100,
    run_after       text DEFAULT NULL,
    keep_in_step    boolean DEFAULT false)
RETURNS void
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_create';
COMMENT ON FUNCTION @extschema@.dd_migration_create(text, regclass, text, text, int, text, boolean) IS
    'Register a backfill of relation: set_sql applied in batches of batch_size to the rows where_sql selects, walking the primary key; everything is checked now';

CREATE PROCEDURE @extschema@.dd_migration_run(name text, max_batches int DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_run';
COMMENT ON PROCEDURE @extschema@.dd_migration_run(text, int) IS
    'Run a migration in this session, committing after every batch, until it completes or max_batches were run; CALL it outside a transaction block';

CREATE FUNCTION @extschema@.dd_migration_start(name text)
RETURNS integer
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_start';
COMMENT ON FUNCTION @extschema@.dd_migration_start(text) IS
    'Run a migration in a background worker, as the calling role; returns the worker''s process id';

CREATE FUNCTION @extschema@.dd_migration_cancel(name text)
RETURNS boolean
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_cancel';
COMMENT ON FUNCTION @extschema@.dd_migration_cancel(text) IS
    'Cancel a migration: its runner stops before its next batch commits; committed batches stay; returns false if it had completed or was already canceled';

CREATE FUNCTION @extschema@.dd_migration_drop(name text)
RETURNS void
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_drop';
COMMENT ON FUNCTION @extschema@.dd_migration_drop(text) IS
    'Forget a migration that is not running; the rows it changed stay changed';

CREATE FUNCTION @extschema@.dd_migration_dry_run(name text)
RETURNS jsonb
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_dry_run';
COMMENT ON FUNCTION @extschema@.dd_migration_dry_run(text) IS
    'Run the next batch of a migration and roll it back: the rows it would change, with the columns before and after';

CREATE FUNCTION @extschema@.dd_migration_remaining(name text)
RETURNS bigint
LANGUAGE C
STABLE
AS 'MODULE_PATHNAME', 'dd_migration_remaining';
COMMENT ON FUNCTION @extschema@.dd_migration_remaining(text) IS
    'The planner''s estimate of the rows a migration still has to do (0 once completed); costs a plan, never a scan';

CREATE FUNCTION @extschema@.dd_migration_keep_in_step()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'dd_migration_keep_in_step';
COMMENT ON FUNCTION @extschema@.dd_migration_keep_in_step() IS
    'Statement trigger a keep_in_step migration puts on its table while it runs: applies the SET list to the rows just written that the filter selects';

CREATE VIEW @extschema@.dd_migration_progress AS
SELECT m.name,
       m.relation,
       CASE WHEN m.status OPERATOR(pg_catalog.=) 'running' AND NOT EXISTS (
                SELECT 1 FROM pg_catalog.pg_locks l
                 WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
                   AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                   AND l.classid OPERATOR(pg_catalog.=) 1684303207::oid
                   AND l.objid OPERATOR(pg_catalog.=) m.id::oid
                   AND l.objsubid OPERATOR(pg_catalog.=) 2
                   AND l.granted)
            THEN 'paused' ELSE m.status END AS status,
       m.processed,
       r.remaining,
       CASE WHEN m.run_processed OPERATOR(pg_catalog.>) 0
                 AND m.updated_at OPERATOR(pg_catalog.>) m.started_at
            THEN pg_catalog.round((m.run_processed::numeric OPERATOR(pg_catalog./)
                 pg_catalog.date_part('epoch', m.updated_at OPERATOR(pg_catalog.-) m.started_at)::numeric), 1)
       END AS rows_per_second,
       CASE WHEN m.status OPERATOR(pg_catalog.=) 'completed' THEN '0'::interval
            WHEN m.run_processed OPERATOR(pg_catalog.>) 0
                 AND m.updated_at OPERATOR(pg_catalog.>) m.started_at
            THEN pg_catalog.make_interval(secs => (r.remaining::float8 OPERATOR(pg_catalog.*)
                 pg_catalog.date_part('epoch', m.updated_at OPERATOR(pg_catalog.-) m.started_at)
                 OPERATOR(pg_catalog./) m.run_processed::float8))
       END AS eta,
       m.batches,
       m.passes,
       m.error,
       m.runner_pid,
       m.run_after,
       m.keep_in_step,
       m.created_at,
       m.started_at,
       m.updated_at,
       m.completed_at
  FROM @extschema@.migrations m,
       LATERAL (SELECT CASE WHEN m.status OPERATOR(pg_catalog.=) 'completed' THEN 0::bigint
                            ELSE @extschema@.dd_migration_remaining(m.name) END AS remaining) r;
COMMENT ON VIEW @extschema@.dd_migration_progress IS
    'Every migration with its status (a running one whose runner is gone shows as paused), rows processed, estimated rows remaining, rate, ETA and last error';

-- Nothing for PUBLIC: dd_grant_migration_role gives a role the functions.
REVOKE ALL ON FUNCTION @extschema@.dd_migration_create(text, regclass, text, text, int, text, boolean),
    @extschema@.dd_migration_start(text),
    @extschema@.dd_migration_cancel(text),
    @extschema@.dd_migration_drop(text),
    @extschema@.dd_migration_dry_run(text),
    @extschema@.dd_migration_remaining(text),
    @extschema@.dd_migration_keep_in_step() FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.dd_migration_run(text, int) FROM PUBLIC;

CREATE FUNCTION @extschema@.dd_grant_migration_role(role name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role) THEN
        RAISE EXCEPTION 'role "%" does not exist', role
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create the role first, for example CREATE ROLE deployer LOGIN.';
    END IF;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA @extschema@ TO %I', role);
    EXECUTE pg_catalog.format($g$GRANT EXECUTE ON FUNCTION
        @extschema@.dd_migration_create(text, regclass, text, text, int, text, boolean),
        @extschema@.dd_migration_start(text),
        @extschema@.dd_migration_cancel(text),
        @extschema@.dd_migration_drop(text),
        @extschema@.dd_migration_dry_run(text),
        @extschema@.dd_migration_remaining(text)
        TO %I$g$, role);
    EXECUTE pg_catalog.format(
        'GRANT EXECUTE ON PROCEDURE @extschema@.dd_migration_run(text, int) TO %I', role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT ON @extschema@.dd_migration_progress TO %I', role);
END
$$;
COMMENT ON FUNCTION @extschema@.dd_grant_migration_role(name) IS
    'Give a role the migration functions and the progress view; its batches still run with its own privileges on the tables';
REVOKE ALL ON FUNCTION @extschema@.dd_grant_migration_role(name) FROM PUBLIC;

-- ==== Row security: a signed claim instead of a setting anyone can SET (src/row_security.c) ====

--
-- 1.0's policies compared user_id with the setting dd_clipper.user_id, and
-- any role can SET any setting of its own session, so a confined role could
-- read another user's rows by naming that user.  From 1.1 the policies
-- compare user_id with dd_claim_user_id(): the user of a claim that
-- dd_set_claim() verified in the current transaction (HMAC-SHA256 under a
-- secret in row_security_keys, which only the extension's owner can read).
-- The claim lives in the backend's memory for one transaction; no SET,
-- RESET or function SET clause reaches it.
--

-- The secrets that sign claims.  The newest key that is not retired signs;
-- every key that is not retired verifies.  Registered for pg_dump without
-- its rows: a restored database makes a fresh key (below), and claims made
-- for the old one stop verifying (they are meant to live for minutes).
CREATE TABLE @extschema@.row_security_keys (
    key_id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret          bytea NOT NULL
                    CONSTRAINT row_security_keys_secret_check CHECK (pg_catalog.octet_length(secret) OPERATOR(pg_catalog.=) 32),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    retired_at      timestamptz
);
COMMENT ON TABLE @extschema@.row_security_keys IS
    'Secrets (HMAC-SHA256) that sign row-security claims; readable only by the extension owner. The newest active key signs, every active key verifies';
COMMENT ON COLUMN @extschema@.row_security_keys.retired_at IS
    'Set by dd_retire_claim_key: claims signed with this key no longer verify';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.row_security_keys', 'WHERE false');
-- The key ids go on after a restore, so no new key takes an old one's id.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.row_security_keys_key_id_seq', '');
REVOKE ALL ON @extschema@.row_security_keys FROM PUBLIC;

CREATE FUNCTION @extschema@.dd_sign_claim(user_id text, expires_at timestamptz)
RETURNS text
AS 'MODULE_PATHNAME', 'dd_sign_claim'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_sign_claim(text, timestamptz) IS
    'A token that lets a transaction act for user_id until expires_at (HMAC-SHA256 with the newest active key); for trusted roles only';

CREATE FUNCTION @extschema@.dd_set_claim(token text)
RETURNS text
AS 'MODULE_PATHNAME', 'dd_set_claim'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_set_claim(text) IS
    'Verify a dd_sign_claim token (key, signature, expiry) and act for its user until the end of this transaction; returns the user';

CREATE FUNCTION @extschema@.dd_claim_user_id()
RETURNS text
AS 'MODULE_PATHNAME', 'dd_claim_user_id'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.dd_claim_user_id() IS
    'The user of the claim verified in this transaction, or NULL; the row-level security policies compare user_id with it';

CREATE FUNCTION @extschema@.dd_clear_claim()
RETURNS void
AS 'MODULE_PATHNAME', 'dd_clear_claim'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_clear_claim() IS
    'Act for no user from now on in this transaction';

CREATE FUNCTION @extschema@.dd_rotate_claim_key()
RETURNS integer
AS 'MODULE_PATHNAME', 'dd_rotate_claim_key'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_rotate_claim_key() IS
    'Add a new row security secret, which signs every claim from now on; returns its key_id. Older keys verify until retired';

CREATE FUNCTION @extschema@.dd_retire_claim_key(key_id integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dd_retire_claim_key'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_retire_claim_key(integer) IS
    'Retire a row security key: claims it signed stop verifying; true if this call retired it';

-- Verifying and reading the claim is for everyone: a role subject to the
-- policies must be able to run the function they call, and a claim can only
-- come from a signer.  Signing and the keys are for the owner, who grants
-- dd_sign_claim to the roles it trusts.
REVOKE ALL ON FUNCTION @extschema@.dd_sign_claim(text, timestamptz),
    @extschema@.dd_rotate_claim_key(),
    @extschema@.dd_retire_claim_key(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.dd_set_claim(text),
    @extschema@.dd_claim_user_id(),
    @extschema@.dd_clear_claim() TO PUBLIC;

-- The first key.
SELECT @extschema@.dd_rotate_claim_key();

-- On a Citus cluster whose tables were distributed under 1.0, Citus would
-- send each ALTER POLICY on to the shards at once, before the workers have
-- run this script (which makes dd_claim_user_id): so the policies change on
-- each node's own tables, by that node's run of this script, and the
-- setting is put back as it was.
DO $policies$
DECLARE
    ddl_propagation CONSTANT text := pg_catalog.current_setting('citus.enable_ddl_propagation', true);
BEGIN
    IF ddl_propagation IS NOT NULL THEN
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    END IF;
    ALTER POLICY dd_user_rows ON @extschema@.clips
        USING (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id())
        WITH CHECK (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id());
    ALTER POLICY dd_user_rows ON @extschema@.clip_tombstones
        USING (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id());
    ALTER POLICY dd_user_rows ON @extschema@.api_credits
        USING (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id());
    ALTER POLICY dd_user_rows ON @extschema@.api_usage_log
        USING (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id());
    ALTER POLICY dd_user_rows ON @extschema@.usage_events
        USING (user_id OPERATOR(pg_catalog.=) @extschema@.dd_claim_user_id());
    IF ddl_propagation IS NOT NULL THEN
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', ddl_propagation, true);
    END IF;
END
$policies$;

COMMENT ON FUNCTION @extschema@.dd_enable_row_security(boolean) IS
    'Turn on (or off) row-level security on clips, clip_tombstones, api_credits, api_usage_log and usage_events: roles then see and write only the rows of the user of the claim set with dd_set_claim, and the credit, key and event functions act only for that user';

-- ==== end row security ====

-- ==== Cursor key rotation (src/clips.c) ====

--
-- dd_rotate_cursor_key() replaces the key of the dd_clips_page cursors'
-- keyed checksum.  The key it replaces is kept as previous_key, and a
-- cursor made with it is still accepted (its next cursor is made with the
-- new key), until the next rotation; keep_previous => false drops it at
-- once, so every cursor in flight fails its integrity check (22P02).
--
ALTER TABLE @extschema@.clip_cursor_key
    ADD COLUMN previous_key bytea
        CONSTRAINT clip_cursor_key_previous_key_check CHECK (pg_catalog.octet_length(previous_key) OPERATOR(pg_catalog.=) 16),
    ADD COLUMN rotated_at timestamptz;
COMMENT ON COLUMN @extschema@.clip_cursor_key.previous_key IS
    'The key before the last dd_rotate_cursor_key(keep_previous => true): cursors made with it are still accepted';

CREATE FUNCTION @extschema@.dd_rotate_cursor_key(keep_previous boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'dd_rotate_cursor_key'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_rotate_cursor_key(boolean) IS
    'New key for dd_clips_page cursors; cursors of the key it replaces stay valid until the next rotation, or fail at once with keep_previous => false';
REVOKE ALL ON FUNCTION @extschema@.dd_rotate_cursor_key(boolean) FROM PUBLIC;

-- ==== end cursor key rotation ====

-- ==== Bad input: what test/t/070_bad_input.sh found ====

-- The purge procedures ran one batch for a max_batches of zero or less,
-- where the functions they call refuse it (22023); now they refuse it too.
CREATE OR REPLACE PROCEDURE @extschema@.dd_purge_usage_events_proc(
    older_than  interval,
    batch_size  integer DEFAULT 10000,
    max_batches integer DEFAULT NULL,
    INOUT deleted bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    n       bigint;
    batches integer := 0;
BEGIN
    IF max_batches OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'max_batches must be greater than zero'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('It is %s.', max_batches),
                  HINT = 'Pass NULL to run until no old row is left.';
    END IF;
    deleted := 0;
    LOOP
        n := @extschema@.dd_purge_usage_events(older_than, batch_size, 1);
        deleted := deleted OPERATOR(pg_catalog.+) n;
        batches := batches OPERATOR(pg_catalog.+) 1;
        COMMIT;
        EXIT WHEN n OPERATOR(pg_catalog.<) batch_size
            OR batches OPERATOR(pg_catalog.>=) max_batches;
    END LOOP;
END
$proc$;

CREATE OR REPLACE PROCEDURE @extschema@.dd_purge_usage_log_proc(
    older_than  interval,
    batch_size  integer DEFAULT 10000,
    max_batches integer DEFAULT NULL,
    INOUT deleted bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    n       bigint;
    batches integer := 0;
BEGIN
    IF max_batches OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'max_batches must be greater than zero'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('It is %s.', max_batches),
                  HINT = 'Pass NULL to run until no old row is left.';
    END IF;
    deleted := 0;
    LOOP
        n := @extschema@.dd_purge_usage_log(older_than, batch_size, 1);
        deleted := deleted OPERATOR(pg_catalog.+) n;
        batches := batches OPERATOR(pg_catalog.+) 1;
        COMMIT;
        EXIT WHEN n OPERATOR(pg_catalog.<) batch_size
            OR batches OPERATOR(pg_catalog.>=) max_batches;
    END LOOP;
END
$proc$;

-- ==== end bad input ====

-- ==== Scale-out on Citus: dd_distribute() and dd_undistribute() ====

--
-- Citus leaves the tables of an extension as they are on every node (it
-- treats them as the extension's business), so distributing them is done
-- here, in one idempotent call on the coordinator:
--   * every per-user table is distributed by user_id, colocated with
--     api_credits (so one user's rows of every table are on one node);
--   * api_keys (looked up by key hash, without a user), clip_cursor_key and
--     row_security_keys become reference tables: one copy, the same on every
--     node, so a cursor or a claim made on one node verifies on another;
--   * the functions that take user_id first are delegated to the node that
--     holds that user's shard, so each call is one round trip to that node
--     and every statement in it is local there;
--   * every node gets its own range of ids (2^48 per node group), so ids are
--     unique cluster-wide whichever node a row enters.
-- The functions are PL/pgSQL so that the extension itself does not depend on
-- Citus: the Citus functions they call are looked up when they run.
--

CREATE FUNCTION @extschema@.dd_distribute()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $dd$
DECLARE
    per_user CONSTANT text[] := ARRAY['api_credits', 'credit_grants', 'credit_refunds',
        'api_usage_rollup', 'api_usage_log', 'clips', 'clip_tombstones', 'usage_events'];
    reference CONSTANT text[] := ARRAY['api_keys', 'clip_cursor_key', 'row_security_keys'];
    delegated CONSTANT text[] := ARRAY[
        'dd_grant_credit(text,bigint,text,text)',
        'dd_charge_credit(text,bigint,text,text,bigint,jsonb)',
        'dd_refund_credit(text,text,text)',
        'dd_credit_balance(text)',
        'dd_log_usage(text,text,text,bigint,jsonb)',
        'dd_track_event(text,text,jsonb,text,timestamp with time zone)',
        'dd_clips_page(text,integer,text,text,text[],text,text)',
        'dd_clip_changes(text,bigint,integer)'];
    t text;
    f text;
    rel regclass;
    r record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Install Citus, add it to shared_preload_libraries, CREATE EXTENSION citus, and add the workers.';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'dd_distribute() must run on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- clips has triggers (version, tombstones, notifications); they run on
    -- the shards, in the writing transaction, like on one node.
    SET LOCAL citus.enable_unsafe_triggers = on;
    -- Rows already there are copied into the shards as they are: with the
    -- triggers off there too (the SET is sent to the workers' sessions), so a
    -- clip keeps its version, and no NOTIFY stops the two-phase commit.
    SET LOCAL citus.propagate_set_commands = 'local';
    SET LOCAL session_replication_role = replica;

    FOREACH t IN ARRAY reference LOOP
        rel := format('%I.%I', '@extschema@', t)::regclass;
        IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = rel) THEN
            PERFORM create_reference_table(rel);
        END IF;
    END LOOP;
    FOREACH t IN ARRAY per_user LOOP
        rel := format('%I.%I', '@extschema@', t)::regclass;
        IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = rel) THEN
            PERFORM create_distributed_table(rel, 'user_id',
                colocate_with => CASE WHEN t = 'api_credits' THEN 'default'
                                      ELSE format('%I.api_credits', '@extschema@') END);
        END IF;
    END LOOP;

    SET LOCAL session_replication_role = origin;

    -- The change feed is delegated even inside a transaction block: its
    -- high-water is sound only from the snapshot of the node holding the
    -- user's clips (it refuses to answer anywhere else).
    FOREACH f IN ARRAY delegated LOOP
        PERFORM create_distributed_function(
            format('%I.%s', '@extschema@', f)::regprocedure, 'user_id',
            colocate_with => format('%I.api_credits', '@extschema@'),
            force_delegation => f LIKE 'dd_clip_changes(%');
    END LOOP;

    -- Identity ranges, on every node (nodes added later: run this again).
    -- Node group g hands out ids g * 2^48 + 1 .. (g + 1) * 2^48 - 1; the
    -- coordinator (group 0) keeps the ids it has already given.  One
    -- statement per node: a failure is reported, not hidden behind the
    -- success of a later statement.  row_security_keys' key ids stay the
    -- coordinator's: keys are rotated there.
    FOR r IN SELECT * FROM run_command_on_all_nodes(format($cmd$
        DO $do$
        DECLARE
            g bigint := (SELECT groupid FROM pg_catalog.pg_dist_local_group);
            lo bigint := g * 281474976710656 + 1;
            hi bigint := (g + 1) * 281474976710656 - 1;
            s record;
            next bigint;
        BEGIN
            PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
            FOR s IN SELECT q.schemaname, q.sequencename
                     FROM pg_catalog.pg_sequences q
                     WHERE q.schemaname = %L
                       AND q.sequencename IN ('api_keys_id_seq', 'credit_grants_id_seq',
                           'credit_refunds_id_seq', 'api_usage_log_id_seq', 'clips_id_seq',
                           'usage_events_id_seq')
            LOOP
                -- The value nextval would give (pg_sequences shows none
                -- after a RESTART, so read the sequence itself).
                EXECUTE pg_catalog.format(
                    'SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %%I.%%I',
                    s.schemaname, s.sequencename) INTO next;
                EXECUTE pg_catalog.format('ALTER SEQUENCE %%I.%%I MINVALUE %%s MAXVALUE %%s START WITH %%s RESTART WITH %%s',
                    s.schemaname, s.sequencename, lo, hi, lo,
                    CASE WHEN next BETWEEN lo AND hi THEN next ELSE lo END);
            END LOOP;
        END
        $do$
        $cmd$, '@extschema@'))
    LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not set the id ranges on node %: %', r.nodeid, r.result;
        END IF;
    END LOOP;
END
$dd$;

--
-- dd_undistribute(): the opposite.  Citus's undistribute_table() refuses a
-- table an extension owns, so this does what it would: it copies each
-- table's rows back into the coordinator's own table, drops its shards on
-- every node and removes it from Citus's metadata (the three steps Citus's
-- own DROP TABLE trigger takes); it stops delegating the functions and gives
-- the coordinator's sequences back their whole range.  Afterwards the
-- extension works on the coordinator alone, with every row, and DROP
-- EXTENSION leaves nothing behind on any node.  Rows are copied with
-- triggers off (session_replication_role = replica), so a clip keeps its
-- version and no notification is sent for rows that did not change.
--
CREATE FUNCTION @extschema@.dd_undistribute()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $dd$
DECLARE
    distributed regclass[];
    rel regclass;
    t name;
    cols text;
    f regprocedure;
    r record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;     -- nothing can be distributed
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'dd_undistribute() must run on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    -- Functions: no longer delegated, here and on every node.
    FOR f IN SELECT o.objid::regprocedure FROM pg_dist_object o
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = o.objid
                             AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
             WHERE o.classid = 'pg_proc'::regclass
    LOOP
        FOR r IN SELECT * FROM run_command_on_all_nodes(format(
            'SELECT pg_catalog.citus_unmark_object_distributed(%L::pg_catalog.regclass, %L::pg_catalog.regprocedure, 0, false)',
            'pg_proc', f::text))
        LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'could not stop delegating % on node %: %', f, r.nodeid, r.result;
            END IF;
        END LOOP;
    END LOOP;

    -- The extension's tables Citus knows, whatever dd_distribute() (or an
    -- operator by hand) made of them.  Writers wait until the rows are back.
    SELECT array_agg(p.logicalrelid ORDER BY p.logicalrelid::oid) INTO distributed
    FROM pg_dist_partition p
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = p.logicalrelid
                    AND d.deptype = 'e'
    JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper';
    FOREACH rel IN ARRAY coalesce(distributed, '{}') LOOP
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', rel);
    END LOOP;

    SET LOCAL session_replication_role = replica;
    FOREACH rel IN ARRAY coalesce(distributed, '{}') LOOP
        SELECT c.relname INTO t FROM pg_class c WHERE c.oid = rel;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
        EXECUTE format('CREATE TEMP TABLE dd_undistribute_rows ON COMMIT DROP AS SELECT %s FROM %s', cols, rel);
        PERFORM master_remove_distributed_table_metadata_from_workers(rel, '@extschema@', t);
        PERFORM citus_drop_all_shards(rel, '@extschema@', t, false);
        PERFORM master_remove_partition_metadata(rel, '@extschema@', t);
        EXECUTE format('DELETE FROM %s', rel);
        EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM dd_undistribute_rows',
                       rel, cols, cols);
        DROP TABLE dd_undistribute_rows;
    END LOOP;
    RESET session_replication_role;

    -- The coordinator's sequences that dd_distribute() narrowed to its
    -- range (below 2^48; the workers' ids are above): the whole range again.
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    FOR r IN SELECT q.schemaname, q.sequencename FROM pg_sequences q
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass
                             AND d.objid = format('%I.%I', q.schemaname, q.sequencename)::regclass
                             AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
             WHERE q.max_value = 281474976710655
    LOOP
        EXECUTE format('ALTER SEQUENCE %I.%I NO MAXVALUE', r.schemaname, r.sequencename);
    END LOOP;
END
$dd$;

COMMENT ON FUNCTION @extschema@.dd_distribute() IS
    'On a Citus coordinator: distribute the per-user tables by user_id (colocated), make api_keys and the key tables reference tables, delegate the per-user functions to the node of the user''s shard and give every node its own id range; idempotent';
COMMENT ON FUNCTION @extschema@.dd_undistribute() IS
    'On a Citus coordinator: bring every row back into the coordinator''s tables, drop the shards on every node and stop delegating, so the extension runs on one node and DROP EXTENSION leaves nothing behind';
REVOKE ALL ON FUNCTION @extschema@.dd_distribute(), @extschema@.dd_undistribute() FROM PUBLIC;

-- ==== end scale-out on Citus ====

-- ==== Convex import ====

--
-- bin/dd_convex_import loads an `npx convex export` ZIP: it streams each
-- table's documents.jsonl with COPY into a temporary staging table of its
-- session, (file, line, doc), and calls dd_convex_import_table once per
-- table, in one transaction per table (src/convex_import.c).  Rows keep
-- their Convex _id in convex_id; a second import of the same export
-- changes no row.  Two bookkeeping tables hold what the five tables have
-- no column for.  Like credit_grants, they are the owner's: no role is
-- granted anything on them, so they need no row policy.
--

CREATE TABLE @extschema@.convex_unmapped (
    table_name      text NOT NULL,
    user_id         text NOT NULL,
    convex_id       text NOT NULL,
    fields          jsonb NOT NULL
                    CONSTRAINT convex_unmapped_fields_check CHECK (pg_catalog.jsonb_typeof(fields) OPERATOR(pg_catalog.=) 'object'),
    PRIMARY KEY (user_id, table_name, convex_id)
);
COMMENT ON TABLE @extschema@.convex_unmapped IS
    'Fields of imported Convex documents that the mapping has no column for (and references that did not resolve), kept so that nothing of the export is dropped';
COMMENT ON COLUMN @extschema@.convex_unmapped.table_name IS
    'Convex table of the document: apiKeys, apiCredits, apiUsageLog, clips or usageEvents';
COMMENT ON COLUMN @extschema@.convex_unmapped.convex_id IS
    'The document''s _id; its row has the same user_id and convex_id';
COMMENT ON COLUMN @extschema@.convex_unmapped.fields IS
    'The document''s other fields, as exported';

CREATE TABLE @extschema@.convex_opening_balances (
    user_id         text PRIMARY KEY,
    convex_id       text,
    balance         bigint,
    charged         bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.convex_opening_balances IS
    'Per user, what was imported from Convex: the opening grant (credit_grants, idempotency_key convex:opening) is balance + charged, so the ledger balances';
COMMENT ON COLUMN @extschema@.convex_opening_balances.convex_id IS
    'The _id of the user''s apiCredits document';
COMMENT ON COLUMN @extschema@.convex_opening_balances.balance IS
    'The balance last imported from Convex; NULL when the user had usage but no apiCredits document';
COMMENT ON COLUMN @extschema@.convex_opening_balances.charged IS
    'Sum of the credits of the user''s imported usage rows';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.convex_unmapped', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.convex_opening_balances', '');
REVOKE ALL ON @extschema@.convex_unmapped, @extschema@.convex_opening_balances FROM PUBLIC;

CREATE FUNCTION @extschema@.dd_convex_import_table(table_name text, documents regclass)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dd_convex_import_table'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION @extschema@.dd_convex_import_table(text, regclass) IS
    'Import one Convex table (apiKeys, apiCredits, apiUsageLog, clips, usageEvents) from a staging table (file text, line bigint, doc text) filled from an export ZIP, by convex_id, as the caller; returns the counts and the skipped lines. ''_storage'' checks and lists the exported files. Used by bin/dd_convex_import';
-- The caller's own rights apply (SECURITY INVOKER): run it as the
-- extension's owner, or a role granted what the import writes.
REVOKE ALL ON FUNCTION @extschema@.dd_convex_import_table(text, regclass) FROM PUBLIC;

-- A view of the mapping, for people: every field of every table and where
-- it goes.
CREATE VIEW @extschema@.dd_convex_mapping (convex_table, convex_field, target_table, target_column, conversion) AS
VALUES
    ('*', '_id', '*', 'convex_id', 'string'),
    ('*', '_creationTime', '*', 'created_at', 'milliseconds since the epoch, exact to the microsecond (usageEvents: received_at)'),
    ('*', 'userId', '*', 'user_id', 'string, 1 to 256 characters'),
    ('*', '(any other field)', 'convex_unmapped', 'fields', 'kept as exported, by (user_id, table_name, convex_id)'),
    ('apiKeys', 'key', 'api_keys', 'key_hash', 'plaintext key: only its SHA-256 is stored; verifies with dd_clipper.legacy_keys = on'),
    ('apiKeys', 'keyHash', 'api_keys', 'key_hash', 'SHA-256 in hex (64 digits) or base64 (44 characters)'),
    ('apiKeys', 'name', 'api_keys', 'name', 'string'),
    ('apiKeys', 'prefix', 'api_keys', 'prefix', 'string; absent: the first 8 characters of a plaintext key of 32 or more, else empty'),
    ('apiKeys', 'expiresAt', 'api_keys', 'expires_at', 'milliseconds'),
    ('apiKeys', 'lastUsedAt', 'api_keys', 'last_used_at', 'milliseconds; a later use recorded in PostgreSQL wins'),
    ('apiKeys', 'revokedAt', 'api_keys', 'revoked_at', 'milliseconds; a revocation is never undone by an import'),
    ('apiKeys', 'revoked', 'api_keys', 'revoked_at', 'true without revokedAt: revoked at _creationTime'),
    ('apiCredits', 'balance', 'api_credits', 'balance', 'integer >= 0 (Int64 strings exact); opening grant = balance + imported charges'),
    ('apiCredits', 'updatedAt', 'api_credits', 'updated_at', 'milliseconds; absent: _creationTime'),
    ('apiUsageLog', 'requestId', 'api_usage_log', 'request_id', 'string'),
    ('apiUsageLog', 'endpoint', 'api_usage_log', 'endpoint', 'string'),
    ('apiUsageLog', 'credits', 'api_usage_log', 'credits', 'integer >= 0 (Int64 strings exact); absent: 0'),
    ('apiUsageLog', 'apiKeyId', 'api_usage_log', 'api_key_id', 'the id of the api_keys row with that convex_id; unresolved: NULL, and kept in convex_unmapped'),
    ('apiUsageLog', 'metadata', 'api_usage_log', 'metadata', 'object'),
    ('apiUsageLog', 'balanceAfter', 'api_usage_log', 'balance_after', 'integer (Int64 strings exact)'),
    ('clips', 'title', 'clips', 'title', 'string; absent: empty'),
    ('clips', 'sourceUrl', 'clips', 'source_url', 'string'),
    ('clips', 'transcript', 'clips', 'transcript', 'string'),
    ('clips', 'notes', 'clips', 'notes', 'string'),
    ('clips', 'tags', 'clips', 'tags', 'array of strings; absent: empty'),
    ('clips', 'status', 'clips', 'status', 'string; absent: ready'),
    ('clips', 'storageId', 'clips', 'blob_provider, blob_key, blob_sha256, blob_size, blob_content_type', '''convex'', the storage id, and the sha256 (32 bytes), size and contentType of _storage/documents.jsonl'),
    ('clips', 'updatedAt', 'clips', 'updated_at', 'milliseconds, on insert; absent: _creationTime'),
    ('clips', 'deletedAt', 'clips', 'deleted_at', 'milliseconds'),
    ('usageEvents', 'event', 'usage_events', 'event', 'string'),
    ('usageEvents', 'properties', 'usage_events', 'properties', 'object; absent: {}'),
    ('usageEvents', 'eventId', 'usage_events', 'event_id', 'string'),
    ('usageEvents', 'occurredAt', 'usage_events', 'occurred_at', 'milliseconds; absent: _creationTime');
COMMENT ON VIEW @extschema@.dd_convex_mapping IS
    'Where dd_convex_import puts every field of the five Convex tables';
REVOKE ALL ON @extschema@.dd_convex_mapping FROM PUBLIC;

-- ==== end Convex import ====
