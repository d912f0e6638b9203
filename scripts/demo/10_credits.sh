#!/usr/bin/env bash
# scripts/demo/10_credits.sh -- prepaid credits: a grant, eight clients
# charging one user at once (with overlapping request ids), the exact
# balance and usage log afterwards, and a replayed request.
# Run by scripts/demo.sh (PGHOST, PGPORT, PGUSER and DD_DEMO_DB are set).
set -euo pipefail
db=${DD_DEMO_DB:-dd_demo}
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

echo
echo '==> grant 100 credits to user_demo (the idempotency key makes a repeat harmless)'
sql -c "SELECT dd_grant_credit(user_id => 'user_demo', amount => 100,
                               reason => 'demo top-up', idempotency_key => 'invoice-1') AS balance"
sql -c "SELECT dd_grant_credit(user_id => 'user_demo', amount => 100,
                               reason => 'demo top-up', idempotency_key => 'invoice-1') AS balance_after_repeat"

echo '==> 8 clients at once, 25 charges each (200 requests, ids req-1 .. req-130:'
echo '    overlapping, so the same request often arrives from two clients at once)'
tmp=$(mktemp -d)
for c in $(seq 1 8); do
    for k in $(seq 1 25); do
        id=$(( (c * 13 + k * 7) % 130 + 1 ))
        echo "SELECT CASE WHEN replayed THEN 'replayed' WHEN ok THEN 'charged' ELSE 'refused' END
              FROM dd_charge_credit(user_id => 'user_demo', amount => 1,
                                    request_id => 'req-$id', endpoint => '/v1/clip');"
    done | psql -X -q -At -d "$db" >"$tmp/client$c" &
done
wait
echo '    what the 200 calls answered:'
cat "$tmp"/client* | sort | uniq -c | sed 's/^/    /'
rm -rf "$tmp"

echo '==> the balance is exact: 100 granted, one credit per charged request, never below zero'
sql -c "SELECT dd_credit_balance('user_demo') AS balance,
               (SELECT count(*) FROM api_usage_log WHERE user_id = 'user_demo') AS usage_rows,
               (SELECT count(DISTINCT request_id) FROM api_usage_log WHERE user_id = 'user_demo') AS distinct_requests"
sql -c "SELECT id AS usage_id, request_id, endpoint, credits, balance_after
        FROM api_usage_log WHERE user_id = 'user_demo' ORDER BY id DESC LIMIT 3"

rid=$(psql -X -At -d "$db" -c "SELECT request_id FROM api_usage_log
                                WHERE user_id = 'user_demo' ORDER BY id LIMIT 1")
echo "==> a client retries $rid: the original outcome (same usage_id and balance), replayed, nothing charged"
sql -c "SELECT * FROM dd_charge_credit(user_id => 'user_demo', amount => 1, request_id => '$rid')"
sql -c "SELECT id AS usage_id, balance_after FROM api_usage_log
        WHERE user_id = 'user_demo' AND request_id = '$rid'"

echo "==> refund $rid (once), and the audit: grants - charges + refunds = balance for every user"
sql -c "SELECT dd_refund_credit(user_id => 'user_demo', request_id => '$rid', reason => 'upstream timeout') AS balance"
sql -c "SELECT count(*) AS users_out_of_balance FROM dd_credit_audit()"
