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

-- The triggers dropped: direct again, nothing fires.
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

DROP EXTENSION dd_clipper;
