--
-- roles: dd_grant_app_role gives the request path and never a write to the
-- ledger; dd_grant_billing_role adds grants, refunds, the audit and key
-- management; row-level security keyed on a signed claim confines a role to
-- one user's rows.
--
CREATE EXTENSION dd_clipper;
CREATE ROLE regress_app;
CREATE ROLE regress_billing;
CREATE ROLE regress_nobody;

-- Bad input.
\set VERBOSITY sqlstate
SELECT dd_grant_app_role(NULL);
SELECT dd_grant_app_role('regress_no_such_role');
SELECT dd_enable_row_security(NULL);
\set VERBOSITY default
SELECT dd_grant_app_role('regress_no_such_role');

SELECT dd_grant_app_role('regress_app');
SELECT dd_grant_billing_role('regress_billing');

-- What each role may execute, by function.
SELECT p.proname COLLATE "C" AS function,
       has_function_privilege('regress_app', p.oid, 'EXECUTE') AS app,
       has_function_privilege('regress_billing', p.oid, 'EXECUTE') AS billing,
       has_function_privilege('regress_nobody', p.oid, 'EXECUTE') AS nobody
FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
ORDER BY 1;

-- What each role may do to each table: never a write to the ledger.
SELECT c.relname COLLATE "C" AS "table",
       concat_ws(',',
           CASE WHEN has_table_privilege('regress_app', c.oid, 'SELECT') THEN 'select' END,
           CASE WHEN has_table_privilege('regress_app', c.oid, 'INSERT') THEN 'insert' END,
           CASE WHEN has_table_privilege('regress_app', c.oid, 'UPDATE') THEN 'update' END,
           CASE WHEN has_table_privilege('regress_app', c.oid, 'DELETE') THEN 'delete' END) AS app,
       concat_ws(',',
           CASE WHEN has_table_privilege('regress_billing', c.oid, 'SELECT') THEN 'select' END,
           CASE WHEN has_table_privilege('regress_billing', c.oid, 'INSERT') THEN 'insert' END,
           CASE WHEN has_table_privilege('regress_billing', c.oid, 'UPDATE') THEN 'update' END,
           CASE WHEN has_table_privilege('regress_billing', c.oid, 'DELETE') THEN 'delete' END) AS billing
FROM pg_class c
JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dd_clipper'
WHERE c.relkind = 'r'
ORDER BY 1;

-- The application role uses the request path and nothing more.
SELECT dd_grant_credit('u1', 10);
SET ROLE regress_app;
SELECT * FROM dd_charge_credit(user_id => 'u1', amount => 3, request_id => 'r1');
SELECT dd_credit_balance('u1');
\set VERBOSITY sqlstate
SELECT dd_grant_credit('u1', 1000);
UPDATE api_credits SET balance = 1000000 WHERE user_id = 'u1';
INSERT INTO api_usage_log (user_id, credits) VALUES ('u1', 0);
SELECT dd_refund_credit('u1', 'r1');
SELECT * FROM dd_create_api_key('u1');
\set VERBOSITY default
INSERT INTO clips (user_id, title) VALUES ('u1', 'written by the app role');
RESET ROLE;

-- The billing role adds credit and refunds.
SET ROLE regress_billing;
SELECT dd_grant_credit('u1', 5);
SELECT dd_refund_credit('u1', 'r1');
SELECT count(*) AS unsound_users FROM dd_credit_audit();
RESET ROLE;

-- Row-level security: off until enabled, then confined to the user of a
-- signed claim (dd_set_claim), which no SET can change.
INSERT INTO clips (user_id, title) VALUES ('u2', 'someone else''s');
SELECT dd_sign_claim('u1', now() + interval '5 minutes') AS claim_u1 \gset
SET ROLE regress_app;
SELECT user_id, title FROM clips ORDER BY user_id COLLATE "C";
RESET ROLE;
SELECT dd_enable_row_security();
SET ROLE regress_app;
SELECT count(*) AS visible_while_unset FROM clips;
-- The 1.0 setting is read by nothing any more.
SET dd_clipper.user_id = 'u2';
SELECT count(*) AS visible_with_the_old_setting FROM clips;
RESET dd_clipper.user_id;
BEGIN;
SELECT dd_set_claim(:'claim_u1');
SELECT user_id, title FROM clips ORDER BY user_id COLLATE "C";
SELECT user_id, balance FROM api_credits ORDER BY 1;
UPDATE clips SET title = 'renamed' WHERE user_id = 'u2';
DELETE FROM clips WHERE user_id = 'u2';
SAVEPOINT planted;
\set VERBOSITY sqlstate
INSERT INTO clips (user_id, title) VALUES ('u2', 'planted');
ROLLBACK TO planted;
SELECT dd_credit_balance('u2');
\set VERBOSITY default
ROLLBACK TO planted;
COMMIT;
-- The claim ended with its transaction.
SELECT count(*) AS visible_after_commit FROM clips;
-- Only a trusted role signs.
\set VERBOSITY sqlstate
SELECT dd_sign_claim('u2', now() + interval '5 minutes');
\set VERBOSITY default
RESET ROLE;
SELECT user_id, title FROM clips ORDER BY user_id COLLATE "C", title COLLATE "C";
SELECT dd_enable_row_security(false);
SELECT relname COLLATE "C" AS relname, relrowsecurity FROM pg_class
WHERE relname IN ('clips', 'api_credits') ORDER BY 1;

-- A misspelled setting under the reserved prefix is refused.
SET dd_clipper.user_idd = 'x';

DROP EXTENSION dd_clipper;
DROP OWNED BY regress_app, regress_billing;
DROP ROLE regress_app;
DROP ROLE regress_billing;
DROP ROLE regress_nobody;
