/*-------------------------------------------------------------------------
 *
 * row_security.c
 *	  Row-level security that is a boundary: the user a confined role acts
 *	  for comes from a signed claim, never from a setting the role can SET.
 *
 * In 1.0 the policies compared user_id with the setting dd_clipper.user_id,
 * which every role can SET, so a "confined" role could read any user's rows
 * by naming that user.  From 1.1 the policies compare user_id with
 * dd_claim_user_id(), which returns the user of a claim that this backend
 * verified in the current transaction:
 *
 *	  dd_sign_claim(user_id, expires_at)	(trusted roles only)
 *		returns a token "ddc1.<payload>.<mac>" (layout in claim_codec.h):
 *		user_id, expiry and key id, signed with HMAC-SHA256 under the newest
 *		active secret in row_security_keys, a table only the extension's
 *		owner can read.
 *	  dd_set_claim(token)					(anyone)
 *		checks the token's form, that its key exists and is not retired,
 *		its signature (compared in constant time) and its expiry, and then
 *		remembers its user for the rest of the current transaction.
 *	  dd_claim_user_id()					(anyone; the policies call it)
 *		that user, or NULL.
 *	  dd_clear_claim()						(anyone)
 *		forget it before the transaction ends.
 *
 * Scope: the transaction.  The claim lives in backend memory, nowhere a
 * role can write, and is forgotten at COMMIT, ROLLBACK and PREPARE
 * TRANSACTION; a claim set in a savepoint that is rolled back is
 * forgotten with it (the one before comes back), as SET LOCAL would be.
 * So a connection that a pooler hands to the next client never carries a
 * claim over, and a claim cannot outlive the transaction that verified it.
 *
 * Key rotation: dd_rotate_claim_key() adds a new secret, which signs from
 * then on; tokens of the older keys keep verifying until
 * dd_retire_claim_key(key_id) retires their key.
 *
 * Functions, too.  The credit, key and event functions run as the
 * extension's owner (SECURITY DEFINER), so policies do not reach them.
 * When row security is on and the role that called (the outer role: the
 * session's, or the one SET ROLE chose) is subject to it, DdConfineUser
 * refuses a user_id other than the claim's, and DdRefuseConfined refuses
 * the functions that read or change every user's rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "claim_codec.h"
#include "dd_clipper.h"

PG_FUNCTION_INFO_V1(dd_sign_claim);
PG_FUNCTION_INFO_V1(dd_set_claim);
PG_FUNCTION_INFO_V1(dd_claim_user_id);
PG_FUNCTION_INFO_V1(dd_clear_claim);
PG_FUNCTION_INFO_V1(dd_rotate_claim_key);
PG_FUNCTION_INFO_V1(dd_retire_claim_key);

#define DD_CLAIM_SECRET_LEN 32

/*
 * The claim of the current transaction, as a stack with one frame per
 * (sub)transaction that set it, so that rolling back a savepoint gives back
 * the claim from before it.  user_id NULL is "no claim" (dd_clear_claim).
 * Frames live in TopMemoryContext and are freed at the end of the
 * transaction.
 */
typedef struct ClaimFrame
{
	char	   *user_id;
	int			user_id_len;
	SubTransactionId subid;
	struct ClaimFrame *prev;
} ClaimFrame;

static ClaimFrame *claim_top = NULL;

static void
PopClaimFrame(void)
{
	ClaimFrame *f = claim_top;

	claim_top = f->prev;
	if (f->user_id)
		pfree(f->user_id);
	pfree(f);
}

static void
ForgetClaims(void)
{
	while (claim_top != NULL)
		PopClaimFrame();
}

static void
ClaimXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ForgetClaims();
			break;
		default:
			break;
	}
}

static void
ClaimSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			while (claim_top != NULL && claim_top->subid == mySubid)
				PopClaimFrame();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			/* The savepoint's claim becomes its parent's. */
			if (claim_top != NULL && claim_top->subid == mySubid)
			{
				ClaimFrame *top = claim_top;

				if (top->prev != NULL && top->prev->subid == parentSubid)
				{
					claim_top = top->prev;
					PopClaimFrame();
					top->prev = claim_top;
					claim_top = top;
				}
				top->subid = parentSubid;
			}
			break;
		default:
			break;
	}
}

/*
 * DdRowSecurityInit
 *		Called from _PG_init: forget claims at the end of (sub)transactions.
 */
void
DdRowSecurityInit(void)
{
	RegisterXactCallback(ClaimXactCallback, NULL);
	RegisterSubXactCallback(ClaimSubXactCallback, NULL);
}

/* SetClaim: make user_id (len bytes, or NULL) the claim from now on. */
static void
SetClaim(const char *user_id, int len)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	ClaimFrame *f;

	if (claim_top == NULL || claim_top->subid != subid)
	{
		f = MemoryContextAllocZero(TopMemoryContext, sizeof(ClaimFrame));
		f->subid = subid;
		f->prev = claim_top;
		claim_top = f;
	}
	f = claim_top;
	if (f->user_id)
		pfree(f->user_id);
	f->user_id = NULL;
	f->user_id_len = 0;
	if (user_id != NULL)
	{
		f->user_id = MemoryContextAlloc(TopMemoryContext, len + 1);
		memcpy(f->user_id, user_id, len);
		f->user_id[len] = '\0';
		f->user_id_len = len;
	}
}

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------
 */

static DdPlan newest_key_plan = {
	"SELECT k.key_id, k.secret FROM @extschema@.row_security_keys k "
	"WHERE k.retired_at IS NULL ORDER BY k.key_id DESC LIMIT 1",
	0, {InvalidOid}
};

static DdPlan key_plan = {
	"SELECT k.secret, k.retired_at IS NOT NULL FROM @extschema@.row_security_keys k "
	"WHERE k.key_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};

static DdPlan insert_key_plan = {
	"INSERT INTO @extschema@.row_security_keys (secret) VALUES ($1) RETURNING key_id",
	1, {BYTEAOID}
};

static DdPlan retire_key_plan = {
	"UPDATE @extschema@.row_security_keys SET retired_at = pg_catalog.now() "
	"WHERE key_id OPERATOR(pg_catalog.=) $1 AND retired_at IS NULL",
	1, {INT4OID}
};

static DdPlan key_exists_plan = {
	"SELECT 1 FROM @extschema@.row_security_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};

/* CopySecret: the secret of an SPI result column, checked. */
static void
CopySecret(int col, uint8 secret[DD_CLAIM_SECRET_LEN])
{
	bool		isnull;
	bytea	   *value = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc,
													  col, &isnull));

	if (isnull || VARSIZE_ANY_EXHDR(value) != DD_CLAIM_SECRET_LEN)
		elog(ERROR, "row_security_keys of dd_clipper holds a malformed secret");
	memcpy(secret, VARDATA_ANY(value), DD_CLAIM_SECRET_LEN);
}

/* ClaimMac: HMAC-SHA256 of data under secret, with PostgreSQL's own HMAC. */
static void
ClaimMac(const uint8 secret[DD_CLAIM_SECRET_LEN], const char *data, size_t len,
		 uint8 mac[DD_CLAIM_MAC_LEN])
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_hmac_init(ctx, secret, DD_CLAIM_SECRET_LEN) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_hmac_final(ctx, mac, DD_CLAIM_MAC_LEN) < 0)
	{
		const char *why = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA256: %s", why);
	}
	pg_hmac_free(ctx);
}

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------
 */

/*
 * dd_sign_claim(user_id text, expires_at timestamptz) returns text
 *		A token saying "acts for user_id until expires_at", signed with the
 *		newest active key.  For trusted roles only (EXECUTE is not granted
 *		to PUBLIC): whoever can sign can act for any user.
 */
Datum
dd_sign_claim(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	TimestampTz expires;
	uint8		secret[DD_CLAIM_SECRET_LEN];
	uint8		mac[DD_CLAIM_MAC_LEN];
	char		out[DD_CLAIM_MAX_TEXT_LEN + 1];
	size_t		len;
	int32		key_id;
	bool		isnull;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("expires_at must not be null")));
	expires = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(expires) || expires <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be a finite time in the future"),
				 errhint("A claim is for one request or a few: now() + interval '1 minute', say.")));
	if (VARSIZE_ANY_EXHDR(user_id) > DD_CLAIM_MAX_USER_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("user_id is too long")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&newest_key_plan, nspid, NULL, NULL, true, 0,
					  SPI_OK_SELECT) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no active row security key"),
				 errhint("Make one with dd_rotate_claim_key().")));
	key_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	CopySecret(2, secret);
	SPI_finish();

	len = DdClaimEncodeSigned((uint32_t) key_id, (int64_t) expires,
							  VARDATA_ANY(user_id), VARSIZE_ANY_EXHDR(user_id),
							  out);
	ClaimMac(secret, out, len, mac);
	explicit_bzero(secret, sizeof(secret));
	len = DdClaimAppendMac(out, len, mac);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, (int) len));
}

/* ClaimError: one SQLSTATE (28000) for every claim that does not verify. */
static void
ClaimError(const char *msg, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("%s", msg),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("A claim is a token from dd_sign_claim(), unchanged, used before it expires.")));
}

/*
 * dd_set_claim(token text) returns text
 *		Verify token and make its user the claim of the current transaction;
 *		returns the user.  Checks, in order: the form, the key (exists, not
 *		retired), the signature (constant-time), the expiry.  Any failure is
 *		28000 and leaves the claim as it was.
 */
Datum
dd_set_claim(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *token;
	DdClaim		claim;
	uint8		secret[DD_CLAIM_SECRET_LEN];
	uint8		mac[DD_CLAIM_MAC_LEN];
	Datum		values[1];
	bool		isnull;
	bool		retired;
	const char *user_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("token must not be null")));
	token = PG_GETARG_TEXT_PP(0);

	if (DdClaimDecode(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token), &claim) != DD_CLAIM_OK)
		ClaimError("claim is malformed", NULL);
	if (claim.key_id == 0 || claim.key_id > (uint32_t) PG_INT32_MAX)
		ClaimError("claim signature does not verify", NULL);

	values[0] = Int32GetDatum((int32) claim.key_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&key_plan, nspid, values, NULL, true, 0,
					  SPI_OK_SELECT) != 1)
		ClaimError("claim signature does not verify", NULL);
	retired = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull));
	if (retired)
		ClaimError("claim was signed with a retired key",
				   psprintf("Key %u was retired with dd_retire_claim_key().",
							claim.key_id));
	CopySecret(1, secret);
	SPI_finish();

	ClaimMac(secret, VARDATA_ANY(token), claim.signed_len, mac);
	explicit_bzero(secret, sizeof(secret));
	if (!DdClaimMacEqual(mac, claim.mac))
		ClaimError("claim signature does not verify", NULL);

	if ((TimestampTz) claim.expires <= GetCurrentTimestamp())
		ClaimError("claim has expired",
				   psprintf("It expired at %s.",
							timestamptz_to_str((TimestampTz) claim.expires)));

	/* Signed, so made by dd_sign_claim from a text; checked all the same. */
	user_id = DdClaimUserId(&claim);
	if (memchr(user_id, '\0', claim.user_id_len) != NULL ||
		!pg_verifymbstr(user_id, (int) claim.user_id_len, true))
		ClaimError("claim is malformed", NULL);

	SetClaim(user_id, (int) claim.user_id_len);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(user_id, (int) claim.user_id_len));
}

/*
 * dd_claim_user_id() returns text
 *		The user of the claim set in this transaction, or NULL.  The row
 *		policies call it; it is PARALLEL RESTRICTED, since the claim lives
 *		in this backend's memory and a parallel worker has none.
 */
Datum
dd_claim_user_id(PG_FUNCTION_ARGS)
{
	if (claim_top == NULL || claim_top->user_id == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(claim_top->user_id,
											  claim_top->user_id_len));
}

/*
 * dd_clear_claim() returns void
 *		No claim from now on in this transaction (rolled back with a
 *		savepoint like any other change of the claim).
 */
Datum
dd_clear_claim(PG_FUNCTION_ARGS)
{
	if (claim_top != NULL)
		SetClaim(NULL, 0);
	PG_RETURN_VOID();
}

/*
 * dd_rotate_claim_key() returns integer
 *		A new secret (32 bytes of pg_strong_random), which signs every claim
 *		from now on; returns its key_id.  Older keys still verify until
 *		retired.  Runs with the caller's rights: for the extension's owner.
 */
Datum
dd_rotate_claim_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	bytea	   *secret = palloc(VARHDRSZ + DD_CLAIM_SECRET_LEN);
	Datum		values[1];
	bool		isnull;
	int32		key_id;

	SET_VARSIZE(secret, VARHDRSZ + DD_CLAIM_SECRET_LEN);
	if (!pg_strong_random(VARDATA(secret), DD_CLAIM_SECRET_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a row security key")));
	values[0] = PointerGetDatum(secret);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&insert_key_plan, nspid, values, NULL, false, 0,
					  SPI_OK_INSERT_RETURNING) != 1)
		elog(ERROR, "inserting a row security key did not return its id");
	key_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	explicit_bzero(VARDATA(secret), DD_CLAIM_SECRET_LEN);
	PG_RETURN_INT32(key_id);
}

/*
 * dd_retire_claim_key(key_id integer) returns boolean
 *		Retire a key: claims it signed no longer verify, and it signs no
 *		more.  True when this call retired it, false when it was retired
 *		already; an unknown key_id is P0002.
 */
Datum
dd_retire_claim_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	Datum		values[1];
	bool		retired;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key_id must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	retired = DdExecutePlan(&retire_key_plan, nspid, values, NULL, false, 0,
							SPI_OK_UPDATE) > 0;
	if (!retired &&
		DdExecutePlan(&key_exists_plan, nspid, values, NULL, false, 1,
					  SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("row security key %d does not exist", PG_GETARG_INT32(0))));
	SPI_finish();
	PG_RETURN_BOOL(retired);
}

/* ------------------------------------------------------------------------
 * Confinement of the SECURITY DEFINER functions
 * ------------------------------------------------------------------------
 */

/*
 * DdCallerConfined
 *		Whether row security confines the role that called: it is on for the
 *		extension's api_credits (dd_enable_row_security turns it on for all
 *		the per-user tables at once) and the outer role -- the session's
 *		role or the one SET ROLE chose, whatever SECURITY DEFINER switched
 *		to since -- neither owns the table nor has BYPASSRLS.  Only from
 *		1.1 on, when the extension has claims.
 */
bool
DdCallerConfined(Oid nspid)
{
	Oid			relid = get_relname_relid("api_credits", nspid);

	if (!OidIsValid(relid) ||
		check_enable_rls(relid, GetOuterUserId(), true) != RLS_ENABLED)
		return false;

	/*
	 * A database still on 1.0 (this library, before ALTER EXTENSION UPDATE)
	 * has no claims to confine to: its functions keep 1.0's behaviour.
	 */
	return OidIsValid(get_relname_relid("row_security_keys", nspid));
}

/*
 * DdConfineUser
 *		For a confined caller, user_id must be the claim's user (42501
 *		otherwise, and when no claim is set).  argname names the argument.
 */
void
DdConfineUser(Oid nspid, text *user_id, const char *argname)
{
	if (!DdCallerConfined(nspid))
		return;
	if (claim_top == NULL || claim_top->user_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row security confines this role, and no claim is set"),
				 errhint("Call dd_set_claim(token) in this transaction first.")));
	if (VARSIZE_ANY_EXHDR(user_id) != claim_top->user_id_len ||
		memcmp(VARDATA_ANY(user_id), claim_top->user_id,
			   claim_top->user_id_len) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s is not the user of this transaction's claim", argname),
				 errdetail("Row security confines this role to the user of the claim set with dd_set_claim().")));
}

/* DdClaimIs: whether user_id is the user of the transaction's claim. */
bool
DdClaimIs(text *user_id)
{
	return claim_top != NULL && claim_top->user_id != NULL &&
		VARSIZE_ANY_EXHDR(user_id) == claim_top->user_id_len &&
		memcmp(VARDATA_ANY(user_id), claim_top->user_id,
			   claim_top->user_id_len) == 0;
}

/*
 * DdRefuseConfined
 *		A function that reads or changes every user's rows is refused to a
 *		confined caller.
 */
void
DdRefuseConfined(Oid nspid, const char *function)
{
	if (DdCallerConfined(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s reads or changes every user's rows, and row security confines this role",
						function)));
}
