/*-------------------------------------------------------------------------
 *
 * credits.c
 *	  Prepaid credits and the usage log: dd_grant_credit, dd_charge_credit,
 *	  dd_refund_credit, dd_credit_balance, dd_credit_audit, dd_log_usage,
 *	  and DdChargeCredit, the charge for other features (credits.h).
 *
 * The ledger.  api_credits holds one balance per user.  Every change to a
 * balance is written in the same statement as its ledger row: a grant as a
 * credit_grants row, a charge as an api_usage_log row (credits > 0), a
 * refund as a credit_refunds row.  Usage rows removed by retention are
 * summed into api_usage_rollup.  So for every user, at every snapshot,
 *
 *	  balance = grants - (usage credits + rollup charged) + refunds
 *
 * and dd_credit_audit() lists the users for whom it does not hold.
 *
 * Locking rules.  The balance row of a user (api_credits) is the single
 * writer lock of that user's credit: every change of a balance first takes
 * that row's lock (a conditional SELECT ... FOR NO KEY UPDATE, a
 * conditional UPDATE or an upsert) and holds it to the end of the
 * transaction, so two changes of one balance never interleave.  The unique
 * indexes on the ledger make repeats exact:
 * (user_id, request_id) on api_usage_log for charges and logged requests,
 * (user_id, request_id) on credit_refunds for refunds, (user_id,
 * idempotency_key) on credit_grants for grants.  An insertion into a unique
 * index waits for an in-flight transaction that inserted the same key, so a
 * concurrent duplicate learns the first one's outcome once it is final.
 *
 * Lock order: a charge locks the balance row, then inserts its usage row;
 * a grant inserts its grant row, then locks the balance row; a refund
 * inserts its refund row, then locks the balance row.  No function waits
 * for a ledger key while another waits for it on the balance row in the
 * opposite order (charges never touch credit_grants or credit_refunds), so
 * the functions cannot deadlock with each other when each call is its own
 * transaction.  A client transaction that combines several calls can, as
 * any transaction can (for example one that logs request r with
 * dd_log_usage and then charges the same user, against a charge of r
 * already holding that user's balance row); PostgreSQL detects it and
 * fails one of them with 40P01.
 *
 * Why no subtransaction and no give-back: the charge must turn a
 * concurrent duplicate into a replay, not an error, and catching a unique
 * violation would need a subtransaction on every call.  A charge takes the
 * balance row lock first and writes its usage row with INSERT ... ON
 * CONFLICT DO NOTHING before it debits: a request id that is taken (by a
 * duplicate that held the lock before it, or by a logged request, whose
 * insertion it waits for) is found before anything is debited, and the
 * call becomes a replay with nothing written.  The conflict check runs
 * before the row is written, so a retry leaves no dead row version.
 *
 * Isolation levels.  The promises are made under READ COMMITTED, where each
 * statement sees what committed before it started.  Under REPEATABLE READ
 * or SERIALIZABLE a concurrent change of the same balance or ledger key
 * makes the call fail with a serialization failure (40001), as PostgreSQL
 * does for any write; the caller retries the transaction.
 *
 * Every read and write goes through the executor (SPI), so whatever the
 * same SQL would meet on these tables -- a user's constraint, domain, rule,
 * trigger, privilege or row policy, an executor hook, a distributed engine
 * -- applies to these calls too.  Each statement is single-table and keyed
 * by user_id, with the time passed as a parameter.  Every query is
 * prepared once per backend and kept (DdPlan), and names every table,
 * function and operator with its schema, so the caller's search_path
 * changes nothing.  The SQL functions are SECURITY DEFINER:
 * callers need EXECUTE on them, never write access to the tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dd_clipper.h"
#include "credits.h"

PG_FUNCTION_INFO_V1(dd_grant_credit);
PG_FUNCTION_INFO_V1(dd_charge_credit);
PG_FUNCTION_INFO_V1(dd_refund_credit);
PG_FUNCTION_INFO_V1(dd_credit_balance);
PG_FUNCTION_INFO_V1(dd_credit_audit);
PG_FUNCTION_INFO_V1(dd_log_usage);

/*
 * Every statement below is a single-table statement keyed by user_id (so a
 * distributed engine can route it by its first parameter), with the time
 * passed as a parameter rather than computed in it.
 */

/*
 * Take the user's balance row lock if the balance covers amount ($2), and
 * read the balance under it: every charge with a request id starts here,
 * so two charges of one user, and a charge and its own retry, serialize
 * on this lock.  The condition is checked as an UPDATE checks its WHERE
 * clause: a row that does not qualify in the statement's snapshot is not
 * waited for, and one that was waited for is checked again in its newest
 * version.  No row: too little credit, or no balance row.  FOR NO KEY
 * UPDATE is the lock the debit that follows takes anyway.
 */
static DdPlan lock_plan = {
	.query =
	"SELECT c.balance FROM @extschema@.api_credits c"
	" WHERE c.user_id OPERATOR(pg_catalog.=) $1"
	" AND c.balance OPERATOR(pg_catalog.>=) $2"
	" FOR NO KEY UPDATE OF c",
	.nargs = 2,
	.argtypes = {TEXTOID, INT8OID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * The debit: take amount ($2) if the balance covers it; $3 is now().
 * Column 1 is the new balance; no row: not debited.
 */
static DdPlan debit_plan = {
	.query =
	"UPDATE @extschema@.api_credits c"
	" SET balance = c.balance OPERATOR(pg_catalog.-) $2, updated_at = $3"
	" WHERE c.user_id OPERATOR(pg_catalog.=) $1"
	" AND c.balance OPERATOR(pg_catalog.>=) $2"
	" RETURNING c.balance",
	.nargs = 3,
	.argtypes = {TEXTOID, INT8OID, TIMESTAMPTZOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A usage row, once per request id: a charge's (credits $4 > 0, with the
 * balance after it, $7) or a free logged request's (credits 0, $7 NULL).
 * Column 1 is the new row's id; no row: the request id is taken.  The
 * conflict check runs before the row is written, so a retry of a stored
 * request writes nothing, not even a dead row version.
 */
static DdPlan usage_plan = {
	.query =
	"INSERT INTO @extschema@.api_usage_log AS l"
	"  (user_id, request_id, endpoint, credits, api_key_id, metadata, balance_after)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7)"
	" ON CONFLICT ON CONSTRAINT api_usage_log_user_id_request_id_key DO NOTHING"
	" RETURNING l.id",
	.nargs = 7,
	.argtypes = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, JSONBOID, INT8OID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * The usage row of one request, through the unique (user_id, request_id)
 * index.  The extension script sets user_id's n_distinct on api_usage_log
 * so that the planner does not take a busy user it has no statistics for
 * as a user of one row, and read all of that user's rows through another
 * index led by user_id (test/t/012_executor_hooks.sh checks the plan).
 * Columns: 1 id, 2 credits, 3 balance_after.
 */
static DdPlan lookup_plan = {
	.query =
	"SELECT l.id, l.credits, l.balance_after FROM @extschema@.api_usage_log l"
	" WHERE l.user_id OPERATOR(pg_catalog.=) $1"
	" AND l.request_id OPERATOR(pg_catalog.=) $2",
	.nargs = 2,
	.argtypes = {TEXTOID, TEXTOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A grant's ledger row, once per idempotency key.  Column 1 is the amount;
 * no row: the key was used before.
 */
static DdPlan grant_row_plan = {
	.query =
	"INSERT INTO @extschema@.credit_grants AS g"
	"  (user_id, amount, reason, idempotency_key)"
	" VALUES ($1, $2, $3, $4)"
	" ON CONFLICT ON CONSTRAINT credit_grants_user_id_idempotency_key_key DO NOTHING"
	" RETURNING g.amount",
	.nargs = 4,
	.argtypes = {TEXTOID, INT8OID, TEXTOID, TEXTOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A refund's ledger row, once per request ($4 the usage row, $5 its
 * credits).  Column 1 is the amount; no row: refunded before.
 */
static DdPlan refund_row_plan = {
	.query =
	"INSERT INTO @extschema@.credit_refunds AS r"
	"  (user_id, request_id, usage_id, amount, reason)"
	" VALUES ($1, $2, $4, $5, $3)"
	" ON CONFLICT ON CONSTRAINT credit_refunds_user_id_request_id_key DO NOTHING"
	" RETURNING r.amount",
	.nargs = 5,
	.argtypes = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * Add $2 credits to the balance, creating the balance row if needed (a
 * grant or a refund, after its ledger row); $3 is now().  Column 1 is the
 * new balance.
 */
static DdPlan credit_plan = {
	.query =
	"INSERT INTO @extschema@.api_credits AS c (user_id, balance, updated_at)"
	" VALUES ($1, $2, $3)"
	" ON CONFLICT ON CONSTRAINT api_credits_pkey DO UPDATE"
	" SET balance = c.balance OPERATOR(pg_catalog.+) excluded.balance,"
	"     updated_at = excluded.updated_at"
	" RETURNING c.balance",
	.nargs = 3,
	.argtypes = {TEXTOID, INT8OID, TIMESTAMPTZOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/* The balance of one user; no row: no balance row. */
static DdPlan balance_plan = {
	.query =
	"SELECT c.balance FROM @extschema@.api_credits c"
	" WHERE c.user_id OPERATOR(pg_catalog.=) $1",
	.nargs = 1,
	.argtypes = {TEXTOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * The audit: every user who appears in the balance table or in any part of
 * the ledger, with the balance (0 without a balance row) and what the
 * ledger says it must be; only the users where the two differ.
 */
static DdPlan audit_plan = {
	.query =
	"WITH g AS ("
	"  SELECT x.user_id, pg_catalog.sum(x.amount) AS s"
	"  FROM @extschema@.credit_grants x GROUP BY x.user_id),"
	" u AS ("
	"  SELECT x.user_id, pg_catalog.sum(x.credits) AS s"
	"  FROM @extschema@.api_usage_log x GROUP BY x.user_id),"
	" r AS ("
	"  SELECT x.user_id, pg_catalog.sum(x.amount) AS s"
	"  FROM @extschema@.credit_refunds x GROUP BY x.user_id),"
	" who AS ("
	"  SELECT x.user_id FROM @extschema@.api_credits x"
	"  UNION SELECT g.user_id FROM g"
	"  UNION SELECT u.user_id FROM u"
	"  UNION SELECT r.user_id FROM r"
	"  UNION SELECT x.user_id FROM @extschema@.api_usage_rollup x),"
	" t AS ("
	"  SELECT w.user_id,"
	"    COALESCE(c.balance, 0::pg_catalog.int8)::pg_catalog.numeric AS balance,"
	"    COALESCE(g.s, 0::pg_catalog.numeric)"
	"      OPERATOR(pg_catalog.-) COALESCE(u.s, 0::pg_catalog.numeric)"
	"      OPERATOR(pg_catalog.-) COALESCE(ro.charged, 0::pg_catalog.int8)::pg_catalog.numeric"
	"      OPERATOR(pg_catalog.+) COALESCE(r.s, 0::pg_catalog.numeric) AS expected"
	"  FROM who w"
	"  LEFT JOIN @extschema@.api_credits c ON c.user_id OPERATOR(pg_catalog.=) w.user_id"
	"  LEFT JOIN g ON g.user_id OPERATOR(pg_catalog.=) w.user_id"
	"  LEFT JOIN u ON u.user_id OPERATOR(pg_catalog.=) w.user_id"
	"  LEFT JOIN r ON r.user_id OPERATOR(pg_catalog.=) w.user_id"
	"  LEFT JOIN @extschema@.api_usage_rollup ro"
	"    ON ro.user_id OPERATOR(pg_catalog.=) w.user_id)"
	" SELECT t.user_id, t.balance::pg_catalog.int8, t.expected::pg_catalog.int8"
	" FROM t WHERE t.balance OPERATOR(pg_catalog.<>) t.expected"
	" ORDER BY t.user_id COLLATE pg_catalog.\"C\"",
	.nargs = 0
};

/*
 * CheckedText
 *		A text value already fetched by a caller: NULL is an error when
 *		required; otherwise the DD_MAX_* checks of DdCheckText.
 */
static text *
CheckedText(text *value, bool required, const char *argname, int max_chars)
{
	if (value == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argname)));
		return NULL;
	}
	DdCheckText(value, argname, max_chars);
	return value;
}

/*
 * AmountArg
 *		Argument argno, a bigint amount that must not be NULL and must be
 *		> 0.
 */
static int64
AmountArg(FunctionCallInfo fcinfo, int argno)
{
	int64		amount;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("amount must not be null")));
	amount = PG_GETARG_INT64(argno);
	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be positive"),
				 errdetail("The amount given is " INT64_FORMAT ".", amount)));
	return amount;
}

static void DdCheckMetadata(Jsonb *metadata);

/*
 * DdCheckChargeArgs
 *		The checks of a charge's amount and metadata: amount must be zero or
 *		positive, and metadata, when given, a JSON object (so usage rows can
 *		be queried by key, and a stray string or array is caught at the
 *		door).
 */
static void
DdCheckChargeArgs(int64 amount, Jsonb *metadata)
{
	if (amount < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be zero or positive"),
				 errdetail("The amount given is " INT64_FORMAT ".", amount),
				 errhint("Use dd_refund_credit to give credit back.")));
	DdCheckMetadata(metadata);
}

/*
 * DdCheckMetadata
 *		metadata, when given, must be a JSON object.
 */
static void
DdCheckMetadata(Jsonb *metadata)
{
	if (metadata != NULL && !JB_ROOT_IS_OBJECT(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("metadata must be a JSON object"),
				 errdetail("The value given is a JSON %s.",
						   JB_ROOT_IS_SCALAR(metadata) ? "scalar" : "array"),
				 errhint("Pass an object such as '{\"model\": \"small\"}', or NULL.")));
}

/*
 * DdGetChargeArgs
 *		Read and check the charge arguments of an SQL function: amount
 *		(required), request_id and endpoint (optional, within their limits)
 *		and metadata (optional JSON object), in that order of checks.
 */
void
DdGetChargeArgs(FunctionCallInfo fcinfo, int amount_arg, int request_id_arg,
				int endpoint_arg, int metadata_arg, DdChargeArgs *args)
{
	if (PG_ARGISNULL(amount_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("amount must not be null")));
	args->amount = PG_GETARG_INT64(amount_arg);
	args->request_id = DdOptionalTextArg(fcinfo, request_id_arg, "request_id",
										 DD_MAX_REQUEST_ID);
	args->endpoint = DdOptionalTextArg(fcinfo, endpoint_arg, "endpoint",
									   DD_MAX_ENDPOINT);
	args->metadata = PG_ARGISNULL(metadata_arg) ? NULL :
		PG_GETARG_JSONB_P(metadata_arg);
	DdCheckChargeArgs(args->amount, args->metadata);
}

/* GetInt64: column col (1-based) of the first result row, or isnull. */
static int64
GetInt64(int col, bool *isnull)
{
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * UsageRow
 *		The api_usage_log row of one request, as LookupUsage finds it.
 */
typedef struct UsageRow
{
	int64		id;
	int64		credits;
	bool		has_balance_after;
	int64		balance_after;
} UsageRow;

/*
 * LookupUsage
 *		Find the usage row of (user_id, request_id) as a new statement sees
 *		it (READ COMMITTED: everything committed so far, including a
 *		duplicate this call just waited for).  Must be connected to SPI.
 */
static bool
LookupUsage(Oid nspid, text *user_id, text *request_id, UsageRow *row)
{
	Datum		values[2];
	bool		isnull;

	values[0] = PointerGetDatum(user_id);
	values[1] = PointerGetDatum(request_id);
	if (DdExecutePlan(&lookup_plan, nspid, values, NULL, false, 1,
					  SPI_OK_SELECT) != 1)
		return false;
	row->id = GetInt64(1, &isnull);
	row->credits = GetInt64(2, &isnull);
	row->balance_after = GetInt64(3, &isnull);
	row->has_balance_after = !isnull;
	return true;
}

/*
 * CurrentBalance
 *		The balance of user_id from a new snapshot; false when the user has
 *		no balance row.  Must be connected to SPI.
 */
static bool
CurrentBalance(Oid nspid, text *user_id, int64 *balance)
{
	Datum		values[1];
	bool		isnull;

	values[0] = PointerGetDatum(user_id);
	if (DdExecutePlan(&balance_plan, nspid, values, NULL, false, 1,
					  SPI_OK_SELECT) != 1)
		return false;
	*balance = GetInt64(1, &isnull);
	return !isnull;
}

/*
 * Replay
 *		Fill result with the outcome of the earlier usage row of the
 *		request: ok, replayed, its usage_id, and the balance stored with it
 *		(the current balance for a row logged without one).  Must be
 *		connected to SPI.
 */
static void
Replay(Oid nspid, text *user_id, UsageRow *row, DdChargeResult *result)
{
	result->ok = true;
	result->replayed = true;
	result->has_usage_id = true;
	result->usage_id = row->id;
	if (row->has_balance_after)
	{
		result->has_balance = true;
		result->balance = row->balance_after;
	}
	else
		result->has_balance = CurrentBalance(nspid, user_id, &result->balance);
}

/*
 * InsertUsage
 *		Write the usage row of a request (credits > 0 with balance_after
 *		for a charge, 0 and no balance for a logged request); false when
 *		the request id is already taken, and then nothing was written.
 *		Must be connected to SPI.
 */
static bool
InsertUsage(Oid nspid, text *user_id, text *request_id, text *endpoint,
			int64 credits, bool has_api_key_id, Datum api_key_id,
			Jsonb *metadata, bool has_balance_after, int64 balance_after,
			int64 *id)
{
	Datum		values[7];
	char		nulls[7];
	bool		isnull;

	values[0] = PointerGetDatum(user_id);
	nulls[0] = ' ';
	values[1] = PointerGetDatum(request_id);
	nulls[1] = request_id ? ' ' : 'n';
	values[2] = PointerGetDatum(endpoint);
	nulls[2] = endpoint ? ' ' : 'n';
	values[3] = Int64GetDatum(credits);
	nulls[3] = ' ';
	values[4] = api_key_id;
	nulls[4] = has_api_key_id ? ' ' : 'n';
	values[5] = JsonbPGetDatum(metadata);
	nulls[5] = metadata ? ' ' : 'n';
	values[6] = Int64GetDatum(balance_after);
	nulls[6] = has_balance_after ? ' ' : 'n';

	if (DdExecutePlan(&usage_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) != 1)
		return false;
	*id = GetInt64(1, &isnull);
	return true;
}

/*
 * Debit
 *		Take amount from user_id's balance if it covers it; false when it
 *		does not (or there is no balance row).  *balance is the new balance.
 *		Must be connected to SPI.
 */
static bool
Debit(Oid nspid, text *user_id, int64 amount, int64 *balance)
{
	Datum		values[3];
	bool		isnull;

	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(amount);
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (DdExecutePlan(&debit_plan, nspid, values, NULL, false, 0,
					  SPI_OK_UPDATE_RETURNING) != 1)
		return false;
	*balance = GetInt64(1, &isnull);
	return true;
}

/*
 * TakenUsage
 *		The usage row that took request_id from a call that was about to
 *		write one (what, for the error: "charge" or "log"), as a new
 *		statement sees it: committed, or this transaction's own.  It can
 *		only be gone again if something deleted it meanwhile: 40001.
 *		Must be connected to SPI.
 */
static void
TakenUsage(Oid nspid, text *user_id, text *request_id, const char *what,
		   UsageRow *row)
{
	if (!LookupUsage(nspid, user_id, request_id, row))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not %s request_id \"%s\": a concurrent request with the same id changed",
						what, text_to_cstring(request_id)),
				 errhint("Retry the transaction.")));
}

/*
 * DdChargeCredit
 *		See credits.h.  Takes amount credits from user_id's balance if it
 *		covers them and logs the request; with a request_id, a repeat of a
 *		charged request returns that charge's outcome (replayed = true)
 *		and charges nothing.
 *
 *		With a request id, in this order, each a saved statement:
 *		1. lock the balance row if the balance covers the charge, and read
 *		   the balance under the lock (lock_plan);
 *		2. insert the usage row, with the balance after the charge, unless
 *		   the request id is taken (usage_plan);
 *		3. debit the balance (debit_plan).
 *		Without one, a request cannot repeat: the conditional debit, then
 *		the usage row.
 *
 *		Concurrency (READ COMMITTED):
 *		- Two charges of one user serialize on the balance row lock, held
 *		  to the end of the transaction; the second checks the balance the
 *		  first committed, so the balance never goes below zero and no
 *		  credit is sold twice.
 *		- A duplicate of a charge in flight waits on that same lock when
 *		  the committed balance covers it; once the first commits, step 1
 *		  re-checks the balance and step 2 (or, if the credit is now gone,
 *		  the look-up) finds the first's usage row: a replay, with nothing
 *		  written.  If the first rolled back, the duplicate is the only
 *		  charge.  When the committed balance does not cover it, it does
 *		  not wait, as a conditional UPDATE would not: ok = false.
 *		- A request logged by dd_log_usage (which takes no balance lock)
 *		  in flight: step 2 waits for that row's insertion; if it commits,
 *		  the request is taken and replayed.  Nothing has been debited
 *		  yet, so nothing is ever given back.
 *		- Too little credit or no balance row: the request is looked up
 *		  (a retry of a charged request is a replay whatever the balance
 *		  now); otherwise nothing is written, ok is false and the balance
 *		  is the one committed when the call looked.
 *		Under REPEATABLE READ or SERIALIZABLE, a balance row or request id
 *		changed by a transaction the snapshot cannot see is a
 *		serialization failure (40001), as for any UPDATE or ON CONFLICT.
 */
void
DdChargeCredit(Oid nspid, text *user_id, int64 amount, text *request_id,
			   text *endpoint, bool has_api_key_id, int64 api_key_id,
			   Jsonb *metadata, DdChargeResult *result)
{
	Datum		values[2];
	bool		isnull;
	int64		balance;
	int64		debited;
	int64		usage_id;
	UsageRow	prior;

	CheckedText(user_id, true, "user_id", DD_MAX_USER_ID);
	CheckedText(request_id, false, "request_id", DD_MAX_REQUEST_ID);
	CheckedText(endpoint, false, "endpoint", DD_MAX_ENDPOINT);
	DdCheckChargeArgs(amount, metadata);

	memset(result, 0, sizeof(*result));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (amount == 0)
	{
		/* Nothing to charge: report the balance, write nothing. */
		result->has_balance = CurrentBalance(nspid, user_id, &result->balance);
		result->ok = result->has_balance;
		SPI_finish();
		return;
	}

	if (request_id == NULL)
	{
		/* No request id, no repeat: debit, then log. */
		if (!Debit(nspid, user_id, amount, &debited))
		{
			result->has_balance = CurrentBalance(nspid, user_id,
												 &result->balance);
			SPI_finish();
			return;
		}
		if (!InsertUsage(nspid, user_id, NULL, endpoint, amount,
						 has_api_key_id, Int64GetDatum(api_key_id), metadata,
						 true, debited, &usage_id))
			elog(ERROR, "usage row without a request id was not inserted");
	}
	else
	{
		/* 1. The balance row lock, if the balance covers the charge. */
		values[0] = PointerGetDatum(user_id);
		values[1] = Int64GetDatum(amount);
		if (DdExecutePlan(&lock_plan, nspid, values, NULL, false, 0,
						  SPI_OK_SELECT) != 1)
		{
			/* Nothing to take: a replay, or ok = false, nothing written. */
			if (LookupUsage(nspid, user_id, request_id, &prior))
				Replay(nspid, user_id, &prior, result);
			else
				result->has_balance = CurrentBalance(nspid, user_id,
													 &result->balance);
			SPI_finish();
			return;
		}
		balance = GetInt64(1, &isnull);

		/* 2. The usage row, unless the request is taken: then a replay. */
		if (!InsertUsage(nspid, user_id, request_id, endpoint, amount,
						 has_api_key_id, Int64GetDatum(api_key_id), metadata,
						 true, balance - amount, &usage_id))
		{
			TakenUsage(nspid, user_id, request_id, "charge", &prior);
			Replay(nspid, user_id, &prior, result);
			SPI_finish();
			return;
		}

		/* 3. The debit, under the lock taken in step 1. */
		if (!Debit(nspid, user_id, amount, &debited))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not charge user_id \"%s\": the balance row changed under its lock",
							text_to_cstring(user_id)),
					 errdetail("A trigger or rule on api_credits changed or hid the row between the lock and the debit."),
					 errhint("Retry the transaction.")));
	}

	/* Charged and logged. */
	result->ok = true;
	result->has_balance = true;
	result->balance = debited;
	result->has_usage_id = true;
	result->usage_id = usage_id;
	SPI_finish();
}

/*
 * AddCredit
 *		Add amount to user_id's balance, creating the balance row if needed,
 *		after a grant's or refund's ledger row was written; returns the new
 *		balance.  Must be connected to SPI.
 */
static int64
AddCredit(Oid nspid, text *user_id, int64 amount)
{
	Datum		values[3];
	bool		isnull;

	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(amount);
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (DdExecutePlan(&credit_plan, nspid, values, NULL, false, 0,
					  SPI_OK_INSERT_RETURNING) != 1)
		elog(ERROR, "balance row of user_id \"%s\" was not written",
			 text_to_cstring(user_id));
	return GetInt64(1, &isnull);
}

/*
 * dd_charge_credit(user_id text, amount bigint = 1, request_id text = NULL,
 *					endpoint text = NULL, api_key_id bigint = NULL,
 *					metadata jsonb = NULL) -> dd_charge
 *		The SQL face of DdChargeCredit; see there for the promises.
 */
Datum
dd_charge_credit(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	DdChargeArgs args;
	DdChargeResult r;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4];

	DdGetChargeArgs(fcinfo, 1, 2, 3, 5, &args);
	DdConfineUser(nspid, user_id, "user_id");

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "dd_charge_credit must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);

	DdChargeCredit(nspid, user_id, args.amount, args.request_id, args.endpoint,
				   !PG_ARGISNULL(4), PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4),
				   args.metadata, &r);

	values[0] = BoolGetDatum(r.ok);
	nulls[0] = false;
	values[1] = Int64GetDatum(r.balance);
	nulls[1] = !r.has_balance;
	values[2] = Int64GetDatum(r.usage_id);
	nulls[2] = !r.has_usage_id;
	values[3] = BoolGetDatum(r.replayed);
	nulls[3] = false;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * dd_grant_credit(user_id text, amount bigint, reason text = NULL,
 *				   idempotency_key text = NULL) -> bigint
 *		Add amount (> 0) credits to user_id's balance, creating the balance
 *		row if needed, and record the grant in credit_grants; returns the new
 *		balance.  A grant whose idempotency_key was used before (for this
 *		user) grants nothing and returns the current balance.
 *
 *		Concurrency: two grants with one key race on the key's index entry;
 *		the second waits for the first and grants only if it aborted.  The
 *		balance change is an upsert of the balance row under its row lock,
 *		so a grant never loses a concurrent charge's or grant's change.
 */
Datum
dd_grant_credit(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	int64		amount = AmountArg(fcinfo, 1);
	text	   *reason = DdOptionalTextArg(fcinfo, 2, "reason", DD_MAX_REASON);
	text	   *key = DdOptionalTextArg(fcinfo, 3, "idempotency_key", DD_MAX_REQUEST_ID);
	Datum		values[4];
	char		nulls[4];
	int64		balance;

	DdConfineUser(nspid, user_id, "user_id");
	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(amount);
	values[2] = PointerGetDatum(reason);
	values[3] = PointerGetDatum(key);
	nulls[0] = nulls[1] = ' ';
	nulls[2] = reason ? ' ' : 'n';
	nulls[3] = key ? ' ' : 'n';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&grant_row_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) == 1)
		balance = AddCredit(nspid, user_id, amount);
	else if (!CurrentBalance(nspid, user_id, &balance))
		balance = 0;			/* the key was used before: the balance now */
	SPI_finish();

	PG_RETURN_INT64(balance);
}

/*
 * dd_refund_credit(user_id text, request_id text, reason text = NULL)
 *		-> bigint
 *		Give back the credits charged for request_id, once, recording the
 *		refund in credit_refunds; returns the new balance.
 *
 *		Errors: no usage row for the request (never charged, or removed by
 *		retention) or a usage row that cost nothing: P0002; refunded before:
 *		55000.  Nothing is written in either case.
 *
 *		Concurrency: two refunds of one request race on the refund's index
 *		entry; the second waits, and fails as "already refunded" if the
 *		first committed.  A charge still in flight is not visible, so its
 *		refund fails as unknown until the charge commits.
 */
Datum
dd_refund_credit(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	text	   *request_id = DdTextArg(fcinfo, 1, "request_id", DD_MAX_REQUEST_ID);
	text	   *reason = DdOptionalTextArg(fcinfo, 2, "reason", DD_MAX_REASON);
	Datum		values[5];
	char		nulls[5];
	UsageRow	usage;
	int64		balance;

	DdConfineUser(nspid, user_id, "user_id");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (!LookupUsage(nspid, user_id, request_id, &usage))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("request_id \"%s\" was never charged to user_id \"%s\"",
						text_to_cstring(request_id), text_to_cstring(user_id)),
				 errdetail("No usage row has this request id (usage rows removed by retention cannot be refunded)."),
				 errhint("Refund with the request_id that was passed to dd_charge_credit.")));
	if (usage.credits == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("request_id \"%s\" of user_id \"%s\" was not charged",
						text_to_cstring(request_id), text_to_cstring(user_id)),
				 errdetail("The request was logged without a charge, so there is nothing to refund.")));

	values[0] = PointerGetDatum(user_id);
	values[1] = PointerGetDatum(request_id);
	values[2] = PointerGetDatum(reason);
	values[3] = Int64GetDatum(usage.id);
	values[4] = Int64GetDatum(usage.credits);
	nulls[0] = nulls[1] = nulls[3] = nulls[4] = ' ';
	nulls[2] = reason ? ' ' : 'n';
	if (DdExecutePlan(&refund_row_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request_id \"%s\" of user_id \"%s\" is already refunded",
						text_to_cstring(request_id), text_to_cstring(user_id)),
				 errdetail("A charge is refunded at most once.")));
	balance = AddCredit(nspid, user_id, usage.credits);
	SPI_finish();

	PG_RETURN_INT64(balance);
}

/*
 * dd_credit_balance(user_id text) -> bigint
 *		The committed balance of user_id as of the statement's snapshot; 0
 *		for a user without a balance row.
 */
Datum
dd_credit_balance(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	Datum		values[1];
	bool		isnull;
	int64		balance = 0;

	DdConfineUser(nspid, user_id, "user_id");
	values[0] = PointerGetDatum(user_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&balance_plan, nspid, values, NULL, true, 1,
					  SPI_OK_SELECT) == 1)
	{
		balance = GetInt64(1, &isnull);
		if (isnull)
			balance = 0;
	}
	SPI_finish();

	PG_RETURN_INT64(balance);
}

/*
 * dd_credit_audit() -> setof (user_id text, balance bigint, expected bigint)
 *		The users whose balance differs from grants - charges + refunds
 *		(charges counting usage rows removed by retention, from
 *		api_usage_rollup), ordered by user_id; empty when the ledger is
 *		sound.  One query, so one snapshot: every charge, grant and refund
 *		is written with its ledger row in one transaction, and the audit
 *		sees each whole or not at all, even under load.
 */
Datum
dd_credit_audit(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		i;

	DdRefuseConfined(nspid, "dd_credit_audit");
	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	DdExecutePlan(&audit_plan, nspid, NULL, NULL, true, 0, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];
		int			c;

		CHECK_FOR_INTERRUPTS();
		for (c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	SPI_finish();

	return (Datum) 0;
}

/*
 * dd_log_usage(user_id text, endpoint text, request_id text = NULL,
 *				api_key_id bigint = NULL, metadata jsonb = NULL) -> bigint
 *		Record a request that costs nothing; returns its usage row id.  A
 *		request_id used before by this user (logged or charged) writes
 *		nothing and returns the id of that row.
 *
 *		Concurrency: a concurrent duplicate waits on the request's index
 *		entry; if the first commits, the second returns the first's row.
 */
Datum
dd_log_usage(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	text	   *endpoint = DdTextArg(fcinfo, 1, "endpoint", DD_MAX_ENDPOINT);
	text	   *request_id = DdOptionalTextArg(fcinfo, 2, "request_id", DD_MAX_REQUEST_ID);
	Jsonb	   *metadata = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	int64		id;

	DdCheckMetadata(metadata);
	DdConfineUser(nspid, user_id, "user_id");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!InsertUsage(nspid, user_id, request_id, endpoint, 0,
					 !PG_ARGISNULL(3), PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
					 metadata, false, 0, &id))
	{
		/* The request id was used before: that row, from a new snapshot. */
		UsageRow	usage;

		TakenUsage(nspid, user_id, request_id, "log", &usage);
		id = usage.id;
	}
	SPI_finish();

	PG_RETURN_INT64(id);
}
