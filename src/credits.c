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
 * writer lock of that user's credit: every change of a balance is a
 * conditional UPDATE (or an upsert) of that row, which takes its row lock
 * and holds it to the end of the transaction, so two changes of one balance
 * never interleave.  The unique indexes on the ledger make repeats exact:
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
 * Why no subtransaction: the charge must turn a concurrent duplicate into
 * a replay, not an error, and catching a unique violation would need a
 * subtransaction on every call.  INSERT ... ON CONFLICT DO NOTHING waits
 * for the duplicate and reports the conflict instead; the rare debit that
 * lost its request id is then given back in the same transaction.
 *
 * Isolation levels.  The promises are made under READ COMMITTED, where each
 * statement sees what committed before it started.  Under REPEATABLE READ
 * or SERIALIZABLE a concurrent change of the same balance or ledger key
 * makes the call fail with a serialization failure (40001), as PostgreSQL
 * does for any write; the caller retries the transaction.
 *
 * Every query is prepared once per backend and kept (DdPlan), and names
 * every table, function and operator with its schema, so the caller's
 * search_path changes nothing.  The SQL functions are SECURITY DEFINER:
 * callers need EXECUTE on them, never write access to the tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dd_clipper.h"
#include "credits.h"
#include "direct.h"

PG_FUNCTION_INFO_V1(dd_grant_credit);
PG_FUNCTION_INFO_V1(dd_charge_credit);
PG_FUNCTION_INFO_V1(dd_refund_credit);
PG_FUNCTION_INFO_V1(dd_credit_balance);
PG_FUNCTION_INFO_V1(dd_credit_audit);
PG_FUNCTION_INFO_V1(dd_log_usage);

/*
 * The charge, in one statement: take the credit under the balance row's
 * lock if the balance covers it (debit), and log the request (logged).  The
 * usage row stores the balance after the charge (balance_after), so a
 * replay returns the original outcome exactly.  An earlier charge of the
 * same request is looked for before (LookupUsage); one that commits in
 * between makes the INSERT conflict.
 *
 * Columns: 1 balance after the debit (NULL: nothing debited), 2 id of the
 * new usage row (NULL: none inserted).
 */
static DdPlan charge_plan = {
	.query =
	"WITH debit AS ("
	"  UPDATE @extschema@.api_credits c"
	"  SET balance = c.balance OPERATOR(pg_catalog.-) $2,"
	"      updated_at = pg_catalog.now()"
	"  WHERE c.user_id OPERATOR(pg_catalog.=) $1"
	"    AND c.balance OPERATOR(pg_catalog.>=) $2"
	"  RETURNING c.balance),"
	" logged AS ("
	"  INSERT INTO @extschema@.api_usage_log AS l"
	"    (user_id, request_id, endpoint, credits, api_key_id, metadata, balance_after)"
	"  SELECT $1, $3, $4, $2, $5, $6, d.balance FROM debit d"
	"  ON CONFLICT ON CONSTRAINT api_usage_log_user_id_request_id_key DO NOTHING"
	"  RETURNING l.id)"
	" SELECT (SELECT d.balance FROM debit d), (SELECT l.id FROM logged l)",
	.nargs = 6,
	.argtypes = {TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, JSONBOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * Give back a debit whose usage row lost the race for its request id to a
 * concurrent duplicate that committed meanwhile.  The balance row is still
 * locked by this transaction, so the two changes cancel out.
 */
static DdPlan undo_plan = {
	.query =
	"UPDATE @extschema@.api_credits c"
	" SET balance = c.balance OPERATOR(pg_catalog.+) $2"
	" WHERE c.user_id OPERATOR(pg_catalog.=) $1"
	" RETURNING c.balance",
	.nargs = 2,
	.argtypes = {TEXTOID, INT8OID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A grant: its ledger row (once per idempotency key), then the balance,
 * created if needed.  Column 1 is the new balance, NULL when the key was
 * used before (nothing granted).
 */
static DdPlan grant_plan = {
	.query =
	"WITH g AS ("
	"  INSERT INTO @extschema@.credit_grants AS g"
	"    (user_id, amount, reason, idempotency_key)"
	"  VALUES ($1, $2, $3, $4)"
	"  ON CONFLICT ON CONSTRAINT credit_grants_user_id_idempotency_key_key DO NOTHING"
	"  RETURNING g.amount),"
	" c AS ("
	"  INSERT INTO @extschema@.api_credits AS c (user_id, balance)"
	"  SELECT $1, g.amount FROM g"
	"  ON CONFLICT ON CONSTRAINT api_credits_pkey DO UPDATE"
	"  SET balance = c.balance OPERATOR(pg_catalog.+) excluded.balance,"
	"      updated_at = pg_catalog.now()"
	"  RETURNING c.balance)"
	" SELECT (SELECT c.balance FROM c)",
	.nargs = 4,
	.argtypes = {TEXTOID, INT8OID, TEXTOID, TEXTOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A refund of the charge found by LookupUsage ($4 its usage row, $5 its
 * credits): write its refund row (once per request), give the credit back.
 * Column 1 is the new balance, NULL when refunded before (nothing written).
 */
static DdPlan refund_plan = {
	.query =
	"WITH r AS ("
	"  INSERT INTO @extschema@.credit_refunds AS r"
	"    (user_id, request_id, usage_id, amount, reason)"
	"  VALUES ($1, $2, $4, $5, $3)"
	"  ON CONFLICT ON CONSTRAINT credit_refunds_user_id_request_id_key DO NOTHING"
	"  RETURNING r.amount),"
	" c AS ("
	"  INSERT INTO @extschema@.api_credits AS c (user_id, balance)"
	"  SELECT $1, r.amount FROM r"
	"  ON CONFLICT ON CONSTRAINT api_credits_pkey DO UPDATE"
	"  SET balance = c.balance OPERATOR(pg_catalog.+) excluded.balance,"
	"      updated_at = pg_catalog.now()"
	"  RETURNING c.balance)"
	" SELECT (SELECT c.balance FROM c)",
	.nargs = 5,
	.argtypes = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID},
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
 * Log a request that costs nothing, once per request id.  Column 1 is the
 * new row's id, no row when the request id was used before.
 */
static DdPlan log_plan = {
	.query =
	"INSERT INTO @extschema@.api_usage_log AS l"
	"  (user_id, request_id, endpoint, credits, api_key_id, metadata)"
	" VALUES ($1, $3, $2, 0, $4, $5)"
	" ON CONFLICT ON CONSTRAINT api_usage_log_user_id_request_id_key DO NOTHING"
	" RETURNING l.id",
	.nargs = 5,
	.argtypes = {TEXTOID, TEXTOID, TEXTOID, INT8OID, JSONBOID},
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
 * The two tables a charge writes, for the direct path (direct.c); the
 * usage table is also read through its request id index (FetchUsage).
 * The charge's own checks guarantee their CHECK constraints (amount > 0,
 * and the debit only when balance >= amount).
 */
static DdDirectTable credits_table = {
	.relname = "api_credits",
	.keyindex = "api_credits_pkey",
	.update_only = true,
	.ncols = 2,
	.cols = {"balance", "updated_at"},
	.types = {INT8OID, TIMESTAMPTZOID},
	.nchecks = 1,
	.checks = {"api_credits_balance_check"}
};

#define USAGE_CREDITS		3
#define USAGE_BALANCE_AFTER	6

static DdDirectTable usage_table = {
	.relname = "api_usage_log",
	.keyindex = "api_usage_log_user_id_request_id_key",
	.arbiter = "api_usage_log_user_id_request_id_key",
	.ncols = 7,
	.cols = {"user_id", "request_id", "endpoint", "credits", "api_key_id",
	"metadata", "balance_after"},	/* USAGE_CREDITS is cols[3],
										 * USAGE_BALANCE_AFTER cols[6] */
	.types = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, JSONBOID, INT8OID},
	.nchecks = 1,
	.checks = {"api_usage_log_credits_check"}
};

/*
 * FetchUsage
 *		Find the usage row of (user_id, request_id) in the usage table open
 *		in usage, through the unique index of that key, as snapshot sees
 *		it; NULL: a snapshot taken now (which sees every duplicate that has
 *		committed, including one this call just waited for).
 */
static bool
FetchUsage(DdDirect *usage, text *user_id, text *request_id,
		   Snapshot snapshot, UsageRow *row)
{
	Datum		keys[2];
	Snapshot	snap;
	bool		found;
	bool		isnull;
	Datum		d;

	keys[0] = PointerGetDatum(user_id);
	keys[1] = PointerGetDatum(request_id);
	snap = RegisterSnapshot(snapshot ? snapshot : GetLatestSnapshot());
	found = DdDirectFetch(usage, keys, snap);
	UnregisterSnapshot(snap);
	if (!found)
		return false;

	memset(row, 0, sizeof(*row));
	row->id = DatumGetInt64(slot_getattr(usage->found,
										 usage->table->identity, &isnull));
	row->credits = DatumGetInt64(slot_getattr(usage->found,
											  DdDirectAttnum(usage, USAGE_CREDITS),
											  &isnull));
	d = slot_getattr(usage->found, DdDirectAttnum(usage, USAGE_BALANCE_AFTER), &isnull);
	row->has_balance_after = !isnull;
	row->balance_after = isnull ? 0 : DatumGetInt64(d);
	return true;
}

/*
 * LookupUsage
 *		FetchUsage with a snapshot taken now, for a caller that has not
 *		opened the usage table.
 *
 *		A direct index scan, not a query: a generic plan for "user_id = $1
 *		AND request_id = $2" costs the unique index and the other indexes
 *		led by user_id the same when it expects one row per user, and may
 *		pick one of those, which scans every usage row of the user -- a
 *		cost that grows without bound for exactly the busiest users.
 */
static bool
LookupUsage(Oid nspid, text *user_id, text *request_id, UsageRow *row)
{
	DdDirect	usage;
	bool		found;

	DdDirectBeginRead(&usage_table, nspid, &usage);
	found = FetchUsage(&usage, user_id, request_id, NULL, row);
	DdDirectEnd(&usage);
	return found;
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
 *		(the current balance for a row logged without one).
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
 * ReplayConnected
 *		Replay, for a caller not connected to SPI.
 */
static void
ReplayConnected(Oid nspid, text *user_id, UsageRow *row,
				DdChargeResult *result)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Replay(nspid, user_id, row, result);
	SPI_finish();
}

/*
 * GiveBack
 *		A debit whose usage row lost its request id to a concurrent
 *		duplicate that committed meanwhile: give the credit back (the
 *		balance row is still locked by this transaction, so the two changes
 *		cancel out) and return the duplicate's outcome; fail when its row
 *		is gone again.  Must be connected to SPI.
 */
static void
GiveBack(Oid nspid, text *user_id, int64 amount, text *request_id,
		 DdChargeResult *result)
{
	Datum		values[2];
	UsageRow	prior;

	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(amount);
	DdExecutePlan(&undo_plan, nspid, values, NULL, false, 0,
				  SPI_OK_UPDATE_RETURNING);
	if (!LookupUsage(nspid, user_id, request_id, &prior))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not charge request_id \"%s\": a concurrent request with the same id changed",
						text_to_cstring(request_id)),
				 errhint("Retry the transaction.")));
	Replay(nspid, user_id, &prior, result);
}

/*
 * ChargeDirect
 *		DdChargeCredit for amount > 0 without the executor (direct.c), with
 *		the same outcome as charge_plan in every interleaving; false when
 *		a table is not fit for direct writes, and nothing was done.
 *
 *		One snapshot S serves the request lookup and the balance read.
 *		A duplicate charge that committed before S is found by the lookup.
 *		One that commits after S changed the balance row after S (a charge
 *		writes its usage row only with its debit, under that row's lock),
 *		so updating the version S saw reports TM_Updated after waiting for
 *		it: then, as READ COMMITTED's re-check does, the latest version is
 *		locked and checked again -- and the request looked up again with a
 *		new snapshot, which now finds the duplicate: a replay.  What the
 *		balance row cannot reveal -- a free row of the same request
 *		(dd_log_usage) in flight or committed after S -- makes the usage
 *		insert conflict: the debit is given back and that row replayed,
 *		as in the SPI path.  Under REPEATABLE READ or SERIALIZABLE, a
 *		balance changed after S is a serialization failure, as it is for
 *		an UPDATE.
 */
static bool
ChargeDirect(Oid nspid, text *user_id, int64 amount, text *request_id,
			 text *endpoint, bool has_api_key_id, int64 api_key_id,
			 Jsonb *metadata, DdChargeResult *result)
{
	DdDirect	credits;
	DdDirect	usage;
	Snapshot	snapshot;
	UsageRow	prior;
	Datum		key;
	AttrNumber	balance_att;
	int64		balance;
	bool		isnull;
	Datum		cvalues[2];
	bool		cnulls[2] = {false, false};
	Datum		uvalues[7];
	bool		unulls[7];
	TM_Result	tm;
	int64		new_id = 0;

	/* See this transaction's earlier changes, as a new statement would. */
	CommandCounterIncrement();

	if (!DdDirectBegin(&credits_table, nspid, &credits))
		return false;
	if (!DdDirectBegin(&usage_table, nspid, &usage))
	{
		DdDirectEnd(&credits);
		return false;
	}

	snapshot = RegisterSnapshot(GetTransactionSnapshot());

	if (request_id != NULL &&
		FetchUsage(&usage, user_id, request_id, snapshot, &prior))
	{
		/* A repeat of a request that committed before: write nothing. */
		ReplayConnected(nspid, user_id, &prior, result);
		goto done;
	}

	key = PointerGetDatum(user_id);
	balance_att = DdDirectAttnum(&credits, 0);
	if (!DdDirectFetch(&credits, &key, snapshot))
		goto done;				/* no balance row: ok = false */

	for (;;)
	{
		balance = DatumGetInt64(slot_getattr(credits.found, balance_att,
											 &isnull));
		if (balance < amount)
		{
			/* Too little credit: nothing written. */
			result->has_balance = true;
			result->balance = balance;
			goto done;
		}

		cvalues[0] = Int64GetDatum(balance - amount);
		cvalues[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		tm = DdDirectUpdate(&credits, cvalues, cnulls, snapshot);
		if (tm == TM_Ok)
			break;

		/*
		 * Changed by a transaction that has committed: check the latest
		 * version again.  Gone, or another user's row now: ok = false.
		 */
		if (tm == TM_Deleted || !DdDirectLockLatest(&credits, &key, snapshot))
			goto done;

		/* That transaction may have been this request's duplicate. */
		if (request_id != NULL &&
			FetchUsage(&usage, user_id, request_id, NULL, &prior))
		{
			ReplayConnected(nspid, user_id, &prior, result);
			goto done;
		}
	}

	uvalues[0] = PointerGetDatum(user_id);
	unulls[0] = false;
	uvalues[1] = PointerGetDatum(request_id);
	unulls[1] = request_id == NULL;
	uvalues[2] = PointerGetDatum(endpoint);
	unulls[2] = endpoint == NULL;
	uvalues[3] = Int64GetDatum(amount);
	unulls[3] = false;
	uvalues[4] = Int64GetDatum(api_key_id);
	unulls[4] = !has_api_key_id;
	uvalues[5] = JsonbPGetDatum(metadata);
	unulls[5] = metadata == NULL;
	uvalues[6] = Int64GetDatum(balance - amount);
	unulls[6] = false;

	if (DdDirectInsert(&usage, uvalues, unulls, &new_id))
	{
		/* The common path: charged and logged. */
		result->ok = true;
		result->has_balance = true;
		result->balance = balance - amount;
		result->has_usage_id = true;
		result->usage_id = new_id;
	}
	else
	{
		/* The request was logged meanwhile without the balance row. */
		Assert(request_id != NULL);
		CommandCounterIncrement();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		GiveBack(nspid, user_id, amount, request_id, result);
		SPI_finish();
	}

done:
	/* Let the rest of the transaction see what was written. */
	CommandCounterIncrement();
	UnregisterSnapshot(snapshot);
	DdDirectEnd(&usage);
	DdDirectEnd(&credits);
	return true;
}

/*
 * DdChargeCredit
 *		See credits.h.  Takes amount credits from user_id's balance if it
 *		covers them and logs the request, in one statement; with a
 *		request_id, a repeat of a charged request returns that charge's
 *		outcome (replayed = true) and charges nothing.
 *
 *		Concurrency (READ COMMITTED):
 *		- Two charges of one user serialize on the balance row: the UPDATE
 *		  re-checks balance >= amount on the latest committed balance after
 *		  waiting, so the balance never goes below zero and no credit is
 *		  sold twice.
 *		- A duplicate of a request that committed before the call is found
 *		  by LookupUsage first: nothing is written.
 *		- A duplicate of a request in flight: that transaction holds the
 *		  balance row (a charge) or the request's index entry (a logged
 *		  request).  Waiting for either ends when it commits or aborts.  If
 *		  it aborted, this charge proceeds as the only one.  If it committed
 *		  and this charge's UPDATE then finds too little credit, a new
 *		  lookup finds the committed usage row: a replay.  If the UPDATE
 *		  succeeded, the INSERT conflicts with the committed row and inserts
 *		  nothing; the debit is then given back under the same row lock, in
 *		  the same transaction (undo_plan), and the committed row is
 *		  returned as a replay.  Nothing of this call survives but the
 *		  unchanged balance.
 *		- Insufficient credit or no balance row: nothing is written, ok is
 *		  false and the balance is the one committed when the call looked.
 */
void
DdChargeCredit(Oid nspid, text *user_id, int64 amount, text *request_id,
			   text *endpoint, bool has_api_key_id, int64 api_key_id,
			   Jsonb *metadata, DdChargeResult *result)
{
	Datum		values[6];
	char		nulls[6];
	bool		isnull;
	int64		debited;
	bool		did_debit;
	int64		new_id;
	bool		inserted;
	UsageRow	prior;

	CheckedText(user_id, true, "user_id", DD_MAX_USER_ID);
	CheckedText(request_id, false, "request_id", DD_MAX_REQUEST_ID);
	CheckedText(endpoint, false, "endpoint", DD_MAX_ENDPOINT);
	DdCheckChargeArgs(amount, metadata);

	memset(result, 0, sizeof(*result));

	if (amount > 0 &&
		ChargeDirect(nspid, user_id, amount, request_id, endpoint,
					 has_api_key_id, api_key_id, metadata, result))
		return;

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

	/* A repeat of a request that committed before: replay, write nothing. */
	if (request_id != NULL && LookupUsage(nspid, user_id, request_id, &prior))
	{
		Replay(nspid, user_id, &prior, result);
		SPI_finish();
		return;
	}

	values[0] = PointerGetDatum(user_id);
	nulls[0] = ' ';
	values[1] = Int64GetDatum(amount);
	nulls[1] = ' ';
	values[2] = PointerGetDatum(request_id);
	nulls[2] = request_id ? ' ' : 'n';
	values[3] = PointerGetDatum(endpoint);
	nulls[3] = endpoint ? ' ' : 'n';
	values[4] = Int64GetDatum(api_key_id);
	nulls[4] = has_api_key_id ? ' ' : 'n';
	values[5] = JsonbPGetDatum(metadata);
	nulls[5] = metadata ? ' ' : 'n';

	DdExecutePlan(&charge_plan, nspid, values, nulls, false, 0, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "charge returned " UINT64_FORMAT " rows", SPI_processed);

	debited = GetInt64(1, &isnull);
	did_debit = !isnull;
	new_id = GetInt64(2, &isnull);
	inserted = !isnull;

	if (did_debit && inserted)
	{
		/* The common path: charged and logged. */
		result->ok = true;
		result->has_balance = true;
		result->balance = debited;
		result->has_usage_id = true;
		result->usage_id = new_id;
	}
	else if (did_debit)
	{
		/*
		 * Debited, but the usage row lost its request id to a concurrent
		 * duplicate that has committed meanwhile: give the credit back and
		 * return the duplicate's outcome.
		 */
		Assert(request_id != NULL);
		GiveBack(nspid, user_id, amount, request_id, result);
	}
	else if (request_id != NULL && LookupUsage(nspid, user_id, request_id, &prior))
	{
		/*
		 * Nothing debited because a concurrent duplicate took the credit
		 * and committed while this call waited for the balance row: replay.
		 */
		Replay(nspid, user_id, &prior, result);
	}
	else
	{
		/* Too little credit, or no balance row: nothing written. */
		result->has_balance = CurrentBalance(nspid, user_id, &result->balance);
	}

	SPI_finish();
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
	bool		isnull;
	int64		balance;

	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(amount);
	values[2] = PointerGetDatum(reason);
	values[3] = PointerGetDatum(key);
	nulls[0] = nulls[1] = ' ';
	nulls[2] = reason ? ' ' : 'n';
	nulls[3] = key ? ' ' : 'n';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	DdExecutePlan(&grant_plan, nspid, values, nulls, false, 0, SPI_OK_SELECT);
	balance = GetInt64(1, &isnull);
	/* The key was used before: the balance now, from a new snapshot. */
	if (isnull && !CurrentBalance(nspid, user_id, &balance))
		balance = 0;
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
	bool		isnull;
	UsageRow	usage;
	int64		balance;

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
	DdExecutePlan(&refund_plan, nspid, values, nulls, false, 0, SPI_OK_SELECT);

	balance = GetInt64(1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("request_id \"%s\" of user_id \"%s\" is already refunded",
						text_to_cstring(request_id), text_to_cstring(user_id)),
				 errdetail("A charge is refunded at most once.")));
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
	Datum		values[5];
	char		nulls[5];
	bool		isnull;
	int64		id;

	DdCheckMetadata(metadata);

	values[0] = PointerGetDatum(user_id);
	values[1] = PointerGetDatum(endpoint);
	values[2] = PointerGetDatum(request_id);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	values[4] = JsonbPGetDatum(metadata);
	nulls[0] = nulls[1] = ' ';
	nulls[2] = request_id ? ' ' : 'n';
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	nulls[4] = metadata ? ' ' : 'n';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&log_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) == 1)
		id = GetInt64(1, &isnull);
	else
	{
		/* The request id was used before: that row, from a new snapshot. */
		UsageRow	usage;

		if (!LookupUsage(nspid, user_id, request_id, &usage))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not log request_id \"%s\": a concurrent request with the same id changed",
							text_to_cstring(request_id)),
					 errhint("Retry the transaction.")));
		id = usage.id;
	}
	SPI_finish();

	PG_RETURN_INT64(id);
}
