--
-- semantics: every function does what the same SQL would do on the same
-- tables.  The functions read and write through the executor (SPI), so a
-- trigger, a rule, a default, a domain, a CHECK or NOT NULL constraint, a
-- privilege and a read-only transaction apply to their rows exactly as to
-- a plain INSERT or UPDATE, and keep applying after the table changes in a
-- session that has already called them.
--
CREATE EXTENSION dd_clipper;

CREATE FUNCTION regress_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SELECT dd_grant_credit('d1', 100);

-- The plain table: a charge, its rows as an UPDATE and an INSERT would
-- have written them (defaults included).
BEGIN;
SELECT * FROM dd_charge_credit('d1', 3, 'r1', '/v1/a', NULL, '{"m": 1}');
SELECT user_id, request_id, endpoint, credits, api_key_id, metadata,
       balance_after, created_at = now() AS created_now, convex_id
FROM api_usage_log ORDER BY id;
SELECT balance, updated_at = now() AS updated_now FROM api_credits;
COMMIT;

-- A trigger on each table: every charge must fire both, as SQL would.
CREATE TABLE regress_fired (tbl text, op text, detail text);
-- regress_note(column): note the table, the operation and that column.
CREATE FUNCTION regress_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_fired
    VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW) ->> TG_ARGV[0]);
    RETURN NEW;
END
$$;
CREATE TRIGGER regress_note AFTER INSERT OR UPDATE ON api_usage_log
    FOR EACH ROW EXECUTE FUNCTION regress_note('request_id');
CREATE TRIGGER regress_note AFTER UPDATE ON api_credits
    FOR EACH ROW EXECUTE FUNCTION regress_note('balance');
SELECT * FROM dd_charge_credit('d1', 2, 'r2');
SELECT * FROM regress_fired;
-- A replay writes nothing, so fires nothing.
SELECT * FROM dd_charge_credit('d1', 2, 'r2');
SELECT count(*) AS fired FROM regress_fired;

-- Too little credit, with the triggers in place: ok = false, nothing
-- written, nothing fired, with and without a request id.
TRUNCATE regress_fired;
SELECT * FROM dd_charge_credit('d1', 1000, 'r-poor');
SELECT * FROM dd_charge_credit('d1', 1000);
SELECT count(*) AS fired FROM regress_fired;
SELECT count(*) AS logged FROM api_usage_log WHERE credits = 1000;

-- The triggers dropped: nothing fires.
DROP TRIGGER regress_note ON api_usage_log;
DROP TRIGGER regress_note ON api_credits;
TRUNCATE regress_fired;
SELECT * FROM dd_charge_credit('d1', 1, 'r3');
SELECT count(*) AS fired FROM regress_fired;

-- A column with a constant default gets it; one whose default is not a
-- constant (a sequence here) gets its value too.
CREATE SEQUENCE regress_seq;
ALTER TABLE api_usage_log ADD COLUMN regress_const text DEFAULT 'k' || 'v';
ALTER TABLE api_usage_log ADD COLUMN regress_seq bigint
    DEFAULT nextval('regress_seq');
SELECT * FROM dd_charge_credit('d1', 1, 'r4');
SELECT request_id, regress_const, regress_seq FROM api_usage_log
WHERE request_id = 'r4';
ALTER TABLE api_usage_log DROP COLUMN regress_seq;
SELECT * FROM dd_charge_credit('d1', 1, 'r5');
SELECT request_id, regress_const FROM api_usage_log WHERE request_id = 'r5';
ALTER TABLE api_usage_log DROP COLUMN regress_const;

-- A CHECK constraint of the user's is checked; a failed charge leaves
-- nothing behind (the balance is untouched).
ALTER TABLE api_usage_log ADD CONSTRAINT regress_no_admin
    CHECK (endpoint IS DISTINCT FROM '/admin');
SELECT regress_try($$SELECT dd_charge_credit('d1', 1, 'r6', '/admin')$$);
SELECT dd_credit_balance('d1');
SELECT * FROM dd_charge_credit('d1', 1, 'r6', '/ok');
ALTER TABLE api_usage_log DROP CONSTRAINT regress_no_admin;
SELECT * FROM dd_charge_credit('d1', 1, 'r7');

-- Several charges of one user in one statement see each other's debits.
SELECT c.ok, c.balance, c.replayed
FROM generate_series(1, 3) g, dd_charge_credit('d1', 10, 'multi-' || g) c;
-- ... and a repeat inside the same statement is a replay.
SELECT c.ok, c.balance, c.replayed
FROM (VALUES ('same'), ('same')) v(r), dd_charge_credit('d1', 5, v.r) c;
SELECT dd_credit_balance('d1'), count(*) AS audit_mismatches
FROM dd_credit_audit();

-- A read-only transaction refuses the write, as it refuses an UPDATE.
BEGIN READ ONLY;
SELECT regress_try($$SELECT dd_charge_credit('d1', 1, 'ro')$$);
SELECT regress_try($$SELECT dd_track_event('d1', 'e', '{}', 'ro')$$);
COMMIT;
SELECT count(*) AS written_read_only FROM api_usage_log WHERE request_id = 'ro';

-- Events: the same, for dd_track_event.
CREATE TRIGGER regress_note AFTER INSERT ON usage_events
    FOR EACH ROW EXECUTE FUNCTION regress_note('event_id');
SELECT dd_track_event('d1', 'e', '{}', 'ev1') IS NOT NULL AS stored;
SELECT dd_track_event('d1', 'e', '{}', 'ev1') IS NULL AS dropped;
SELECT * FROM regress_fired;
DROP TRIGGER regress_note ON usage_events;
SELECT dd_track_event('d1', 'e', '{}', 'ev2') IS NOT NULL AS stored;
SELECT dd_track_event('d1', 'e', '{}', 'ev2') IS NULL AS dropped;
SELECT count(*) AS fired FROM regress_fired;
-- A NOT NULL the user added is checked.
ALTER TABLE usage_events ALTER COLUMN event_id SET NOT NULL;
SELECT regress_try($$SELECT dd_track_event('d1', 'e')$$);
ALTER TABLE usage_events ALTER COLUMN event_id DROP NOT NULL;
BEGIN;
SELECT dd_track_event('d1', 'e') IS NOT NULL AS stored_without_id;
SELECT user_id, event, properties, event_id, occurred_at = now() AS now,
       received_at = now() AS received_now
FROM usage_events ORDER BY id;
COMMIT;
-- Duplicates within one statement are dropped too.
SELECT count(e) AS stored
FROM (VALUES ('ev3'), ('ev3'), ('ev4')) v(i), dd_track_event('d1', 'e', '{}', v.i) e;

-- Under REPEATABLE READ, a duplicate this transaction's snapshot cannot
-- see is a serialization failure, as for INSERT ... ON CONFLICT DO
-- NOTHING; one it can see is dropped.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT dd_track_event('d1', 'e', '{}', 'ev1') IS NULL AS dropped;
COMMIT;

-- A CHECK constraint redefined under the extension's own name is the one
-- enforced: 23514 and nothing written, as for a plain INSERT.  (NOT VALID:
-- earlier rows are left alone, new ones are checked.)
SELECT dd_grant_credit('c1', 100);
ALTER TABLE api_usage_log DROP CONSTRAINT api_usage_log_credits_check;
ALTER TABLE api_usage_log ADD CONSTRAINT api_usage_log_credits_check
    CHECK (credits BETWEEN 0 AND 2) NOT VALID;
SELECT regress_try($$SELECT dd_charge_credit('c1', 50, 'big')$$);
SELECT regress_try($$SELECT dd_charge_credit('c1', 50)$$);
SELECT regress_try($$INSERT INTO api_usage_log (user_id, credits) VALUES ('c1', 50)$$);
SELECT dd_credit_balance('c1'), count(*) AS logged
FROM api_usage_log WHERE user_id = 'c1';
SELECT ok, balance FROM dd_charge_credit('c1', 2, 'small');
ALTER TABLE api_usage_log DROP CONSTRAINT api_usage_log_credits_check;
ALTER TABLE api_usage_log ADD CONSTRAINT api_usage_log_credits_check
    CHECK (credits >= 0);

-- A rule on api_credits fires for a charge, as for a plain UPDATE; a
-- grant, an upsert, is refused with the error INSERT ... ON CONFLICT gets
-- on a table with rules, and changes nothing.
CREATE TABLE regress_balance_audit (user_id text, old bigint, new bigint);
CREATE RULE regress_audit AS ON UPDATE TO api_credits
    DO ALSO INSERT INTO regress_balance_audit VALUES (OLD.user_id, OLD.balance, NEW.balance);
SELECT ok, balance FROM dd_charge_credit('c1', 1, 'ruled');
SELECT ok, balance FROM dd_charge_credit('c1', 1);
SELECT regress_try($$SELECT dd_grant_credit('c1', 5)$$);
SELECT * FROM regress_balance_audit;
SELECT dd_credit_balance('c1'), count(*) AS grants
FROM credit_grants WHERE user_id = 'c1';
DROP RULE regress_audit ON api_credits;

-- A column the user adds with a domain type gets the domain's default,
-- and a CHECK added to the domain later applies at once, in this session
-- that has already written through the same saved statements.
CREATE DOMAIN regress_region AS text DEFAULT 'eu' NOT NULL;
ALTER TABLE api_usage_log ADD COLUMN region regress_region;
ALTER TABLE usage_events ADD COLUMN region regress_region;
SELECT ok FROM dd_charge_credit('c1', 1, 'dom-1');
SELECT dd_log_usage('c1', '/free', 'dom-2') > 0 AS logged;
SELECT dd_track_event('c1', 'e', '{}', 'dom-3') > 0 AS stored;
SELECT dd_track_events('[{"user_id": "c1", "event": "b", "event_id": "dom-4"}]');
SELECT request_id, region FROM api_usage_log WHERE request_id LIKE 'dom-%' ORDER BY 1;
SELECT event_id, region FROM usage_events WHERE event_id LIKE 'dom-%' ORDER BY 1;
ALTER DOMAIN regress_region ADD CONSTRAINT regress_not_eu
    CHECK (VALUE <> 'eu') NOT VALID;
SELECT regress_try($$SELECT dd_charge_credit('c1', 1, 'dom-5')$$);
SELECT regress_try($$SELECT dd_track_event('c1', 'e', '{}', 'dom-6')$$);
SELECT dd_credit_balance('c1'), count(*) AS logged
FROM api_usage_log WHERE request_id IN ('dom-5', 'dom-6');
ALTER TABLE api_usage_log DROP COLUMN region;
ALTER TABLE usage_events DROP COLUMN region;
DROP DOMAIN regress_region;

-- The functions' owner needs the privileges the statements need: owned by
-- a role without them, a charge is refused with 42501, as SQL would
-- refuse that role, and nothing is written.
CREATE ROLE regress_nopriv;
ALTER FUNCTION dd_charge_credit(text, bigint, text, text, bigint, jsonb)
    OWNER TO regress_nopriv;
SELECT regress_try($$SELECT dd_charge_credit('c1', 1, 'unowned')$$);
SELECT regress_try($$SELECT dd_charge_credit('c1', 1)$$);
ALTER FUNCTION dd_charge_credit(text, bigint, text, text, bigint, jsonb)
    OWNER TO CURRENT_USER;
DROP ROLE regress_nopriv;
SELECT count(*) AS logged FROM api_usage_log WHERE request_id = 'unowned';
SELECT ok FROM dd_charge_credit('c1', 1, 'owned');

-- 5,000 retries of one event_id, each its own transaction, leave the
-- table and its unique index no bigger than INSERT ... ON CONFLICT DO
-- NOTHING leaves a copy of the table: nothing is written for a retry.
CREATE TABLE regress_events_copy (LIKE usage_events INCLUDING ALL);
SELECT dd_track_event('r1', 'e', '{}', 'once') > 0 AS stored;
INSERT INTO regress_events_copy (user_id, event, event_id)
VALUES ('r1', 'e', 'once');
CREATE PROCEDURE regress_retry(n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM dd_track_event('r1', 'e', '{}', 'once');
        INSERT INTO regress_events_copy (user_id, event, event_id)
        VALUES ('r1', 'e', 'once') ON CONFLICT (user_id, event_id) DO NOTHING;
        COMMIT;
    END LOOP;
END
$$;
CALL regress_retry(5000);
SELECT count(*) AS stored FROM usage_events WHERE user_id = 'r1';
SELECT pg_relation_size('usage_events') <= pg_relation_size('regress_events_copy')
           AS heap_no_bigger,
       pg_relation_size('usage_events_user_id_event_id_key')
           <= pg_relation_size(i.indexrelid) AS index_no_bigger,
       pg_relation_size('usage_events') AS heap_bytes
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'regress_events_copy'::regclass
  AND pg_get_indexdef(i.indexrelid) LIKE '%(user_id, event_id)%';
DROP PROCEDURE regress_retry(int);
DROP TABLE regress_events_copy;

-- The user changes user_id to uuid: a charge is an error that says so
-- (the statements no longer type-check), never a silent wrong answer.
DELETE FROM api_credits;
DROP POLICY IF EXISTS dd_user_rows ON api_credits;
ALTER TABLE api_credits ALTER COLUMN user_id TYPE uuid USING NULL;
SELECT regress_try($$SELECT dd_charge_credit('00000000-0000-0000-0000-000000000001', 1, 'typed')$$);
SELECT regress_try($$SELECT dd_charge_credit('00000000-0000-0000-0000-000000000001', 1)$$);
SELECT regress_try($$SELECT dd_grant_credit('00000000-0000-0000-0000-000000000001', 1)$$);

DROP EXTENSION dd_clipper;
