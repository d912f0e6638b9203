/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Retention of the two append-only logs: dd_purge_usage_events and
 *	  dd_purge_usage_log delete the rows older than a given age in bounded
 *	  batches and return how many went.  The procedures
 *	  dd_purge_usage_events_proc and dd_purge_usage_log_proc (SQL, in the
 *	  extension script) call these one batch at a time and commit each.
 *
 * Age is measured on the database's own clock: usage_events.received_at
 * (not the client's occurred_at) and api_usage_log.created_at, both indexed
 * with BRIN.  The cutoff is now() - older_than, fixed once per call.
 *
 * A batch is one statement: the ctids of at most batch_size old rows, then a
 * TID-scan DELETE of them.  Two purges running at once select the same rows;
 * the second waits on the first's row locks and skips what it deleted, so
 * every row is deleted, and counted, once.
 *
 * The credit ledger.  dd_credit_audit checks every balance against
 * grants - (sum of api_usage_log.credits + api_usage_rollup.charged) +
 * refunds.  Deleting usage rows would break that, so the statement that
 * deletes a batch of api_usage_log rows also adds their per-user sum of
 * credits and count to api_usage_rollup (a data-modifying CTE: the delete
 * and the rollup commit or fail together).  The rollup row of a user is
 * updated under its row lock, so concurrent purges add up exactly; rollup
 * rows are written in user_id order, so two purges cannot deadlock on them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dd_clipper.h"

PG_FUNCTION_INFO_V1(dd_purge_usage_events);
PG_FUNCTION_INFO_V1(dd_purge_usage_log);

/* One batch of usage_events older than $1, at most $2 rows. */
static DdPlan purge_events_plan = {
	"DELETE FROM @extschema@.usage_events"
	" WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
	"  SELECT e.ctid FROM @extschema@.usage_events e"
	"  WHERE e.received_at OPERATOR(pg_catalog.<) $1"
	"  LIMIT $2))",
	2, {TIMESTAMPTZOID, INT8OID}
};

/*
 * One batch of api_usage_log older than $1, at most $2 rows, folded into
 * api_usage_rollup in the same statement ($3 is now()).  Returns the number
 * deleted.
 */
static DdPlan purge_log_plan = {
	"WITH d AS ("
	"  DELETE FROM @extschema@.api_usage_log"
	"  WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
	"   SELECT l.ctid FROM @extschema@.api_usage_log l"
	"   WHERE l.created_at OPERATOR(pg_catalog.<) $1"
	"   LIMIT $2))"
	"  RETURNING user_id, credits"
	"), s AS ("
	"  SELECT d.user_id, pg_catalog.sum(d.credits) AS charged,"
	"         pg_catalog.count(*) AS usage_rows"
	"  FROM d GROUP BY d.user_id"
	"), r AS ("
	"  INSERT INTO @extschema@.api_usage_rollup AS r"
	"    (user_id, charged, usage_rows, updated_at)"
	"  SELECT s.user_id, s.charged, s.usage_rows, $3 FROM s"
	"  ORDER BY s.user_id COLLATE pg_catalog.\"C\""
	"  ON CONFLICT (user_id) DO UPDATE"
	"  SET charged = r.charged OPERATOR(pg_catalog.+) excluded.charged,"
	"      usage_rows = r.usage_rows OPERATOR(pg_catalog.+) excluded.usage_rows,"
	"      updated_at = excluded.updated_at"
	"  RETURNING 1"
	")"
	" SELECT pg_catalog.count(*) FROM d",
	3, {TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID}
};

/*
 * PurgeBatches
 *		The body of both purge functions: check the arguments (older_than,
 *		batch_size, max_batches), then run plan batch after batch until a
 *		batch finds fewer than batch_size rows or max_batches ran.  Returns
 *		the number of rows deleted.  All batches run in the caller's
 *		transaction; the _proc procedures commit between batches by calling
 *		this with max_batches = 1.
 */
static int64
PurgeBatches(FunctionCallInfo fcinfo, DdPlan *plan, bool counts_in_result)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz cutoff;
	int32		batch_size;
	int32		max_batches = 0;
	int32		batches = 0;
	int64		total = 0;
	MemoryContext batch_cxt;
	MemoryContext old_cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("older_than must not be null"),
				 errhint("Pass an age such as '30 days'.")));
	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(now),
													 PG_GETARG_DATUM(0)));
	if (cutoff >= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must be a positive interval"),
				 errdetail("It is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   PG_GETARG_DATUM(0)))),
				 errhint("Pass an age such as '30 days'.")));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_size must not be null")));
	batch_size = PG_GETARG_INT32(1);
	if (batch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be greater than zero"),
				 errdetail("It is %d.", batch_size)));

	if (!PG_ARGISNULL(2))
	{
		max_batches = PG_GETARG_INT32(2);
		if (max_batches <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_batches must be greater than zero"),
					 errdetail("It is %d.", max_batches),
					 errhint("Pass NULL to run until no old row is left.")));
	}

	DdRefuseConfined(nspid, "a purge");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	batch_cxt = AllocSetContextCreate(CurrentMemoryContext,
									  "dd_clipper purge batch",
									  ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		Datum		values[3];
		int64		n;

		CHECK_FOR_INTERRUPTS();
		old_cxt = MemoryContextSwitchTo(batch_cxt);

		values[0] = TimestampTzGetDatum(cutoff);
		values[1] = Int64GetDatum((int64) batch_size);
		values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		if (counts_in_result)
		{
			bool		isnull;

			DdExecutePlan(plan, nspid, values, NULL, false, 0, SPI_OK_SELECT);
			n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1,
											&isnull));
		}
		else
			n = DdExecutePlan(plan, nspid, values, NULL, false, 0,
							  SPI_OK_DELETE);
		SPI_freetuptable(SPI_tuptable);

		MemoryContextSwitchTo(old_cxt);
		MemoryContextReset(batch_cxt);

		total += n;
		batches++;
		if (n < batch_size || (max_batches > 0 && batches >= max_batches))
			break;
	}
	MemoryContextDelete(batch_cxt);
	SPI_finish();

	return total;
}

/*
 * dd_purge_usage_events
 *		Delete usage_events rows received more than older_than ago, in
 *		batches of batch_size, at most max_batches of them (NULL: until none
 *		is left); returns how many went.  Runs in the caller's transaction.
 */
Datum
dd_purge_usage_events(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PurgeBatches(fcinfo, &purge_events_plan, false));
}

/*
 * dd_purge_usage_log
 *		Delete api_usage_log rows created more than older_than ago, in
 *		batches, adding each user's deleted credits and row count to
 *		api_usage_rollup in the same statement, so the credit audit still
 *		balances; returns how many rows went.  Deleting a row also ends the
 *		idempotency of its request_id: a retry after that is a new request.
 */
Datum
dd_purge_usage_log(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PurgeBatches(fcinfo, &purge_log_plan, true));
}
