#!/usr/bin/env bash
# test/t/020_credits_load.sh -- the credits ledger under load.  For 15
# seconds, 32 clients against one hot user, 10,000 others and 200 users
# with 3 credits each: charges with deliberately repeated request ids
# (concurrent and sequential duplicates), charges of more than is left,
# refunds of random requests (many unknown or already refunded), grants
# with repeated idempotency keys, and free requests.  Beside them, 8
# clients in pairs send the same request id at the same time, each charge
# holding the balance row a moment before it commits.  A test-only trigger
# on api_credits records every change of a balance, and every charge's
# outcome is recorded in the charge's own transaction.
#
# Afterwards, exactly: no balance below zero, the ledger balances
# (dd_credit_audit() is empty), one usage row per successful charge, no
# request charged twice, every replay names its original charge, every
# refusal was for more than the balance, and each balance was written once
# per charge, grant and refund, never more.  The run must have reached what
# it proves: it prints and asserts how many charges were refused for too
# little credit, and how many duplicates sent while their original was in
# flight were replayed.
set -u
source "$DD_ROOT/test/lib/tap.bash"
source "$DD_ROOT/test/lib/pgbench.bash"

plan 21

db=dd_credits_load
scripts=$DD_ROOT/test/t/credits_load
log=$DD_ROOT/tmp_check/credits_load
fresh_db "$db"

q "$db" "
CREATE EXTENSION dd_clipper;
-- What each charge answered, written in the charge's own transaction; t0
-- (before the call) and t_end (just before commit) for the pairs.
CREATE UNLOGGED TABLE outcomes (user_id text, request_id text, amount bigint,
    ok boolean, balance bigint, usage_id bigint, replayed boolean,
    t0 timestamptz, t_end timestamptz);
CREATE FUNCTION charge(u text, amt bigint, req text) RETURNS boolean
LANGUAGE sql AS \$\$
    INSERT INTO outcomes
    SELECT u, req, amt, c.ok, c.balance, c.usage_id, c.replayed
    FROM dd_charge_credit(user_id => u, amount => amt, request_id => req, endpoint => '/load') c
    RETURNING ok
\$\$;
-- A charge of 1 under the request id of the current 10 ms slot, holding
-- the balance row 2 ms before its transaction commits.
CREATE FUNCTION charge_held(u text) RETURNS boolean
LANGUAGE plpgsql AS \$\$
DECLARE
    req text := 'p' || floor(extract(epoch FROM clock_timestamp()) * 100)::bigint;
    t0 timestamptz := clock_timestamp();
    c dd_charge;
BEGIN
    c := dd_charge_credit(user_id => u, amount => 1, request_id => req, endpoint => '/pair');
    PERFORM pg_sleep(0.002);
    INSERT INTO outcomes VALUES (u, req, 1, c.ok, c.balance, c.usage_id, c.replayed,
                                 t0, clock_timestamp());
    RETURN c.ok;
END
\$\$;
-- A refund of a request that may be unknown or refunded already.
CREATE FUNCTION try_refund(u text, req text) RETURNS boolean
LANGUAGE plpgsql AS \$\$
BEGIN
    PERFORM dd_refund_credit(u, req);
    RETURN true;
EXCEPTION WHEN no_data_found OR object_not_in_prerequisite_state THEN
    RETURN false;
END
\$\$;
SELECT count(dd_grant_credit('u' || i, 20, 'seed')) FROM generate_series(1, 10000) i;
SELECT count(dd_grant_credit('low' || i, 3, 'seed')) FROM generate_series(1, 200) i;
SELECT count(dd_grant_credit('pair' || i, 1000000, 'seed')) FROM generate_series(0, 3) i;
SELECT dd_grant_credit('hot', 500, 'seed');
-- Test instrument: every change of a balance, as the trigger sees it.
CREATE UNLOGGED TABLE balance_writes (user_id text, old bigint, new bigint);
CREATE FUNCTION record_balance_write() RETURNS trigger LANGUAGE plpgsql AS
\$\$BEGIN INSERT INTO balance_writes VALUES (NEW.user_id, OLD.balance, NEW.balance); RETURN NEW; END\$\$;
CREATE TRIGGER record_balance_write AFTER UPDATE ON api_credits
    FOR EACH ROW EXECUTE FUNCTION record_balance_write();
" >/dev/null
ok $? "10,000 users, 200 low-balance users, 4 pairs and one hot user seeded"
seeded=$(q "$db" "SELECT count(*) FROM credit_grants")

start=$(date +%s)
pgbench_run "$log.pairs.log" -n -c 8 -j 1 -T 15 -d "$db" -f "$scripts/charge_pair.sql" &
pgbench_run "$log.pgbench.log" -n -c 32 -j 2 -T 15 -d "$db" \
    -f "$scripts/charge_hot.sql@35" -f "$scripts/charge_many.sql@35" \
    -f "$scripts/charge_low.sql@10" \
    -f "$scripts/refund.sql@10" -f "$scripts/grant.sql@5" -f "$scripts/log.sql@5"
wait
pgbench_ok "$log.pgbench.log" "pgbench: 32 clients, no error, no failed transaction, no deadlock"
pgbench_ok "$log.pairs.log" "pgbench: 8 paired clients, no error, no failed transaction, no deadlock"
diag "transactions: $(pgbench_processed "$log.pgbench.log") + $(pgbench_processed "$log.pairs.log") in pairs;" \
     "run took $(( $(date +%s) - start )) s"

is "$(q "$db" "SELECT count(*) FROM api_credits WHERE balance < 0")" "0" \
   "no balance below zero"
is "$(q "$db" "SELECT count(*) FROM dd_credit_audit()")" "0" \
   "dd_credit_audit() is empty: every balance = grants - charges + refunds"
is "$(q "$db" "
    SELECT (SELECT count(*) FROM api_usage_log WHERE credits > 0)
         = (SELECT count(*) FROM outcomes WHERE ok AND NOT replayed)")" "t" \
   "usage rows = successful charges"
is "$(q "$db" "
    SELECT count(*) FROM (SELECT user_id, request_id FROM outcomes
                          WHERE ok AND NOT replayed GROUP BY 1, 2
                          HAVING count(*) > 1) d")" "0" \
   "no request id charged twice"
is "$(q "$db" "
    SELECT count(*) FROM outcomes o
    WHERE o.replayed AND NOT EXISTS (
        SELECT FROM api_usage_log l
        WHERE l.user_id = o.user_id AND l.id = o.usage_id
          AND l.request_id = o.request_id
          AND (l.balance_after = o.balance OR l.credits = 0))")" "0" \
   "every replay returned its original usage row (and a charge's balance)"
is "$(q "$db" "
    SELECT count(*) FROM outcomes o
    WHERE o.ok AND NOT o.replayed AND NOT EXISTS (
        SELECT FROM api_usage_log l
        WHERE l.user_id = o.user_id AND l.id = o.usage_id AND l.credits = o.amount)")" "0" \
   "every successful charge has its usage row with its amount"

# Too little credit: refusals are reached, and each one was right.
refused=$(q "$db" "SELECT count(*) FROM outcomes WHERE NOT ok AND user_id LIKE 'low%'")
diag "charges refused for too little credit (low-balance users): $refused"
[ "${refused:-0}" -gt 0 ]
ok $? "charges of more than the balance were refused ($refused)"
# A low-balance user's balance only goes down (no grants, no refunds), so
# the balance a refusal reports is below the amount asked.
is "$(q "$db" "SELECT count(*) FROM outcomes WHERE NOT ok AND user_id LIKE 'low%'
               AND (balance >= amount OR usage_id IS NOT NULL OR replayed)")" "0" \
   "every refusal of a low-balance user reported a balance below its amount"
is "$(q "$db" "SELECT count(*) FROM outcomes WHERE NOT ok AND (usage_id IS NOT NULL OR replayed)")" "0" \
   "no refusal has a usage row"
is "$(q "$db" "
    SELECT count(*) FROM api_credits c
    WHERE c.user_id LIKE 'low%' AND c.balance + coalesce((
        SELECT sum(credits) FROM api_usage_log l WHERE l.user_id = c.user_id), 0)
        - coalesce((SELECT sum(l.credits) FROM credit_refunds r JOIN api_usage_log l
                    USING (user_id, request_id) WHERE r.user_id = c.user_id), 0) <> 3")" "0" \
   "every low-balance user: balance + charges - refunds = the 3 credits granted"

# Each balance write is one charge, grant or refund (a debit given back
# would show as one write more of each kind).
is_same "$(q "$db" "SELECT count(*) || ' debits of ' || coalesce(sum(old - new), 0)
                    FROM balance_writes WHERE new < old")" \
        "$(q "$db" "SELECT count(*) || ' debits of ' || coalesce(sum(amount), 0)
                    FROM outcomes WHERE ok AND NOT replayed")" \
   "balances were debited once per successful charge, by its amount"
is_same "$(q "$db" "SELECT count(*) FROM balance_writes WHERE new > old")" \
        "$(q "$db" "SELECT (SELECT count(*) - $seeded FROM credit_grants)
                         + (SELECT count(*) FROM credit_refunds)")" \
   "balances were credited once per grant and refund"
is "$(q "$db" "SELECT count(*) FROM balance_writes WHERE new = old")" "0" \
   "no balance was written without changing"

# Concurrent duplicates: a replay whose call began before its original's
# transaction had committed (t_end is taken just before the commit).
inflight=$(q "$db" "
    SELECT count(*) FROM outcomes d JOIN outcomes o USING (user_id, request_id)
    WHERE d.user_id LIKE 'pair%' AND d.replayed AND o.ok AND NOT o.replayed
      AND d.t0 < o.t_end")
diag "duplicates sent while their original was in flight, replayed: $inflight" \
     "(of $(q "$db" "SELECT count(*) FROM outcomes WHERE user_id LIKE 'pair%' AND replayed") pair replays)"
[ "${inflight:-0}" -gt 0 ]
ok $? "duplicates sent while the original was in flight were replayed ($inflight)"

# The run must have exercised what it claims to.
is "$(q "$db" "SELECT count(*) > 0 FROM outcomes WHERE replayed AND user_id = 'hot'")" "t" \
   "duplicates of hot-user requests were replayed"
is "$(q "$db" "SELECT count(*) > 0 FROM outcomes WHERE NOT ok AND user_id = 'hot'")" "t" \
   "the hot user ran out of credit (charges were refused)"
is "$(q "$db" "SELECT count(*) > 0 FROM credit_refunds")" "t" "refunds happened"
is "$(q "$db" "SELECT count(*) > $seeded FROM credit_grants")" "t" \
   "grants happened (beyond the seed)"

psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done_testing
