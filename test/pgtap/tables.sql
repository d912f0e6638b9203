--
-- test/pgtap/tables.sql -- what the tables' constraints do: a key hash that
-- is not a SHA-256 and a negative balance are refused, a Convex _id is
-- unique per user while native rows never conflict, and a balance row and a
-- clip need nothing but what identifies them.  The tables' shape is
-- checked in test/pgtap/schema.sql.
--
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION dd_clipper;

SELECT plan(8);

SELECT throws_ok(
    $$INSERT INTO api_keys (user_id, prefix, key_hash) VALUES ('u', 'p', '\x00')$$,
    '23514', NULL, 'a key hash that is not 32 bytes is refused');
SELECT throws_ok(
    $$INSERT INTO api_credits (user_id, balance) VALUES ('u', -1)$$,
    '23514', NULL, 'a negative balance is refused on insert');
INSERT INTO api_credits (user_id, balance) VALUES ('u-check', 5);
SELECT throws_ok(
    $$UPDATE api_credits SET balance = balance - 6 WHERE user_id = 'u-check'$$,
    '23514', NULL, 'a balance driven below zero is refused on update');
SELECT lives_ok(
    $$INSERT INTO api_credits (user_id) VALUES ('u-defaults')$$,
    'a balance row needs only its user id');
SELECT lives_ok(
    $$INSERT INTO clips (user_id, title) VALUES ('u', 'plain insert')$$,
    'a clip needs only its user and title');

INSERT INTO clips (user_id, title, convex_id) VALUES ('u', 'imported', 'k1');
SELECT throws_ok(
    $$INSERT INTO clips (user_id, title, convex_id) VALUES ('u', 'again', 'k1')$$,
    '23505', NULL, 'a Convex _id is imported once per user');
SELECT lives_ok(
    $$INSERT INTO clips (user_id, title, convex_id) VALUES ('u2', 'other user', 'k1')$$,
    'another user may hold the same Convex _id');
SELECT lives_ok(
    $$INSERT INTO clips (user_id, title) VALUES ('u', 'native 1'), ('u', 'native 2')$$,
    'native rows (no convex_id) never conflict with each other');

SELECT * FROM finish();
ROLLBACK;
