/*-------------------------------------------------------------------------
 *
 * dd_clipper.h
 *	  Declarations shared by every dd_clipper source file: settings, limits
 *	  on text arguments, and the shared SPI/argument machinery of
 *	  dd_common.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_CLIPPER_H
#define DD_CLIPPER_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

/* Settings (defined in dd_clipper.c) */
extern int	dd_key_touch_interval;	/* seconds */
extern int	dd_migration_batch_pause;	/* milliseconds */
extern bool dd_legacy_keys;		/* verify keys imported from Convex */

/* Longest key that dd_clipper.legacy_keys looks up, in bytes. */
#define DD_MAX_LEGACY_KEY	512

/*
 * Limits on text arguments, in characters.  Documented in the README; an
 * argument over its limit is an error (SQLSTATE 22001), never truncated.
 */
#define DD_MAX_USER_ID		256
#define DD_MAX_REQUEST_ID	256
#define DD_MAX_ENDPOINT		512
#define DD_MAX_NAME			256
#define DD_MAX_REASON		1024
#define DD_MAX_EVENT		256
#define DD_MAX_EVENT_ID		256

/*
 * DdPlan
 *		A saved SPI plan for one query text, prepared once per backend and
 *		kept with SPI_keepplan.  The query text names the extension's schema
 *		as @extschema@; the plan remembers which schema it was prepared for
 *		and is prepared again if the extension has moved (DROP EXTENSION and
 *		CREATE EXTENSION ... SCHEMA other in the same session).
 *
 *		Declare one per query as a static:
 *			static DdPlan charge_plan = {"UPDATE @extschema@.api_credits ...", 2, {TEXTOID, INT8OID}};
 *
 *		cursor_options (last, so the initializer above leaves it 0) is
 *		passed to SPI_prepare_cursor (without CURSOR_OPT_GENERIC_PLAN where
 *		Citus is installed: see dd_common.c).  CURSOR_OPT_GENERIC_PLAN keeps one
 *		generic plan instead of letting the plan cache re-plan each call
 *		with the parameters' values (a custom plan), which for a short
 *		statement costs more than executing it; use it for point lookups
 *		and writes by key whose best plan does not depend on the values:
 *			static DdPlan p = {.query = "...", .nargs = 1, .argtypes = {TEXTOID},
 *							   .cursor_options = CURSOR_OPT_GENERIC_PLAN};
 */
#define DD_MAX_PLAN_ARGS 16

typedef struct DdPlan
{
	const char *query;			/* text with @extschema@ placeholders */
	int			nargs;
	Oid			argtypes[DD_MAX_PLAN_ARGS];
	/* filled in by DdPreparePlan */
	Oid			nspid;
	SPIPlanPtr	plan;
	/* set by the declaration; 0 for SPI_prepare's default */
	int			cursor_options;
} DdPlan;

extern Oid	DdFunctionSchema(FunctionCallInfo fcinfo);
extern bool DdCitusInstalled(void);
extern SPIPlanPtr DdPreparePlan(DdPlan *slot, Oid nspid);
extern int	DdExecutePlan(DdPlan *slot, Oid nspid, Datum *values,
						  const char *nulls, bool read_only, long count,
						  int expected);

/*
 * Argument checks.  Each names the SQL argument in its error message.
 *
 * DdTextArg: a text argument that must be present (NULL is 22004, empty is
 * 22023, over max_chars is 22001); returns it detoasted.
 * DdOptionalTextArg: the same, but NULL is allowed and returns NULL.
 */
extern text *DdTextArg(FunctionCallInfo fcinfo, int argno,
					   const char *argname, int max_chars);
extern text *DdOptionalTextArg(FunctionCallInfo fcinfo, int argno,
							   const char *argname, int max_chars);
extern void DdCheckText(text *value, const char *argname, int max_chars);

/*
 * Row security (row_security.c).  DdRowSecurityInit is called by _PG_init.
 * DdConfineUser: when row security confines the calling role, user_id must
 * be the user of the transaction's verified claim (42501 otherwise).
 * DdRefuseConfined: a function over every user's rows is refused (42501)
 * to a confined caller.
 */
extern void DdRowSecurityInit(void);
extern bool DdCallerConfined(Oid nspid);
extern void DdConfineUser(Oid nspid, text *user_id, const char *argname);
extern void DdRefuseConfined(Oid nspid, const char *function);
extern bool DdClaimIs(text *user_id);

#endif							/* DD_CLIPPER_H */
