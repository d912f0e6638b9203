-- Verify the current key of one of 4 slots, timing the call.
\set s random(1, 4)
SELECT verify(:s);
