/*-------------------------------------------------------------------------
 *
 * credits.h
 *	  The credit ledger's internal C entry point, for other dd_clipper
 *	  features that charge credit in the same backend (dd_authorize_and_charge
 *	  in api_keys.c).
 *
 * DdChargeCredit is exactly what the SQL function dd_charge_credit does,
 * minus the fmgr wrapping: the same checks (with the same errors), the same
 * saved statements, the same concurrency promises (see credits.c).  It
 * connects to SPI itself (a nested
 * connection when the caller is already connected is fine) and disconnects
 * before returning, so it may be called with or without an SPI connection;
 * the caller's SPI_tuptable is left untouched.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_CREDITS_H
#define DD_CREDITS_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

/*
 * DdChargeResult
 *		The outcome of one charge, the C form of the SQL type dd_charge
 *		(ok, balance, usage_id, replayed).  has_balance is false when the
 *		user has no balance row (balance is then NULL in SQL); has_usage_id
 *		is false when nothing was charged.
 */
typedef struct DdChargeResult
{
	bool		ok;
	bool		has_balance;
	int64		balance;
	bool		has_usage_id;
	int64		usage_id;
	bool		replayed;
} DdChargeResult;

/*
 * DdChargeCredit
 *		Charge amount credits to user_id and log the request in
 *		api_usage_log, in the extension schema nspid (DdFunctionSchema of
 *		the calling SQL function).
 *
 *		user_id must not be NULL; request_id, endpoint and metadata may be
 *		NULL; api_key_id is used only when has_api_key_id.  Text arguments
 *		are checked against the DD_MAX_* limits, amount must be >= 0 and
 *		metadata must be a JSON object: every failed check is an ERROR naming
 *		the SQL argument, raised before anything is written.
 */
extern void DdChargeCredit(Oid nspid, text *user_id, int64 amount,
						   text *request_id, text *endpoint,
						   bool has_api_key_id, int64 api_key_id,
						   Jsonb *metadata, DdChargeResult *result);

/*
 * DdChargeArgs / DdGetChargeArgs
 *		The charge arguments of an SQL function (amount, request_id,
 *		endpoint, metadata at the given argument positions), read and
 *		checked with the same errors by every entry point that charges
 *		(dd_charge_credit, dd_authorize_and_charge).
 */
typedef struct DdChargeArgs
{
	int64		amount;
	text	   *request_id;		/* NULL when not given */
	text	   *endpoint;		/* NULL when not given */
	Jsonb	   *metadata;		/* NULL when not given */
} DdChargeArgs;

extern void DdGetChargeArgs(FunctionCallInfo fcinfo, int amount_arg,
							int request_id_arg, int endpoint_arg,
							int metadata_arg, DdChargeArgs *args);

#endif							/* DD_CREDITS_H */
