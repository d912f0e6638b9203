/*-------------------------------------------------------------------------
 *
 * dd_common.c
 *	  Machinery every dd_clipper feature shares: saved SPI plans bound to
 *	  the extension's schema, and checks of text arguments.
 *
 * Saved plans.  Every query the extension runs through SPI is written with
 * its objects schema-qualified (@extschema@ for the extension's own,
 * pg_catalog for built-ins, OPERATOR(pg_catalog.=) for operators), so the
 * caller's search_path cannot change what runs.  A plan is prepared the
 * first time a backend needs it and kept (SPI_keepplan) for the life of the
 * backend; PostgreSQL's plan cache revalidates it when a table it uses
 * changes.  The extension's schema is taken from the calling function's own
 * pg_proc row, which is cheap (syscache) and always right, even when the
 * extension was installed with CREATE EXTENSION ... SCHEMA.
 *
 * On Citus, no plan is forced generic.  Citus plans a statement on a
 * distributed table when it knows the parameters' values (or can prune by
 * them at execution, as for a point write by user_id); for the others it
 * makes its generic plan look expensive so that the plan cache always
 * plans them with the values.  A plan forced generic would be that
 * unusable plan ("could not create distributed plan").  So where Citus is
 * installed, the plan cache chooses, as it does for PL/pgSQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "dd_clipper.h"

/*
 * DdFunctionSchema
 *		The schema of the SQL function being called, which is the
 *		extension's schema.
 */
Oid
DdFunctionSchema(FunctionCallInfo fcinfo)
{
	Oid			nspid;

	if (fcinfo->flinfo == NULL || !OidIsValid(fcinfo->flinfo->fn_oid))
		elog(ERROR, "dd_clipper function called without function info");

	nspid = get_func_namespace(fcinfo->flinfo->fn_oid);
	if (!OidIsValid(nspid))
		elog(ERROR, "cache lookup failed for function %u",
			 fcinfo->flinfo->fn_oid);
	return nspid;
}

/*
 * DdCitusInstalled
 *		Whether the Citus extension is installed in this database, looked
 *		up once per backend (a session opened before CREATE EXTENSION citus
 *		keeps the answer it had: reconnect it, see README, Scale out).
 */
bool
DdCitusInstalled(void)
{
	static int	citus = -1;

	if (citus < 0)
		citus = OidIsValid(get_extension_oid("citus", true)) ? 1 : 0;
	return citus == 1;
}

/*
 * DdPreparePlan
 *		Return the saved plan of slot for the extension schema nspid,
 *		preparing and keeping it on first use (or when the schema changed).
 *		Must be called while connected to SPI.
 */
SPIPlanPtr
DdPreparePlan(DdPlan *slot, Oid nspid)
{
	const char *nspname;
	const char *quoted;
	StringInfoData buf;
	const char *p;
	int			options;
	SPIPlanPtr	plan;

	if (slot->plan != NULL && slot->nspid == nspid)
		return slot->plan;

	nspname = get_namespace_name(nspid);
	if (nspname == NULL)
		elog(ERROR, "cache lookup failed for namespace %u", nspid);
	quoted = quote_identifier(nspname);

	/* Substitute every @extschema@ with the quoted schema name. */
	initStringInfo(&buf);
	p = slot->query;
	for (;;)
	{
		const char *hit = strstr(p, "@extschema@");

		if (hit == NULL)
		{
			appendStringInfoString(&buf, p);
			break;
		}
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, quoted);
		p = hit + strlen("@extschema@");
	}

	options = slot->cursor_options;
	if (DdCitusInstalled())
		options &= ~CURSOR_OPT_GENERIC_PLAN;
	plan = SPI_prepare_cursor(buf.data, slot->nargs, (Oid *) slot->argtypes,
							  options);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 buf.data, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	pfree(buf.data);

	/* Only now forget the old plan: an error above leaves the slot usable. */
	if (slot->plan != NULL)
		SPI_freeplan(slot->plan);
	slot->plan = plan;
	slot->nspid = nspid;
	return plan;
}

/*
 * DdExecutePlan
 *		Execute the saved plan of slot and check that SPI answered with
 *		the expected result code.  Returns SPI_processed.
 */
int
DdExecutePlan(DdPlan *slot, Oid nspid, Datum *values, const char *nulls,
			  bool read_only, long count, int expected)
{
	SPIPlanPtr	plan = DdPreparePlan(slot, nspid);
	int			rc;

	rc = SPI_execute_plan(plan, values, nulls, read_only, count);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s, expected %s",
			 SPI_result_code_string(rc), SPI_result_code_string(expected));
	return (int) SPI_processed;
}

/*
 * DdCheckText
 *		Check a present text value: not empty, at most max_chars characters.
 */
void
DdCheckText(text *value, const char *argname, int max_chars)
{
	int			len = VARSIZE_ANY_EXHDR(value);
	int			nchars;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));

	/* Every character is at least one byte: count only when it can matter. */
	if (len > max_chars)
	{
		nchars = pg_mbstrlen_with_len(VARDATA_ANY(value), len);
		if (nchars > max_chars)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("%s is too long", argname),
					 errdetail("It has %d characters; the limit is %d.",
							   nchars, max_chars)));
	}
}

/*
 * DdTextArg
 *		Argument argno, which must be a non-NULL, non-empty text of at most
 *		max_chars characters.
 */
text *
DdTextArg(FunctionCallInfo fcinfo, int argno, const char *argname,
		  int max_chars)
{
	text	   *value;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));

	value = PG_GETARG_TEXT_PP(argno);
	DdCheckText(value, argname, max_chars);
	return value;
}

/*
 * DdOptionalTextArg
 *		Like DdTextArg, but NULL is allowed and returned as NULL.
 */
text *
DdOptionalTextArg(FunctionCallInfo fcinfo, int argno, const char *argname,
				  int max_chars)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return DdTextArg(fcinfo, argno, argname, max_chars);
}
