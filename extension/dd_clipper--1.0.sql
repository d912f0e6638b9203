/* extension/dd_clipper--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION dd_clipper" to load this file. \quit

--
-- dd_clipper 1.0
--
-- The five tables an app that sells API access keeps (API keys, credit
-- balances, the usage log, saved clips, analytics events), the bookkeeping
-- tables their functions need, and the C functions that give every client
-- single-writer semantics in one round trip.
--
-- Conventions:
--   * user ids are text (auth providers hand out strings);
--   * every per-user table carries user_id, and every primary key and unique
--     constraint on a per-user table includes user_id, so the tables can be
--     distributed by user_id (api_keys, unique on its key hash, is small
--     enough to be a reference table);
--   * each of the five keeps a nullable convex_id, unique per user, so rows
--     imported from Convex keep their old _id; the unique index is partial
--     (WHERE convex_id IS NOT NULL), so native rows add no entry to it;
--   * tables holding user data are registered with pg_extension_config_dump,
--     so pg_dump keeps their rows;
--   * privileges: nothing is granted to PUBLIC.  Application roles get the
--     request path through dd_grant_app_role, never write access to the
--     balance table, so no caller can bypass the single-writer path.
--

------------------------------------------------------------------------
-- api_keys
------------------------------------------------------------------------

CREATE TABLE @extschema@.api_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         text NOT NULL,
    name            text,
    prefix          text NOT NULL,
    key_hash        bytea NOT NULL UNIQUE
                    CHECK (octet_length(key_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    convex_id       text
);
-- Imported rows keep their Convex _id; native rows (convex_id NULL) get
-- no index entry at all.
CREATE UNIQUE INDEX api_keys_user_id_convex_id_key
    ON @extschema@.api_keys (user_id, convex_id) WHERE convex_id IS NOT NULL;
CREATE INDEX api_keys_user_id_idx ON @extschema@.api_keys (user_id);

COMMENT ON TABLE @extschema@.api_keys IS
    'API keys: only the SHA-256 of each key is stored, never the key itself';
COMMENT ON COLUMN @extschema@.api_keys.name IS
    'Label the owner gave the key';
COMMENT ON COLUMN @extschema@.api_keys.prefix IS
    'Start of the key, safe to show so the owner can recognise it';
COMMENT ON COLUMN @extschema@.api_keys.key_hash IS
    'SHA-256 of the whole key (32 bytes); the key is looked up by it';
COMMENT ON COLUMN @extschema@.api_keys.last_used_at IS
    'Last verification, written at most once per dd_clipper.key_touch_interval';
COMMENT ON COLUMN @extschema@.api_keys.expires_at IS
    'After this time verification answers EXPIRED; NULL: never expires';
COMMENT ON COLUMN @extschema@.api_keys.revoked_at IS
    'Set by dd_revoke_api_key; verification then answers REVOKED';
COMMENT ON COLUMN @extschema@.api_keys.convex_id IS
    'The document _id this row had in Convex, for imported rows';

------------------------------------------------------------------------
-- api_credits and the credit ledger
------------------------------------------------------------------------

CREATE TABLE @extschema@.api_credits (
    user_id         text PRIMARY KEY,
    balance         bigint NOT NULL DEFAULT 0
                    CONSTRAINT api_credits_balance_check CHECK (balance >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    convex_id       text
);
CREATE UNIQUE INDEX api_credits_user_id_convex_id_key
    ON @extschema@.api_credits (user_id, convex_id) WHERE convex_id IS NOT NULL;

COMMENT ON TABLE @extschema@.api_credits IS
    'One prepaid credit balance per user; changed only by the dd_*_credit functions';
COMMENT ON COLUMN @extschema@.api_credits.balance IS
    'Credits left; never negative.  Always equals grants - charges + refunds (see dd_credit_audit)';
COMMENT ON COLUMN @extschema@.api_credits.convex_id IS
    'The document _id this row had in Convex, for imported rows';

CREATE TABLE @extschema@.credit_grants (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    user_id         text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    reason          text,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id),
    CONSTRAINT credit_grants_user_id_idempotency_key_key
        UNIQUE (user_id, idempotency_key)
);

COMMENT ON TABLE @extschema@.credit_grants IS
    'Ledger of credits granted, one row per dd_grant_credit that added credit';
COMMENT ON COLUMN @extschema@.credit_grants.idempotency_key IS
    'A repeated key grants once';

CREATE TABLE @extschema@.credit_refunds (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    user_id         text NOT NULL,
    request_id      text NOT NULL,
    usage_id        bigint NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id),
    CONSTRAINT credit_refunds_user_id_request_id_key UNIQUE (user_id, request_id)
);

COMMENT ON TABLE @extschema@.credit_refunds IS
    'Ledger of refunded charges: at most one refund per charged request';
COMMENT ON COLUMN @extschema@.credit_refunds.usage_id IS
    'The api_usage_log row whose charge was reversed (kept after retention removes that row)';

CREATE TABLE @extschema@.api_usage_rollup (
    user_id         text PRIMARY KEY,
    charged         bigint NOT NULL DEFAULT 0,
    usage_rows      bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE @extschema@.api_usage_rollup IS
    'Per-user totals of api_usage_log rows removed by retention, so the credit audit still balances';
COMMENT ON COLUMN @extschema@.api_usage_rollup.charged IS
    'Sum of credits of the removed usage rows';
COMMENT ON COLUMN @extschema@.api_usage_rollup.usage_rows IS
    'Number of removed usage rows';

------------------------------------------------------------------------
-- api_usage_log
------------------------------------------------------------------------

CREATE TABLE @extschema@.api_usage_log (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    user_id         text NOT NULL,
    request_id      text,
    endpoint        text,
    credits         bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
    api_key_id      bigint,
    metadata        jsonb,
    balance_after   bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    convex_id       text,
    PRIMARY KEY (user_id, id),
    CONSTRAINT api_usage_log_user_id_request_id_key UNIQUE (user_id, request_id)
);
CREATE UNIQUE INDEX api_usage_log_user_id_convex_id_key
    ON @extschema@.api_usage_log (user_id, convex_id) WHERE convex_id IS NOT NULL;
-- "This user's recent usage", newest first.
CREATE INDEX api_usage_log_user_id_created_at_idx
    ON @extschema@.api_usage_log (user_id, created_at DESC);
-- Retention deletes by age across users.
CREATE INDEX api_usage_log_created_at_brin
    ON @extschema@.api_usage_log USING brin (created_at);
-- A log has many rows per user.  Without this, statistics that have not
-- yet seen a busy user estimate one row for "user_id = $1", every index
-- led by user_id costs the same for "user_id = $1 AND request_id = $2",
-- and the planner may read all of that user's rows through
-- (user_id, created_at) instead of probing the unique index.  As a
-- fraction of the rows (20 per user on average) it keeps the request
-- look-up on the unique index until ANALYZE knows better.
ALTER TABLE @extschema@.api_usage_log ALTER COLUMN user_id SET (n_distinct = -0.05);

COMMENT ON TABLE @extschema@.api_usage_log IS
    'Append-only log, one row per metered request (dd_charge_credit, dd_log_usage)';
COMMENT ON COLUMN @extschema@.api_usage_log.request_id IS
    'Client request id, unique per user: a retried request is charged and logged once';
COMMENT ON COLUMN @extschema@.api_usage_log.credits IS
    'Credits charged for the request; 0 for requests logged with dd_log_usage';
COMMENT ON COLUMN @extschema@.api_usage_log.balance_after IS
    'Balance right after this charge, returned again when the request is replayed; NULL for rows logged without a charge';
COMMENT ON COLUMN @extschema@.api_usage_log.api_key_id IS
    'The api_keys row that authorised the request (not a foreign key: the log outlives keys)';
COMMENT ON COLUMN @extschema@.api_usage_log.convex_id IS
    'The document _id this row had in Convex, for imported rows';

------------------------------------------------------------------------
-- clips
------------------------------------------------------------------------

CREATE TABLE @extschema@.clips (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    user_id             text NOT NULL,
    title               text NOT NULL DEFAULT '',
    source_url          text,
    transcript          text,
    notes               text,
    tags                text[] NOT NULL DEFAULT '{}',
    status              text NOT NULL DEFAULT 'ready',
    blob_provider       text,
    blob_key            text,
    blob_sha256         bytea CHECK (octet_length(blob_sha256) = 32),
    blob_size           bigint CHECK (blob_size >= 0),
    blob_content_type   text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    search              tsvector GENERATED ALWAYS AS (
                            setweight(to_tsvector('pg_catalog.english'::regconfig, coalesce(title, '')), 'A') ||
                            setweight(to_tsvector('pg_catalog.english'::regconfig, coalesce(notes, '')), 'B') ||
                            setweight(to_tsvector('pg_catalog.english'::regconfig, coalesce(transcript, '')), 'C')
                        ) STORED,
    version             bigint NOT NULL DEFAULT 0,
    convex_id           text,
    PRIMARY KEY (user_id, id),
    CONSTRAINT clips_blob_complete CHECK (
        (blob_key IS NULL) = (blob_provider IS NULL)),
    -- Bounded so a change notification (which names the user) always fits
    -- NOTIFY's 8000-byte payload limit.
    CONSTRAINT clips_user_id_length CHECK (
        char_length(user_id) BETWEEN 1 AND 256)
);
CREATE UNIQUE INDEX clips_user_id_convex_id_key
    ON @extschema@.clips (user_id, convex_id) WHERE convex_id IS NOT NULL;
-- List pages, newest or oldest first, of the live clips of one user.
CREATE INDEX clips_user_id_created_at_id_idx
    ON @extschema@.clips (user_id, created_at, id) WHERE deleted_at IS NULL;
-- Tag filters (all of the given tags).
CREATE INDEX clips_tags_idx ON @extschema@.clips USING gin (tags);
-- Full-text search.
CREATE INDEX clips_search_idx ON @extschema@.clips USING gin (search);
-- The change feed: one user's clips (soft-deleted too) by change version.
CREATE INDEX clips_user_id_version_idx ON @extschema@.clips (user_id, version);

COMMENT ON TABLE @extschema@.clips IS
    'Saved clips; written with plain INSERT/UPDATE/DELETE, triggers keep search, version and notifications right';
COMMENT ON COLUMN @extschema@.clips.tags IS
    'Tags; dd_clips_page filters on all of the given tags';
COMMENT ON COLUMN @extschema@.clips.status IS
    'Application-defined state of the clip, filterable in dd_clips_page';
COMMENT ON COLUMN @extschema@.clips.blob_provider IS
    'Where the clip''s media lives (for example s3, r2, convex); the blob never enters the database';
COMMENT ON COLUMN @extschema@.clips.blob_key IS
    'Key of the blob in its provider';
COMMENT ON COLUMN @extschema@.clips.blob_sha256 IS
    'SHA-256 of the blob (32 bytes)';
COMMENT ON COLUMN @extschema@.clips.blob_size IS
    'Size of the blob in bytes';
COMMENT ON COLUMN @extschema@.clips.deleted_at IS
    'Soft delete: set, the clip leaves every page and the change feed reports a delete';
COMMENT ON COLUMN @extschema@.clips.search IS
    'Full-text search vector of title (A), notes (B) and transcript (C), always up to date';
COMMENT ON COLUMN @extschema@.clips.version IS
    'Change version of the clip''s last write, set by trigger: (writing transaction id << 20) | n; the key of dd_clip_changes';
COMMENT ON COLUMN @extschema@.clips.convex_id IS
    'The document _id this row had in Convex, for imported rows';

------------------------------------------------------------------------
-- usage_events
------------------------------------------------------------------------

CREATE TABLE @extschema@.usage_events (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    user_id         text NOT NULL,
    event           text NOT NULL,
    properties      jsonb NOT NULL DEFAULT '{}',
    event_id        text,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz NOT NULL DEFAULT now(),
    convex_id       text,
    PRIMARY KEY (user_id, id),
    CONSTRAINT usage_events_user_id_event_id_key UNIQUE (user_id, event_id)
);
CREATE UNIQUE INDEX usage_events_user_id_convex_id_key
    ON @extschema@.usage_events (user_id, convex_id) WHERE convex_id IS NOT NULL;
-- Append-only and time-ordered: BRIN is tiny and fits range scans by time.
CREATE INDEX usage_events_received_at_brin
    ON @extschema@.usage_events USING brin (received_at);
-- "This user's events", newest first.
CREATE INDEX usage_events_user_id_occurred_at_idx
    ON @extschema@.usage_events (user_id, occurred_at DESC);

COMMENT ON TABLE @extschema@.usage_events IS
    'Append-only analytics events (dd_track_event, dd_track_events)';
COMMENT ON COLUMN @extschema@.usage_events.event_id IS
    'Optional client id of the event; a duplicate for the same user is dropped';
COMMENT ON COLUMN @extschema@.usage_events.occurred_at IS
    'When the event happened, as the client says';
COMMENT ON COLUMN @extschema@.usage_events.received_at IS
    'When the database stored the event';
COMMENT ON COLUMN @extschema@.usage_events.convex_id IS
    'The document _id this row had in Convex, for imported rows';

------------------------------------------------------------------------
-- pg_dump keeps the rows of every table and the state of every sequence
------------------------------------------------------------------------

SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_credits', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.credit_grants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.credit_refunds', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_usage_rollup', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_usage_log', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.clips', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage_events', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_keys_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.credit_grants_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.credit_refunds_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.api_usage_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.clips_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage_events_id_seq', '');

------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------

-- Tables are created without PUBLIC privileges already; say so explicitly,
-- since the whole point is that only the extension's functions write the
-- ledger.  Roles get access on purpose through dd_grant_app_role and
-- dd_grant_billing_role.
-- (Named one by one: the schema may be shared with the user's own tables.)
REVOKE ALL ON @extschema@.api_keys, @extschema@.api_credits,
    @extschema@.credit_grants, @extschema@.credit_refunds,
    @extschema@.api_usage_rollup, @extschema@.api_usage_log,
    @extschema@.clips, @extschema@.usage_events FROM PUBLIC;

-- ==== credits: functions (src/credits.c) ====

-- The outcome of one charge.
CREATE TYPE @extschema@.dd_charge AS (
    ok          boolean,
    balance     bigint,
    usage_id    bigint,
    replayed    boolean
);
COMMENT ON TYPE @extschema@.dd_charge IS
    'Outcome of dd_charge_credit: ok (charged, or a replay of a charged request), balance after the charge (NULL without a balance row), usage_id of the usage row, replayed (a repeated request_id: nothing charged again)';

-- Every function is SECURITY DEFINER: callers get EXECUTE on purpose
-- (dd_grant_app_role, dd_grant_billing_role), never write access to the
-- ledger tables, so the single-writer path cannot be bypassed.  They need no
-- SET search_path: every query they run names its schema for every table,
-- function and operator (sql/credits.sql runs them under a hostile
-- search_path).
CREATE FUNCTION @extschema@.dd_grant_credit(
    user_id text, amount bigint, reason text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_grant_credit'
LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_grant_credit(text, bigint, text, text) IS
    'Add amount (> 0) credits to a user''s balance (created if needed) and record the grant; a repeated idempotency_key grants once. Returns the balance';

CREATE FUNCTION @extschema@.dd_charge_credit(
    user_id text, amount bigint DEFAULT 1, request_id text DEFAULT NULL,
    endpoint text DEFAULT NULL, api_key_id bigint DEFAULT NULL,
    metadata jsonb DEFAULT NULL)
RETURNS @extschema@.dd_charge
AS 'MODULE_PATHNAME', 'dd_charge_credit'
LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_charge_credit(text, bigint, text, text, bigint, jsonb) IS
    'Take amount credits if the balance covers them and log the request, in one statement; a repeated request_id charges once and returns the first outcome with replayed = true';

CREATE FUNCTION @extschema@.dd_refund_credit(
    user_id text, request_id text, reason text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_refund_credit'
LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_refund_credit(text, text, text) IS
    'Give back the credits charged for request_id, exactly once, and record the refund. Returns the balance';

CREATE FUNCTION @extschema@.dd_credit_balance(user_id text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_credit_balance'
LANGUAGE C STABLE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_credit_balance(text) IS
    'The user''s credit balance; 0 for a user without one';

CREATE FUNCTION @extschema@.dd_credit_audit(
    OUT user_id text, OUT balance bigint, OUT expected bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dd_credit_audit'
LANGUAGE C STABLE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_credit_audit() IS
    'Users whose balance differs from grants - charges (incl. retention rollup) + refunds; empty when the ledger is sound';

CREATE FUNCTION @extschema@.dd_log_usage(
    user_id text, endpoint text, request_id text DEFAULT NULL,
    api_key_id bigint DEFAULT NULL, metadata jsonb DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_log_usage'
LANGUAGE C VOLATILE SECURITY DEFINER;
COMMENT ON FUNCTION @extschema@.dd_log_usage(text, text, text, bigint, jsonb) IS
    'Log a request that costs nothing; idempotent on request_id. Returns the usage row id';

-- Nothing for PUBLIC: these run with the extension owner's rights, so who
-- may call them is decided on purpose (dd_grant_app_role gets charge,
-- balance and log; dd_grant_billing_role adds grant, refund and audit).
REVOKE ALL ON FUNCTION
    @extschema@.dd_grant_credit(text, bigint, text, text),
    @extschema@.dd_charge_credit(text, bigint, text, text, bigint, jsonb),
    @extschema@.dd_refund_credit(text, text, text),
    @extschema@.dd_credit_balance(text),
    @extschema@.dd_credit_audit(),
    @extschema@.dd_log_usage(text, text, text, bigint, jsonb)
FROM PUBLIC;

-- ==== end credits ====

-- ==== api keys: functions (src/api_keys.c) ====

-- A key is "ddk_", 43 base62 digits (32 bytes from pg_strong_random) and a
-- 6-digit CRC-32 over the 47 characters before it (src/key_codec.h).  Only
-- its SHA-256 is stored.  The functions are SECURITY DEFINER so that an
-- application role granted EXECUTE can verify keys (and write last_used_at)
-- without any privilege on api_keys; every query they run is
-- schema-qualified, operators included, so the caller's search_path cannot
-- change what they do, and they need no SET search_path (which would cost a
-- GUC save and restore on every call of the request path).

CREATE TYPE @extschema@.dd_key_check AS (
    valid       boolean,
    code        text,
    key_id      bigint,
    user_id     text
);
COMMENT ON TYPE @extschema@.dd_key_check IS
    'Result of dd_verify_api_key: valid, code (VALID, MALFORMED, NOT_FOUND, EXPIRED, REVOKED), and the key''s id and user when the key was found';

CREATE FUNCTION @extschema@.dd_create_api_key(
    user_id text,
    name text DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    OUT key_id bigint,
    OUT api_key text)
RETURNS record
AS 'MODULE_PATHNAME', 'dd_create_api_key'
LANGUAGE C VOLATILE SECURITY DEFINER PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_create_api_key(text, text, timestamptz) IS
    'Create an API key for user_id; the key text is returned here only, the table keeps its SHA-256';

CREATE FUNCTION @extschema@.dd_verify_api_key(api_key text)
RETURNS @extschema@.dd_key_check
AS 'MODULE_PATHNAME', 'dd_verify_api_key'
LANGUAGE C VOLATILE SECURITY DEFINER PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_verify_api_key(text) IS
    'Verify an API key; writes last_used_at at most once per dd_clipper.key_touch_interval, otherwise read-only';

CREATE FUNCTION @extschema@.dd_revoke_api_key(key_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dd_revoke_api_key'
LANGUAGE C VOLATILE SECURITY DEFINER PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_revoke_api_key(bigint) IS
    'Revoke an API key: true when this call revoked it, false when it was already revoked';

CREATE TYPE @extschema@.dd_authorization AS (
    valid       boolean,
    code        text,
    key_id      bigint,
    user_id     text,
    ok          boolean,
    balance     bigint,
    usage_id    bigint,
    replayed    boolean
);
COMMENT ON TYPE @extschema@.dd_authorization IS
    'Result of dd_authorize_and_charge: valid (the request may proceed), code (a dd_key_check code or INSUFFICIENT_CREDITS), the key''s id and user, and the charge (ok, balance, usage_id, replayed) as dd_charge_credit reports it';

CREATE FUNCTION @extschema@.dd_authorize_and_charge(
    api_key text,
    amount bigint DEFAULT 1,
    request_id text DEFAULT NULL,
    endpoint text DEFAULT NULL,
    metadata jsonb DEFAULT NULL)
RETURNS @extschema@.dd_authorization
AS 'MODULE_PATHNAME', 'dd_authorize_and_charge'
LANGUAGE C VOLATILE SECURITY DEFINER PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.dd_authorize_and_charge(text, bigint, text, text, jsonb) IS
    'Verify an API key and charge its user amount credits, logging the request, in one call; amount 0 checks without spending; idempotent on request_id';

-- Key management and verification are granted to roles on purpose (the
-- roles functions), never to PUBLIC: a SECURITY DEFINER function callable by
-- anyone would let any role mint keys for any user.
REVOKE ALL ON FUNCTION @extschema@.dd_create_api_key(text, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_verify_api_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_revoke_api_key(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_authorize_and_charge(text, bigint, text, text, jsonb) FROM PUBLIC;


-- ==== end api keys ====

-- ==== clips: triggers, page, change feed (src/clips.c) ====

--
-- Change versions.  Every write of a clip (insert, update, soft or hard
-- delete) is stamped by the triggers below with a version built from the
-- writing transaction's 64-bit id: (xid8 << 20) | n, n counting the clip
-- writes of that transaction.  dd_clip_changes only returns versions below
-- the oldest transaction still running, so a writer that started earlier
-- and commits later is never skipped (the proof is in src/clips.c and the
-- README).
--

-- Hard deletes leave a tombstone so the change feed can report them.
CREATE TABLE @extschema@.clip_tombstones (
    user_id         text NOT NULL,
    clip_id         bigint NOT NULL,
    version         bigint NOT NULL,
    deleted_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, clip_id)
);
-- The change feed reads one user's tombstones by version.
CREATE INDEX clip_tombstones_user_id_version_idx
    ON @extschema@.clip_tombstones (user_id, version);

COMMENT ON TABLE @extschema@.clip_tombstones IS
    'One row per hard-deleted clip, so dd_clip_changes reports hard deletes; written by the clips triggers';
COMMENT ON COLUMN @extschema@.clip_tombstones.version IS
    'Change version of the delete';

-- The key of the cursors' keyed hash (SipHash-2-4).  Made at CREATE
-- EXTENSION from pg_strong_random (gen_random_uuid); not dumped, so a
-- restored database makes cursors of the old one invalid (they are
-- short-lived page positions, never credentials).
CREATE TABLE @extschema@.clip_cursor_key (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key             bytea NOT NULL CHECK (octet_length(key) = 16)
);
INSERT INTO @extschema@.clip_cursor_key (key)
    SELECT pg_catalog.decode(pg_catalog.replace(
        pg_catalog.gen_random_uuid()::pg_catalog.text, '-', ''), 'hex');

COMMENT ON TABLE @extschema@.clip_cursor_key IS
    'Secret key of the dd_clips_page cursor checksum; read only by dd_clips_page, as the extension owner';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.clip_tombstones', '');
-- Registered so pg_dump knows the table, but no row is dumped: CREATE
-- EXTENSION on restore makes a fresh key.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.clip_cursor_key', 'WHERE false');

REVOKE ALL ON @extschema@.clip_tombstones, @extschema@.clip_cursor_key FROM PUBLIC;

-- Triggers: whoever writes clips (any ORM, psql, COPY), the version,
-- updated_at, tombstones and notifications are kept right.

CREATE FUNCTION @extschema@.dd_clips_stamp()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dd_clips_stamp'
LANGUAGE C;

COMMENT ON FUNCTION @extschema@.dd_clips_stamp() IS
    'BEFORE INSERT OR UPDATE trigger of clips: sets version (and updated_at on update), refuses a change of user_id or id';

-- SECURITY DEFINER: a hard delete by an application role must leave its
-- tombstone although the role cannot write clip_tombstones itself.  Every
-- query it runs is schema-qualified, operators included.
CREATE FUNCTION @extschema@.dd_clips_publish()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dd_clips_publish'
LANGUAGE C
SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.dd_clips_publish() IS
    'AFTER INSERT OR UPDATE OR DELETE trigger of clips: writes the tombstone of a hard delete and sends the change on channel dd_clipper_clips';

CREATE FUNCTION @extschema@.dd_clips_refuse_truncate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dd_clips_refuse_truncate'
LANGUAGE C;

COMMENT ON FUNCTION @extschema@.dd_clips_refuse_truncate() IS
    'BEFORE TRUNCATE trigger of clips: refuses, since the change feed could not report the removed clips';

CREATE TRIGGER clips_stamp
    BEFORE INSERT OR UPDATE ON @extschema@.clips
    FOR EACH ROW EXECUTE FUNCTION @extschema@.dd_clips_stamp();
CREATE TRIGGER clips_publish
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.clips
    FOR EACH ROW EXECUTE FUNCTION @extschema@.dd_clips_publish();
CREATE TRIGGER clips_no_truncate
    BEFORE TRUNCATE ON @extschema@.clips
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.dd_clips_refuse_truncate();

-- Pages and the change feed.  STABLE: each call reads one snapshot, the
-- caller's, which is what makes the change feed's high-water sound.
-- SECURITY INVOKER (the default), so row-level security on clips applies.

CREATE FUNCTION @extschema@.dd_clips_page(
    user_id text,
    page_size int DEFAULT 50,
    cursor text DEFAULT NULL,
    search text DEFAULT NULL,
    tags text[] DEFAULT NULL,
    status text DEFAULT NULL,
    sort text DEFAULT 'newest')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dd_clips_page'
LANGUAGE C STABLE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.dd_clips_page(text, int, text, text, text[], text, text) IS
    'One page of a user''s live clips, {"page", "isDone", "continueCursor"}; keyset pagination in every sort (newest, oldest, relevance)';

CREATE FUNCTION @extschema@.dd_clip_changes(
    user_id text,
    since bigint DEFAULT 0,
    max int DEFAULT 100)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'dd_clip_changes'
LANGUAGE C STABLE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.dd_clip_changes(text, bigint, int) IS
    'Changes of a user''s clips after version since, and the high-water version to poll with next; never misses a commit';

-- Nothing is executable by PUBLIC: roles are granted on purpose
-- (dd_grant_app_role).  The trigger functions need no grant: triggers run
-- whoever writes.
REVOKE ALL ON FUNCTION @extschema@.dd_clips_stamp() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_clips_publish() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_clips_refuse_truncate() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_clips_page(text, int, text, text, text[], text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_clip_changes(text, bigint, int) FROM PUBLIC;

-- ==== end clips ====

-- ==== events: ingest and retention (src/events.c) ====

-- Ingest (src/events.c).  Both are SECURITY DEFINER so an application role
-- needs only EXECUTE, never INSERT on usage_events; every query they run is
-- schema-qualified, operators included, so the caller's search_path cannot
-- change it.

CREATE FUNCTION @extschema@.dd_track_event(
    user_id     text,
    event       text,
    properties  jsonb DEFAULT '{}',
    event_id    text DEFAULT NULL,
    occurred_at timestamptz DEFAULT pg_catalog.now())
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_track_event'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.dd_track_event(text, text, jsonb, text, timestamptz) IS
    'Store one analytics event; returns its id, or NULL when the user already has an event with this event_id (the duplicate is dropped)';

CREATE FUNCTION @extschema@.dd_track_events(events jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_track_events'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.dd_track_events(jsonb) IS
    'Store a JSON array of events (keys user_id, event, properties, event_id, occurred_at) in one statement; returns the rows stored. A duplicate event_id of a user is dropped; a malformed element is an error naming its position and stores nothing';

-- Retention (src/retention.c).  SECURITY DEFINER so a maintenance role
-- needs only EXECUTE; the delete of old api_usage_log rows adds them to
-- api_usage_rollup in the same statement, so dd_credit_audit still balances.

CREATE FUNCTION @extschema@.dd_purge_usage_events(
    older_than  interval,
    batch_size  integer DEFAULT 10000,
    max_batches integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_purge_usage_events'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.dd_purge_usage_events(interval, integer, integer) IS
    'Delete usage_events received more than older_than ago, batch_size rows per batch, at most max_batches batches (NULL: all); returns the rows deleted. Runs in the caller''s transaction';

CREATE FUNCTION @extschema@.dd_purge_usage_log(
    older_than  interval,
    batch_size  integer DEFAULT 10000,
    max_batches integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dd_purge_usage_log'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.dd_purge_usage_log(interval, integer, integer) IS
    'Delete api_usage_log rows created more than older_than ago in batches, adding their credits and count per user to api_usage_rollup in the same statement; returns the rows deleted. Their request ids stop being idempotent';

-- The procedures commit after every batch, so a purge of millions of rows
-- holds no lock and no snapshot for long and can be stopped at any point
-- without losing the batches done (as pg_partman's run_maintenance_proc).
-- They cannot be SECURITY DEFINER (a procedure that commits runs as its
-- caller), so they only call the functions above, fully qualified.  CALL
-- them outside an explicit transaction block.

CREATE PROCEDURE @extschema@.dd_purge_usage_events_proc(
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

COMMENT ON PROCEDURE @extschema@.dd_purge_usage_events_proc(interval, integer, integer, bigint) IS
    'dd_purge_usage_events one batch at a time, committing after each batch; deleted: the rows deleted';

CREATE PROCEDURE @extschema@.dd_purge_usage_log_proc(
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

COMMENT ON PROCEDURE @extschema@.dd_purge_usage_log_proc(interval, integer, integer, bigint) IS
    'dd_purge_usage_log one batch at a time, committing after each batch (usage rows and rollup together); deleted: the rows deleted';

-- Nothing for PUBLIC: tracking is granted to application roles and
-- retention to maintenance roles on purpose (dd_grant_app_role, or GRANT
-- EXECUTE by hand).
REVOKE ALL ON FUNCTION @extschema@.dd_track_event(text, text, jsonb, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_track_events(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_purge_usage_events(interval, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.dd_purge_usage_log(interval, integer, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.dd_purge_usage_events_proc(interval, integer, integer, bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.dd_purge_usage_log_proc(interval, integer, integer, bigint) FROM PUBLIC;


-- ==== end events ====

-- ==== roles: application and billing roles, row-level security ====

--
-- Who may do what.  Every function above is REVOKEd from PUBLIC; these
-- functions grant on purpose.  The request path (verify a key, charge,
-- log, track, read and write clips, poll the feed) goes to application
-- roles; adding credit, refunds, the audit and key management go to billing
-- roles.  No role is ever given INSERT/UPDATE/DELETE on the ledger
-- (api_credits, credit_grants, credit_refunds, api_usage_log): the
-- single-writer path is the only way to change a balance.
--
-- They run as their caller (who must be allowed to grant on the extension's
-- objects, normally its owner) with a fixed search_path, and name every
-- object with its schema.
--

CREATE FUNCTION @extschema@.dd_grant_app_role(role name)
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
                  HINT = 'Create the role first, for example CREATE ROLE app LOGIN.';
    END IF;

    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA @extschema@ TO %I', role);
    EXECUTE pg_catalog.format($g$GRANT EXECUTE ON FUNCTION
        @extschema@.dd_verify_api_key(text),
        @extschema@.dd_authorize_and_charge(text, bigint, text, text, jsonb),
        @extschema@.dd_charge_credit(text, bigint, text, text, bigint, jsonb),
        @extschema@.dd_credit_balance(text),
        @extschema@.dd_log_usage(text, text, text, bigint, jsonb),
        @extschema@.dd_track_event(text, text, jsonb, text, timestamptz),
        @extschema@.dd_track_events(jsonb),
        @extschema@.dd_clips_page(text, int, text, text, text[], text, text),
        @extschema@.dd_clip_changes(text, bigint, int)
        TO %I$g$, role);
    -- Clips are written by the application's ORM with plain SQL; the
    -- triggers keep search, version and notifications right.
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.clips TO %I', role);
    -- Reads the request path and dashboards need; never a write to the ledger.
    EXECUTE pg_catalog.format(
        'GRANT SELECT ON @extschema@.clip_tombstones, @extschema@.api_credits,
         @extschema@.api_usage_log, @extschema@.usage_events TO %I', role);
END
$$;
COMMENT ON FUNCTION @extschema@.dd_grant_app_role(name) IS
    'Give an application role the request path: verify, charge, log, track, clips and the change feed, and reads; never writes to the ledger';

CREATE FUNCTION @extschema@.dd_grant_billing_role(role name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@.dd_grant_app_role(role);
    EXECUTE pg_catalog.format($g$GRANT EXECUTE ON FUNCTION
        @extschema@.dd_grant_credit(text, bigint, text, text),
        @extschema@.dd_refund_credit(text, text, text),
        @extschema@.dd_credit_audit(),
        @extschema@.dd_create_api_key(text, text, timestamptz),
        @extschema@.dd_revoke_api_key(bigint)
        TO %I$g$, role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT ON @extschema@.api_keys, @extschema@.credit_grants,
         @extschema@.credit_refunds, @extschema@.api_usage_rollup TO %I', role);
END
$$;
COMMENT ON FUNCTION @extschema@.dd_grant_billing_role(name) IS
    'Give a billing role the request path plus grants, refunds, the audit and API key management';

REVOKE ALL ON FUNCTION @extschema@.dd_grant_app_role(name),
    @extschema@.dd_grant_billing_role(name) FROM PUBLIC;

--
-- Row-level security keyed on the session setting dd_clipper.user_id.
-- The policies exist from install; they take effect once
-- dd_enable_row_security() enables row-level security on the tables, and
-- then every role that is neither the tables' owner nor BYPASSRLS sees and
-- writes only the rows of the user named in dd_clipper.user_id (none while
-- it is unset).  The request-path functions that run with the owner's
-- rights take the user from their arguments or the API key, as before.
--
CREATE POLICY dd_user_rows ON @extschema@.clips
    USING (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true));
CREATE POLICY dd_user_rows ON @extschema@.clip_tombstones
    USING (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true));
CREATE POLICY dd_user_rows ON @extschema@.api_credits
    USING (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true));
CREATE POLICY dd_user_rows ON @extschema@.api_usage_log
    USING (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true));
CREATE POLICY dd_user_rows ON @extschema@.usage_events
    USING (user_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('dd_clipper.user_id', true));

CREATE FUNCTION @extschema@.dd_enable_row_security(enable boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    IF enable IS NULL THEN
        RAISE EXCEPTION 'enable must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH t IN ARRAY ARRAY['clips', 'clip_tombstones', 'api_credits',
                             'api_usage_log', 'usage_events']
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE @extschema@.%I %s ROW LEVEL SECURITY',
                                  t, CASE WHEN enable THEN 'ENABLE' ELSE 'DISABLE' END);
    END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.dd_enable_row_security(boolean) IS
    'Turn on (or off) row-level security on clips, clip_tombstones, api_credits, api_usage_log and usage_events: roles then see and write only the rows of the user in dd_clipper.user_id';
REVOKE ALL ON FUNCTION @extschema@.dd_enable_row_security(boolean) FROM PUBLIC;

-- ==== end roles ====
