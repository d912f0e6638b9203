/*-------------------------------------------------------------------------
 *
 * api_keys.c
 *	  API keys: create, verify, revoke, and the whole middleware path
 *	  (verify, charge, log) in one call.
 *
 * A key is DD_KEY_PREFIX, 32 bytes from pg_strong_random in base62 and a
 * checksum (src/key_codec.c).  Only its SHA-256 is stored (api_keys.key_hash,
 * through PostgreSQL's cryptohash), with a short display prefix; the
 * plaintext exists once, in the result of dd_create_api_key.  A malformed
 * key is answered MALFORMED by the codec alone, before any table access.
 *
 * Locking and concurrency.  Verification reads the key's row through the
 * unique index on key_hash with one saved SELECT, as a new statement (READ
 * COMMITTED: a new snapshot) and with no row lock, except when
 * last_used_at is due: then one conditional UPDATE
 *
 *	  UPDATE api_keys SET last_used_at = now()
 *	  WHERE id = $1 AND <still valid> AND (last_used_at IS NULL OR last_used_at < $cutoff)
 *
 * writes it.  Two verifications that both decide to write it serialize on
 * the row lock; the second re-checks the WHERE clause against the row the
 * first committed, finds last_used_at fresh and writes nothing, so the row
 * is written at most once per dd_clipper.key_touch_interval.
 *
 * Revocation is an UPDATE of the same row.  A verification that writes
 * last_used_at holds the row lock until its transaction ends, so a revoke
 * waits for it (the verification happened first).  A verification whose
 * UPDATE waited for a revoke, or found the row changed since its snapshot,
 * writes nothing and reads the row again with a new snapshot: it sees the
 * committed revoke.  So once a revoke has committed, no verification that
 * starts afterwards, and none that was waiting on the row, answers VALID.
 * Under REPEATABLE READ or SERIALIZABLE a verification whose UPDATE meets
 * a concurrent change fails with a serialization error, never a stale VALID.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "dd_clipper.h"
#include "credits.h"
#include "key_codec.h"

PG_FUNCTION_INFO_V1(dd_create_api_key);
PG_FUNCTION_INFO_V1(dd_verify_api_key);
PG_FUNCTION_INFO_V1(dd_revoke_api_key);
PG_FUNCTION_INFO_V1(dd_authorize_and_charge);

/* The verification codes (dd_key_check.code, dd_authorization.code). */
typedef enum DdKeyCode
{
	DD_KEY_VALID,
	DD_KEY_MALFORMED,
	DD_KEY_NOT_FOUND,
	DD_KEY_EXPIRED,
	DD_KEY_REVOKED
} DdKeyCode;

static const char *const dd_key_code_names[] = {
	"VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"
};

/* The outcome of verifying one key; key_id and user_id set when found. */
typedef struct DdKeyCheck
{
	DdKeyCode	code;
	bool		found;
	int64		key_id;
	text	   *user_id;		/* in the caller's memory context */
} DdKeyCheck;

/* Saved plans, prepared once per backend (see dd_common.c). */
static DdPlan insert_plan = {
	"INSERT INTO @extschema@.api_keys (user_id, name, prefix, key_hash, expires_at) "
	"VALUES ($1, $2, $3, $4, $5) RETURNING id",
	5, {TEXTOID, TEXTOID, TEXTOID, BYTEAOID, TIMESTAMPTZOID}
};

/*
 * The touch writes only a key that is still valid in the newest committed
 * version of its row ($2 is now(), $3 the cutoff now() - interval).
 */
static DdPlan touch_plan = {
	.query = "UPDATE @extschema@.api_keys SET last_used_at = $2 "
	"WHERE id OPERATOR(pg_catalog.=) $1 "
	"AND revoked_at IS NULL "
	"AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $2) "
	"AND (last_used_at IS NULL OR last_used_at OPERATOR(pg_catalog.<) $3)",
	.nargs = 3,
	.argtypes = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

static DdPlan revoke_plan = {
	"UPDATE @extschema@.api_keys SET revoked_at = pg_catalog.now() "
	"WHERE id OPERATOR(pg_catalog.=) $1 AND revoked_at IS NULL",
	1, {INT8OID}
};

static DdPlan owner_plan = {
	"SELECT user_id FROM @extschema@.api_keys WHERE id OPERATOR(pg_catalog.=) $1",
	1, {INT8OID}
};

static DdPlan exists_plan = {
	"SELECT 1 FROM @extschema@.api_keys WHERE id OPERATOR(pg_catalog.=) $1",
	1, {INT8OID}
};

/*
 * DdResultTupleDesc
 *		The blessed result row descriptor of the calling function, built
 *		once per call site and kept in fn_extra.
 */
static TupleDesc
DdResultTupleDesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc;
	MemoryContext old;

	if (fcinfo->flinfo->fn_extra != NULL)
		return (TupleDesc) fcinfo->flinfo->fn_extra;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = tupdesc;
	return tupdesc;
}

/*
 * DdKeySha256
 *		SHA-256 of key[0..len), as a new bytea, computed with PostgreSQL's
 *		cryptohash (OpenSSL when built with it).
 */
static bytea *
DdKeySha256(const char *key, size_t len)
{
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (pg_cryptohash_init(ctx) < 0
		|| pg_cryptohash_update(ctx, (const uint8 *) key, len) < 0
		|| pg_cryptohash_final(ctx, (uint8 *) VARDATA(result),
							   PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return result;
}

/*
 * The one query of every verification: the key's row, found through the
 * unique index on key_hash (the only index that matches, so one generic
 * plan serves every call).  Columns: 1 id, 2 user_id, 3 revoked (bool),
 * 4 expired as of $2 (bool), 5 last_used_at due as of $3 (bool).
 */
static DdPlan lookup_plan = {
	.query = "SELECT k.id, k.user_id, k.revoked_at IS NOT NULL,"
	" COALESCE(k.expires_at OPERATOR(pg_catalog.<=) $2, false),"
	" COALESCE(k.last_used_at OPERATOR(pg_catalog.<) $3, true)"
	" FROM @extschema@.api_keys k"
	" WHERE k.key_hash OPERATOR(pg_catalog.=) $1",
	.nargs = 3,
	.argtypes = {BYTEAOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * DdLookupKey
 *		Find the api_keys row whose key_hash is hash and fill check from it
 *		(or NOT_FOUND).  Returns whether its last_used_at is due (NULL or
 *		before cutoff).  user_id is copied into the caller's memory context.
 *
 *		A SELECT through SPI, as a new statement: READ COMMITTED sees what
 *		committed before this moment (a revoke included), REPEATABLE READ
 *		the transaction's snapshot; a key created earlier in the same
 *		transaction is seen.  Must be connected to SPI.
 */
static bool
DdLookupKey(Oid nspid, bytea *hash, TimestampTz now, TimestampTz cutoff,
			DdKeyCheck *check)
{
	Datum		values[3];
	bool		due = false;

	values[0] = PointerGetDatum(hash);
	values[1] = TimestampTzGetDatum(now);
	values[2] = TimestampTzGetDatum(cutoff);

	check->code = DD_KEY_NOT_FOUND;
	check->found = false;
	if (DdExecutePlan(&lookup_plan, nspid, values, NULL, false, 1,
					  SPI_OK_SELECT) == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		v;

		check->found = true;
		check->key_id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
		v = SPI_getbinval(row, desc, 2, &isnull);
		/* Copied out of SPI's memory, which SPI_finish frees. */
		check->user_id = isnull ? NULL :
			DatumGetTextPP(SPI_datumTransfer(v, false, -1));

		check->code = DD_KEY_VALID;
		if (DatumGetBool(SPI_getbinval(row, desc, 3, &isnull)))
			check->code = DD_KEY_REVOKED;
		else if (DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
			check->code = DD_KEY_EXPIRED;
		due = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
	}
	return due;
}

/*
 * DdLegacyKey
 *		Whether key, which is not a well-formed dd_clipper key, is looked up
 *		anyway as a key imported from Convex: only with
 *		dd_clipper.legacy_keys on, for 1 to DD_MAX_LEGACY_KEY bytes that do
 *		not start with the ddk_ prefix (a malformed key of our own format is
 *		MALFORMED whatever the setting, without a lookup).
 */
static bool
DdLegacyKey(text *key)
{
	size_t		len = VARSIZE_ANY_EXHDR(key);

	return dd_legacy_keys && len > 0 && len <= DD_MAX_LEGACY_KEY
		&& !(len >= DD_KEY_PREFIX_LEN
			 && memcmp(VARDATA_ANY(key), DD_KEY_PREFIX, DD_KEY_PREFIX_LEN) == 0);
}

/*
 * DdCheckKey
 *		Verify the key in api_key (a text datum, or NULL) and fill check.
 *		MALFORMED is decided by the codec without touching a table; with
 *		dd_clipper.legacy_keys on, a text that is not of our format (see
 *		DdLegacyKey) is looked up by its SHA-256 like a key.  When
 *		the key is VALID and its last_used_at is due, write last_used_at
 *		with the conditional UPDATE described in the file banner; if that
 *		UPDATE writes nothing (a concurrent verification wrote it, or the
 *		row changed under it), read the row again with a new snapshot and
 *		answer from that.  Connects to SPI itself, only for that UPDATE.
 */
static void
DdCheckKey(Oid nspid, bool isnull, Datum api_key, DdKeyCheck *check)
{
	text	   *key;
	bytea	   *hash;
	TimestampTz now;
	TimestampTz cutoff;
	bool		due;

	check->code = DD_KEY_MALFORMED;
	check->found = false;
	check->key_id = 0;
	check->user_id = NULL;

	if (isnull)
		return;
	if (toast_raw_datum_size(api_key) == VARHDRSZ + DD_KEY_LEN)
	{
		key = DatumGetTextPP(api_key);
		if (DdKeyDecode(VARDATA_ANY(key), DD_KEY_LEN, NULL))
			hash = DdKeySha256(VARDATA_ANY(key), DD_KEY_LEN);
		else if (!DdLegacyKey(key))
			return;
		else
			hash = DdKeySha256(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	}
	else
	{
		/* Not even detoasted when its length cannot be a key's. */
		if (!dd_legacy_keys
			|| toast_raw_datum_size(api_key) > VARHDRSZ + DD_MAX_LEGACY_KEY)
			return;
		key = DatumGetTextPP(api_key);
		if (!DdLegacyKey(key))
			return;
		hash = DdKeySha256(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	}

	now = GetCurrentTransactionStartTimestamp();
	cutoff = now - (TimestampTz) dd_key_touch_interval * USECS_PER_SEC;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	due = DdLookupKey(nspid, hash, now, cutoff, check);
	if (check->code == DD_KEY_VALID && due)
	{
		Datum		values[3];

		values[0] = Int64GetDatum(check->key_id);
		values[1] = TimestampTzGetDatum(now);
		values[2] = TimestampTzGetDatum(cutoff);
		if (DdExecutePlan(&touch_plan, nspid, values, NULL, false, 0,
						  SPI_OK_UPDATE) == 0)
		{
			/*
			 * The newest version of the row is not the one we read: someone
			 * else wrote last_used_at, or revoked the key, or deleted it.
			 * Answer from the row as committed now; do not write again.
			 */
			(void) DdLookupKey(nspid, hash, now, cutoff, check);
		}
	}
	SPI_finish();

	pfree(hash);
}

/*
 * DdKeyCheckDatum
 *		The dd_key_check row of check.
 */
static Datum
DdKeyCheckDatum(FunctionCallInfo fcinfo, const DdKeyCheck *check)
{
	TupleDesc	tupdesc = DdResultTupleDesc(fcinfo);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = BoolGetDatum(check->code == DD_KEY_VALID);
	values[1] = CStringGetTextDatum(dd_key_code_names[check->code]);
	if (check->found)
	{
		values[2] = Int64GetDatum(check->key_id);
		values[3] = PointerGetDatum(check->user_id);
	}
	else
	{
		values[2] = (Datum) 0;
		values[3] = (Datum) 0;
		nulls[2] = nulls[3] = true;
	}
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * dd_create_api_key(user_id text, name text = NULL,
 *					 expires_at timestamptz = NULL,
 *					 OUT key_id bigint, OUT api_key text)
 *		Create a key for user_id: 32 bytes from pg_strong_random, encoded
 *		with its checksum; store its SHA-256 and display prefix.  The
 *		plaintext is returned here and nowhere else.  Each call inserts one
 *		row; concurrent calls do not interact.
 */
Datum
dd_create_api_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	text	   *name = DdOptionalTextArg(fcinfo, 1, "name", DD_MAX_NAME);
	uint8		bytes[DD_KEY_RANDOM_BYTES];
	char		key[DD_KEY_LEN + 1];
	bytea	   *hash;
	text	   *key_text;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	TupleDesc	tupdesc;
	Datum		result[2];
	bool		result_nulls[2] = {false, false};
	int64		key_id;
	bool		isnull;

	DdConfineUser(nspid, user_id, "user_id");

	if (!PG_ARGISNULL(2) &&
		PG_GETARG_TIMESTAMPTZ(2) <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be in the future"),
				 errdetail("A key that expires at %s would never be valid.",
						   timestamptz_to_str(PG_GETARG_TIMESTAMPTZ(2))),
				 errhint("Pass NULL for a key that never expires.")));

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for an API key")));
	DdKeyEncode(bytes, key);
	explicit_bzero(bytes, sizeof(bytes));
	hash = DdKeySha256(key, DD_KEY_LEN);
	key_text = cstring_to_text_with_len(key, DD_KEY_LEN);

	values[0] = PointerGetDatum(user_id);
	values[1] = PointerGetDatum(name);
	if (name == NULL)
		nulls[1] = 'n';
	values[2] = PointerGetDatum(cstring_to_text_with_len(key, DD_KEY_DISPLAY_LEN));
	values[3] = PointerGetDatum(hash);
	values[4] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(2))
		nulls[4] = 'n';
	explicit_bzero(key, sizeof(key));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&insert_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) != 1)
		elog(ERROR, "inserting an API key did not return its id");
	key_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	tupdesc = DdResultTupleDesc(fcinfo);
	result[0] = Int64GetDatum(key_id);
	result[1] = PointerGetDatum(key_text);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result,
													  result_nulls)));
}

/*
 * dd_verify_api_key(api_key text) returns dd_key_check
 *		Verify a key: VALID, MALFORMED (decided without table access),
 *		NOT_FOUND, EXPIRED or REVOKED.  Read-only except for writing
 *		last_used_at at most once per dd_clipper.key_touch_interval (see the
 *		file banner for what it promises under concurrency).  NULL or any
 *		other text is MALFORMED, never an error.
 */
Datum
dd_verify_api_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	DdKeyCheck	check;

	DdCheckKey(nspid, PG_ARGISNULL(0), PG_GETARG_DATUM(0), &check);
	PG_RETURN_DATUM(DdKeyCheckDatum(fcinfo, &check));
}

/*
 * dd_revoke_api_key(key_id bigint) returns boolean
 *		Revoke a key: true when this call revoked it, false when it was
 *		already revoked; an unknown key_id is an error.  Two concurrent
 *		revokes of one key: one returns true, the other waits for it and
 *		returns false.
 */
Datum
dd_revoke_api_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	Datum		values[1];
	bool		revoked;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key_id must not be null")));
	values[0] = PG_GETARG_DATUM(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/*
	 * A confined caller revokes its claim's keys only; another user's key is
	 * answered as an unknown one, so key ids reveal nothing.
	 */
	if (DdCallerConfined(nspid))
	{
		bool		ownnull;

		if (DdExecutePlan(&owner_plan, nspid, values, NULL, false, 1,
						  SPI_OK_SELECT) == 0 ||
			!DdClaimIs(DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1,
													&ownnull))))
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("key_id %lld does not exist",
							(long long) PG_GETARG_INT64(0)),
					 errhint("key_id is the key_id that dd_create_api_key returned.")));
	}
	revoked = DdExecutePlan(&revoke_plan, nspid, values, NULL, false, 0,
							SPI_OK_UPDATE) > 0;
	if (!revoked &&
		DdExecutePlan(&exists_plan, nspid, values, NULL, false, 1,
					  SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("key_id %lld does not exist",
						(long long) PG_GETARG_INT64(0)),
				 errhint("key_id is the key_id that dd_create_api_key returned.")));
	SPI_finish();

	PG_RETURN_BOOL(revoked);
}

/*
 * dd_authorize_and_charge(api_key text, amount bigint = 1,
 *						   request_id text = NULL, endpoint text = NULL,
 *						   metadata jsonb = NULL) returns dd_authorization
 *		The whole middleware path in one call: verify the key (as
 *		dd_verify_api_key, last_used_at included), then charge the key's
 *		user as dd_charge_credit does, logging the request with the key's
 *		id.  valid is true only when the request may proceed: the key is
 *		VALID and the charge succeeded (code INSUFFICIENT_CREDITS when it
 *		did not).  With amount = 0 nothing is charged or logged.  Idempotent
 *		on request_id exactly like dd_charge_credit.
 */
Datum
dd_authorize_and_charge(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	DdChargeArgs args;
	DdKeyCheck	check;
	DdChargeResult charge;
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false, false, false, false, false, false, false, false};
	bool		charged = false;

	memset(&charge, 0, sizeof(charge));

	/*
	 * Bad arguments are errors whatever the key, with the same messages as
	 * dd_charge_credit (DdChargeCredit checks them again, cheaply).
	 */
	DdGetChargeArgs(fcinfo, 1, 2, 3, 4, &args);

	DdCheckKey(nspid, PG_ARGISNULL(0),
			   PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0), &check);
	if (check.code == DD_KEY_VALID)
	{
		DdChargeCredit(nspid, check.user_id, args.amount, args.request_id,
					   args.endpoint, true, check.key_id, args.metadata,
					   &charge);
		charged = true;
	}

	tupdesc = DdResultTupleDesc(fcinfo);
	if (!charged)
		values[1] = CStringGetTextDatum(dd_key_code_names[check.code]);
	else if (!charge.ok)
		values[1] = CStringGetTextDatum("INSUFFICIENT_CREDITS");
	else
		values[1] = CStringGetTextDatum("VALID");
	values[0] = BoolGetDatum(charged && charge.ok);
	values[2] = Int64GetDatum(check.key_id);
	values[3] = PointerGetDatum(check.user_id);
	nulls[2] = nulls[3] = !check.found;
	values[4] = BoolGetDatum(charged && charge.ok);
	values[5] = Int64GetDatum(charged ? charge.balance : 0);
	nulls[5] = !(charged && charge.has_balance);
	values[6] = Int64GetDatum(charged ? charge.usage_id : 0);
	nulls[6] = !(charged && charge.has_usage_id);
	values[7] = BoolGetDatum(charged && charge.replayed);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
