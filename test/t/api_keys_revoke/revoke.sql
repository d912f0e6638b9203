-- Revoke the current key of one of 4 slots, holding the row 5 ms before
-- the commit, note who waits on it just before committing and when the
-- commit was over, then give the slot a new key.
\set s random(1, 4)
BEGIN;
SELECT slot_revoke(:s) AS rid \gset
SELECT pg_sleep(0.005);
SELECT revoke_committing(:rid);
COMMIT;
UPDATE revokes SET t_after = clock_timestamp() WHERE id = :rid;
SELECT slot_renew(:s);
