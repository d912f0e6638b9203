/*-------------------------------------------------------------------------
 *
 * clips.c
 *	  Saved clips: the triggers that keep every write's change version,
 *	  updated_at, tombstone and notification right whoever writes (any
 *	  ORM, psql, COPY), the keyset pages of dd_clips_page, and the change
 *	  feed dd_clip_changes.
 *
 * Change versions and why the feed never misses a commit
 * -------------------------------------------------------
 * A version taken from a sequence is not enough: writer A takes 10, writer
 * B takes 11 and commits, a poller reads 11 and answers "you are at 11",
 * then A commits 10, which the poller's client, now asking for changes
 * after 11, never sees.  Versions have to be ordered so that the poller can
 * tell which of them can still appear.
 *
 * So a clip write's version is built from the 64-bit id of the writing
 * (top-level) transaction:
 *
 *		version = (xid8 << 20) | n,		n = 1, 2, ... within the transaction
 *
 * (BEFORE trigger dd_clips_stamp for inserts and updates, soft deletes
 * included; AFTER trigger dd_clips_publish for the tombstone of a hard
 * delete).  n counts the transaction's clip writes, so versions are unique;
 * after 2^20 - 1 writes in one transaction it stays at 2^20 - 1 (versions
 * of that transaction's later writes repeat, see below).  A FullTransactionId
 * never wraps around; the version has room for xid8 < 2^43 (8.8 trillion
 * transactions), checked on every write.
 *
 * dd_clip_changes reads, in ONE snapshot S (the function is STABLE and runs
 * its queries read-only, so they all use the caller's snapshot):
 *
 *		H = (min(xmin(S), own xid if any) << 20) - 1
 *
 * where xmin(S) is the oldest transaction id still running when S was taken
 * (pg_snapshot_xmin(pg_current_snapshot())).  It returns the current state
 * of every clip (and tombstone) of the user whose version v has
 * since < v <= H, and H as the new high-water.  Two facts make that sound:
 *
 *	(1) Every write with version <= H is visible in S.  Its transaction id is
 *		below xmin(S), so that transaction had ended when S was taken: it
 *		either committed (then S sees it) or aborted (then the write never
 *		existed).
 *	(2) Every write not visible in S has version > H.  A transaction S does
 *		not see was running at S or started after it; either way its id is
 *		>= xmin(S), and so are the versions it stamps.  (The poller's own
 *		uncommitted writes are visible to it but bounded by min(..., own
 *		xid), so a poll inside a transaction that is later rolled back never
 *		hands out their versions.)
 *
 * The feed returns, for each clip whose latest write w (as S sees it) has
 * since < version(w) <= H, that latest state.  Take a client that always
 * polls with the version it was given, and any committed write w of a clip
 * c, version v.  Let P be the first of its polls with H(P) >= v.  By (1), w
 * is visible in P's snapshot, so the state P sees for c is w or a later
 * write w'.  If version(w') > since(P), P returns it.  Otherwise w' was
 * visible to the earlier poll that returned since(P) (by (1) again), and
 * it was already c's latest write there (anything after it would be a
 * later write, also visible in S, contradicting that w' is the latest in
 * S), so that poll, or one before it, returned w' -- by induction on the
 * polls.  Either way the client holds w or a state that superseded it:
 * no committed change is lost.  And by (2), everything written after P has
 * a version above H(P), so the next poll, which asks for versions above
 * H(P), sees it.
 *
 * A clip's version can go down: a transaction with an older id overwrites
 * the clip after a younger one did and committed.  By (2), no poll can have
 * returned the younger version while the older writer was running (its id
 * held H below both), so no client holds a version newer than the clip's.
 *
 * Each change is returned once: the next poll asks for versions > H.  With
 * nothing new, H is returned again or later (xmin only grows), and never a
 * version below the given since.  With more than max changes the high-water
 * is the last returned version instead of H; if the cut falls inside a run
 * of equal versions (only after 2^20 - 1 writes in one transaction), the
 * cut moves before the run, or the whole run is returned.
 *
 * Cost of this design: a transaction that stays open (anywhere in the
 * cluster, with an xid) holds H back, so changes after it are delayed, not
 * lost, until it ends; prepared transactions too.
 *
 * Hard deletes write a tombstone (clip_tombstones); soft deletes are seen as
 * a clip whose deleted_at is set.  TRUNCATE is refused: no row trigger would
 * see the removed clips.
 *
 * Notifications: every change sends NOTIFY on channel dd_clipper_clips with
 * {"table","user_id","id","op","version"} from the AFTER trigger; NOTIFY is
 * transactional, so it is delivered at commit and never for a rollback.
 *
 * Locking: the triggers take no locks beyond the row locks of the writing
 * statement (and the tombstone's primary key on a hard delete); the page
 * and feed functions take none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cursor_codec.h"
#include "dd_clipper.h"

PG_FUNCTION_INFO_V1(dd_clips_stamp);
PG_FUNCTION_INFO_V1(dd_clips_publish);
PG_FUNCTION_INFO_V1(dd_clips_refuse_truncate);
PG_FUNCTION_INFO_V1(dd_clips_page);
PG_FUNCTION_INFO_V1(dd_clip_changes);
PG_FUNCTION_INFO_V1(dd_rotate_cursor_key);

/* The NOTIFY channel of clip changes (documented in the README). */
#define DD_CLIPS_CHANNEL		"dd_clipper_clips"

/* Version = (xid8 << DD_VERSION_SHIFT) | n */
#define DD_VERSION_SHIFT		20
#define DD_VERSION_N_MAX		((UINT64CONST(1) << DD_VERSION_SHIFT) - 1)
#define DD_VERSION_XID_LIMIT	(UINT64CONST(1) << (63 - DD_VERSION_SHIFT))

/* Limits of dd_clips_page and dd_clip_changes arguments */
#define DD_CLIPS_MAX_PAGE		1000
#define DD_CLIPS_MAX_CHANGES	1000
#define DD_CLIPS_MAX_SEARCH		1024
#define DD_CLIPS_MAX_STATUS		256
#define DD_CLIPS_MAX_TAGS		64
#define DD_CLIPS_MAX_TAG		256

/* Sort codes, as written in cursors */
#define DD_SORT_NEWEST			0
#define DD_SORT_OLDEST			1
#define DD_SORT_RELEVANCE		2

/* The transaction whose clip writes n counts, and n. */
static FullTransactionId version_fxid = {0};
static uint64 version_n = 0;

/*
 * NextClipVersion
 *		The version of the next clip write of the current transaction:
 *		(top-level xid8 << 20) | n.  Assigns the transaction id if the
 *		transaction has none yet.  Versions of one transaction grow; see
 *		the file header for why versions ordered by transaction id make
 *		the change feed sound.
 */
static int64
NextClipVersion(void)
{
	FullTransactionId fxid = GetTopFullTransactionId();
	uint64		xid8 = U64FromFullTransactionId(fxid);

	if (xid8 >= DD_VERSION_XID_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transaction id %llu is too large for a clip change version",
						(unsigned long long) xid8),
				 errdetail("Clip change versions hold transaction ids below 2^43.")));

	if (!FullTransactionIdEquals(fxid, version_fxid))
	{
		version_fxid = fxid;
		version_n = 0;
	}
	if (version_n < DD_VERSION_N_MAX)
		version_n++;
	return (int64) ((xid8 << DD_VERSION_SHIFT) | version_n);
}

/*
 * ClipAttnum
 *		Attribute number of column name in the clips trigger relation.
 */
static int
ClipAttnum(TupleDesc tupdesc, const char *name)
{
	int			attnum = SPI_fnumber(tupdesc, name);

	if (attnum <= 0)
		elog(ERROR, "clips has no column \"%s\"", name);
	return attnum;
}

/*
 * TextDatumsEqual
 *		Whether two text datums hold the same bytes.
 */
static bool
TextDatumsEqual(Datum a, Datum b)
{
	text	   *ta = DatumGetTextPP(a);
	text	   *tb = DatumGetTextPP(b);

	return VARSIZE_ANY_EXHDR(ta) == VARSIZE_ANY_EXHDR(tb) &&
		memcmp(VARDATA_ANY(ta), VARDATA_ANY(tb), VARSIZE_ANY_EXHDR(ta)) == 0;
}

/*
 * CheckClipsTrigger
 *		Complain unless called as a row trigger of the kind expected.
 */
static TriggerData *
CheckClipsTrigger(FunctionCallInfo fcinfo, const char *name, bool before)
{
	TriggerData *trigdata;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "%s: not called by trigger manager", name);
	trigdata = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		(before != (bool) TRIGGER_FIRED_BEFORE(trigdata->tg_event)))
		elog(ERROR, "%s: must be fired %s, for each row", name,
			 before ? "before" : "after");
	return trigdata;
}

/*
 * dd_clips_stamp
 *		BEFORE INSERT OR UPDATE row trigger of clips.  Stamps the row with
 *		the next change version and, on update, sets updated_at to now()
 *		(the transaction's start).  Refuses an update that changes user_id
 *		or id: the feeds of both users would need a delete and an insert
 *		(and a distributed table cannot move a row between shards); insert
 *		a new clip instead.
 *
 *		Concurrency: runs under the row lock of the writing statement; two
 *		writers of one clip are serialized by it, each with its own version.
 */
Datum
dd_clips_stamp(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckClipsTrigger(fcinfo, "dd_clips_stamp", true);
	TupleDesc	tupdesc = trigdata->tg_relation->rd_att;
	HeapTuple	tuple;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			ncols = 0;

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		tuple = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	oldtuple = trigdata->tg_trigtuple;
		int			user_attnum = ClipAttnum(tupdesc, "user_id");
		int			id_attnum = ClipAttnum(tupdesc, "id");
		Datum		oldv,
					newv;
		bool		oldnull,
					newnull;

		tuple = trigdata->tg_newtuple;

		oldv = heap_getattr(oldtuple, user_attnum, tupdesc, &oldnull);
		newv = heap_getattr(tuple, user_attnum, tupdesc, &newnull);
		if (oldnull || newnull || !TextDatumsEqual(oldv, newv))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("user_id of a clip cannot be changed"),
					 errdetail("A clip belongs to one user for its whole life; the change feed of each user relies on it."),
					 errhint("Insert a new clip for the other user and delete this one.")));

		oldv = heap_getattr(oldtuple, id_attnum, tupdesc, &oldnull);
		newv = heap_getattr(tuple, id_attnum, tupdesc, &newnull);
		if (oldnull || newnull || DatumGetInt64(oldv) != DatumGetInt64(newv))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("id of a clip cannot be changed"),
					 errdetail("The change feed identifies clips by id.")));

		cols[ncols] = ClipAttnum(tupdesc, "updated_at");
		values[ncols] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		ncols++;
	}
	else
		elog(ERROR, "dd_clips_stamp: must be fired for INSERT or UPDATE");

	cols[ncols] = ClipAttnum(tupdesc, "version");
	values[ncols] = Int64GetDatum(NextClipVersion());
	ncols++;

	tuple = heap_modify_tuple_by_cols(tuple, tupdesc, ncols, cols, values, nulls);
	return PointerGetDatum(tuple);
}

/*
 * Tombstone of a hard delete; a re-used id (OVERRIDING SYSTEM VALUE) moves
 * it on.  $4 is now(), passed in: the statement itself calls no function.
 */
static DdPlan tombstone_plan = {
	"INSERT INTO @extschema@.clip_tombstones AS t (user_id, clip_id, version, deleted_at) "
	"VALUES ($1, $2, $3, $4) "
	"ON CONFLICT (user_id, clip_id) DO UPDATE "
	"SET version = EXCLUDED.version, deleted_at = EXCLUDED.deleted_at",
	4, {TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID}
};

/*
 * dd_clips_publish
 *		AFTER INSERT OR UPDATE OR DELETE row trigger of clips.  A hard
 *		delete gets a new version and a tombstone, so the change feed
 *		reports it; every change is sent with NOTIFY on dd_clipper_clips
 *		(delivered at commit, dropped on rollback).
 *
 *		SECURITY DEFINER (see the SQL script): the tombstone is written
 *		whoever deletes.  Concurrency: the tombstone's upsert takes the row
 *		lock of its (user_id, clip_id); the delete already holds the clip's.
 */
Datum
dd_clips_publish(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckClipsTrigger(fcinfo, "dd_clips_publish", false);
	Relation	rel = trigdata->tg_relation;
	TupleDesc	tupdesc = rel->rd_att;
	HeapTuple	tuple;
	Datum		user_id;
	int64		id;
	int64		version;
	bool		isnull;
	const char *op;
	StringInfoData payload;

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		tuple = trigdata->tg_newtuple;
	else
		tuple = trigdata->tg_trigtuple;

	user_id = heap_getattr(tuple, ClipAttnum(tupdesc, "user_id"), tupdesc, &isnull);
	if (isnull)
		elog(ERROR, "clip without user_id");
	id = DatumGetInt64(heap_getattr(tuple, ClipAttnum(tupdesc, "id"), tupdesc, &isnull));

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		Datum		values[4];

		version = NextClipVersion();
		values[0] = user_id;
		values[1] = Int64GetDatum(id);
		values[2] = Int64GetDatum(version);
		values[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		DdExecutePlan(&tombstone_plan, RelationGetNamespace(rel), values, NULL,
					  false, 0, SPI_OK_INSERT);
		SPI_finish();
		op = "delete";
	}
	else
	{
		version = DatumGetInt64(heap_getattr(tuple, ClipAttnum(tupdesc, "version"),
											 tupdesc, &isnull));
		(void) heap_getattr(tuple, ClipAttnum(tupdesc, "deleted_at"), tupdesc, &isnull);
		op = isnull ? "upsert" : "delete";
	}

	/*
	 * user_id is at most 256 characters (clips_user_id_length), so the
	 * payload stays far below NOTIFY's 8000 bytes even fully escaped.
	 */
	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"table\":\"clips\",\"user_id\":");
	escape_json(&payload, TextDatumGetCString(user_id));
	appendStringInfo(&payload, ",\"id\":" INT64_FORMAT ",\"op\":\"%s\",\"version\":" INT64_FORMAT "}",
					 id, op, version);
	Async_Notify(DD_CLIPS_CHANNEL, payload.data);
	pfree(payload.data);

	return PointerGetDatum(NULL);
}

/*
 * dd_clips_refuse_truncate
 *		BEFORE TRUNCATE trigger of clips: refuses.  TRUNCATE fires no row
 *		trigger, so the change feed could not report the removed clips.
 */
Datum
dd_clips_refuse_truncate(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "dd_clips_refuse_truncate: not called by trigger manager");
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("clips cannot be truncated"),
			 errdetail("TRUNCATE removes rows without a trace, so the change feed (dd_clip_changes) could not report them."),
			 errhint("Use DELETE, which leaves a tombstone for each clip.")));
	PG_RETURN_NULL();
}

/* ------------------------------------------------------------------------
 * JSON building
 * ------------------------------------------------------------------------
 */

static void
PushKey(JsonbParseState **state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
}

static void
PushInt64(JsonbParseState **state, JsonbIteratorToken token, int64 value)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, token, &v);
}

static void
PushString(JsonbParseState **state, JsonbIteratorToken token, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, token, &v);
}

static void
PushBool(JsonbParseState **state, JsonbIteratorToken token, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	pushJsonbValue(state, token, &v);
}

static void
PushNull(JsonbParseState **state, JsonbIteratorToken token)
{
	JsonbValue	v;

	v.type = jbvNull;
	pushJsonbValue(state, token, &v);
}

/* Push a whole jsonb document as an array element or object value. */
static void
PushJsonb(JsonbParseState **state, JsonbIteratorToken token, Jsonb *jb)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(state, token, &v);
}

/* ------------------------------------------------------------------------
 * The clip object: the table's columns but search
 * ------------------------------------------------------------------------
 *
 * Pages and the feed return each clip as a JSON object of the table's
 * columns, without the search vector (index data, derived from title,
 * notes and transcript; rendering it to text only to drop it would cost
 * more than the rest of the row).  The column list is read from the catalog
 * the first time a backend needs it and again after any change of the
 * table (a relcache invalidation callback), so ALTER TABLE clips ADD
 * COLUMN shows up in the next call; the queries that use it are prepared
 * again then.
 */
static Oid	clip_columns_relid = InvalidOid;
static bool clip_columns_valid = false;
static bool clip_callback_registered = false;
static char *clip_columns = NULL;	/* "p.id, p.user_id, ...": the page's */
static char *clip_columns_inner = NULL;	/* "c.id, c.user_id, ...": the scan's */
static char *clip_columns_feed = NULL;	/* "c.id, c.user_id, ...", lateral */

static void ForgetClipPlans(void);

/*
 * ClipsRelcacheCallback
 *		Any invalidation of clips (or of every relation) makes the column
 *		list stale.  Only sets a flag: no catalog access in a callback.
 */
static void
ClipsRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == clip_columns_relid)
		clip_columns_valid = false;
}

/*
 * EnsureClipColumns
 *		Make the column lists current for the clips table of schema nspid,
 *		forgetting the prepared queries built from older lists.  Must be
 *		connected to SPI.
 */
static void
EnsureClipColumns(Oid nspid)
{
	Oid			relid = get_relname_relid("clips", nspid);
	Relation	rel;
	TupleDesc	desc;
	StringInfoData outer;
	StringInfoData inner;
	int			i;
	MemoryContext old;

	if (!OidIsValid(relid))
		elog(ERROR, "table clips of dd_clipper is missing");
	if (!clip_callback_registered)
	{
		CacheRegisterRelcacheCallback(ClipsRelcacheCallback, (Datum) 0);
		clip_callback_registered = true;
	}
	if (clip_columns_valid && relid == clip_columns_relid)
		return;

	ForgetClipPlans();

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&outer);
	initStringInfo(&inner);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name;

		if (att->attisdropped || strcmp(NameStr(att->attname), "search") == 0)
			continue;
		name = quote_identifier(NameStr(att->attname));
		appendStringInfo(&outer, "%sp.%s", outer.len > 0 ? ", " : "", name);
		appendStringInfo(&inner, "%sc.%s", inner.len > 0 ? ", " : "", name);
	}
	MemoryContextSwitchTo(old);
	table_close(rel, AccessShareLock);

	if (clip_columns)
		pfree(clip_columns);
	if (clip_columns_inner)
		pfree(clip_columns_inner);
	if (clip_columns_feed)
		pfree(clip_columns_feed);
	clip_columns = outer.data;
	clip_columns_inner = inner.data;
	clip_columns_feed = MemoryContextStrdup(TopMemoryContext, inner.data);
	clip_columns_relid = relid;
	clip_columns_valid = true;
}

/* ------------------------------------------------------------------------
 * dd_clips_page
 * ------------------------------------------------------------------------
 */

/*
 * The cursor keys, read as the owner of clip_cursor_key: the current one
 * and, from 1.1, the one the last rotation replaced (NULL when none).  A
 * database still on 1.0 has no previous_key column.
 */
static DdPlan key_plan = {
	"SELECT k.key, k.previous_key FROM @extschema@.clip_cursor_key k", 0, {InvalidOid}
};
static DdPlan key_plan_10 = {
	"SELECT k.key, NULL::pg_catalog.bytea FROM @extschema@.clip_cursor_key k", 0, {InvalidOid}
};

static DdPlan rotate_key_plan = {
	"UPDATE @extschema@.clip_cursor_key SET "
	"previous_key = CASE WHEN $2 THEN key END, key = $1, rotated_at = pg_catalog.now()",
	2, {BYTEAOID, BOOLOID}
};

/*
 * LoadCursorKey
 *		Read the database's cursor key into key.  The table is readable by
 *		its owner only; the query runs as that owner (a restricted
 *		operation, like a SECURITY DEFINER function), so callers can use
 *		cursors without being able to forge them.  Must be connected to SPI.
 */
static void
LoadCursorKey(Oid nspid, uint8 key[DD_CURSOR_KEY_LEN],
			  uint8 previous[DD_CURSOR_KEY_LEN], bool *has_previous)
{
	Oid			relid = get_relname_relid("clip_cursor_key", nspid);
	HeapTuple	classtup;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	bool		isnull;
	bytea	   *value;
	Datum		previous_datum;
	int			n;

	if (!OidIsValid(relid))
		elog(ERROR, "table clip_cursor_key of dd_clipper is missing");
	classtup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(classtup))->relowner;
	ReleaseSysCache(classtup);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	n = DdExecutePlan(get_attnum(relid, "previous_key") != InvalidAttrNumber ?
					  &key_plan : &key_plan_10,
					  nspid, NULL, NULL, true, 0, SPI_OK_SELECT);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (n != 1)
		elog(ERROR, "clip_cursor_key of dd_clipper must hold one row, it holds %d", n);
	value = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(value) != DD_CURSOR_KEY_LEN)
		elog(ERROR, "clip_cursor_key of dd_clipper holds a malformed key");
	memcpy(key, VARDATA_ANY(value), DD_CURSOR_KEY_LEN);

	previous_datum = SPI_getbinval(SPI_tuptable->vals[0],
								   SPI_tuptable->tupdesc, 2, &isnull);
	*has_previous = !isnull;
	if (!isnull)
	{
		value = DatumGetByteaPP(previous_datum);
		if (VARSIZE_ANY_EXHDR(value) != DD_CURSOR_KEY_LEN)
			elog(ERROR, "clip_cursor_key of dd_clipper holds a malformed previous key");
		memcpy(previous, VARDATA_ANY(value), DD_CURSOR_KEY_LEN);
	}
}

/*
 * dd_rotate_cursor_key(keep_previous boolean = true) returns void
 *		A new cursor key from pg_strong_random.  With keep_previous the key
 *		it replaces stays as previous_key, so cursors in flight still work
 *		until the next rotation; without, they fail their integrity check
 *		at once.  Runs with the caller's rights: for the extension's owner.
 */
Datum
dd_rotate_cursor_key(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	bytea	   *key = palloc(VARHDRSZ + DD_CURSOR_KEY_LEN);
	Datum		values[2];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keep_previous must not be null")));
	SET_VARSIZE(key, VARHDRSZ + DD_CURSOR_KEY_LEN);
	if (!pg_strong_random(VARDATA(key), DD_CURSOR_KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a cursor key")));
	values[0] = PointerGetDatum(key);
	values[1] = PG_GETARG_DATUM(0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (DdExecutePlan(&rotate_key_plan, nspid, values, NULL, false, 0,
					  SPI_OK_UPDATE) != 1)
		elog(ERROR, "clip_cursor_key of dd_clipper must hold one row");
	SPI_finish();
	PG_RETURN_VOID();
}

/* Query hash input: a field as a 4-byte length (or all ones for NULL) and bytes. */
static void
HashField(StringInfo buf, const char *data, int len)
{
	uint32		n = data == NULL ? UINT32_MAX : (uint32) len;

	appendBinaryStringInfo(buf, (char *) &n, sizeof(n));
	if (data != NULL)
		appendBinaryStringInfo(buf, data, len);
}

static int
CompareCStrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The page queries, one per combination of sort, cursor and filters, so
 * each is planned for exactly what it filters on.  Parameters (all plans):
 * $1 user_id, $2 limit, $3 created_at of the cursor, $4 rank of the cursor,
 * $5 id of the cursor, $6 search, $7 status, $8 tags.
 */
#define DD_PAGE_PLANS	(3 * 16)
static DdPlan page_plans[DD_PAGE_PLANS];
static DdPlan changes_plan;

/* ForgetPlan: free a plan slot's query text and plan; it is built again. */
static void
ForgetPlan(DdPlan *slot)
{
	if (slot->plan != NULL)
		SPI_freeplan(slot->plan);
	slot->plan = NULL;
	if (slot->query != NULL)
		pfree((void *) slot->query);
	slot->query = NULL;
}

/* ForgetClipPlans: forget every query built from the column lists. */
static void
ForgetClipPlans(void)
{
	int			i;

	for (i = 0; i < DD_PAGE_PLANS; i++)
		ForgetPlan(&page_plans[i]);
	ForgetPlan(&changes_plan);
}

static DdPlan *
PagePlan(int sort, bool has_cursor, bool has_search, bool has_tags,
		 bool has_status)
{
	int			slot = sort * 16 + (has_cursor ? 8 : 0) + (has_search ? 4 : 0) +
		(has_tags ? 2 : 0) + (has_status ? 1 : 0);
	DdPlan	   *plan = &page_plans[slot];
	StringInfoData q;
	const char *order;
	const char *outer_order;
	MemoryContext old;

	if (plan->query != NULL)
		return plan;

	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&q);

	if (sort == DD_SORT_NEWEST)
	{
		order = "c.created_at DESC, c.id DESC";
		outer_order = "p.created_at DESC, p.id DESC";
	}
	else if (sort == DD_SORT_OLDEST)
	{
		order = "c.created_at, c.id";
		outer_order = "p.created_at, p.id";
	}
	else
	{
		order = "pg_catalog.ts_rank(c.search, q.q) DESC, c.id DESC";
		outer_order = "p.\"dd rank\" DESC, p.id DESC";
	}

	appendStringInfo(&q,
					 "SELECT pg_catalog.to_jsonb(j), p.created_at, p.id, p.\"dd rank\" FROM ("
					 "SELECT %s, %s AS \"dd rank\" "
					 "FROM @extschema@.clips c%s "
					 "WHERE c.user_id OPERATOR(pg_catalog.=) $1 AND c.deleted_at IS NULL",
					 clip_columns_inner,
					 sort == DD_SORT_RELEVANCE ?
					 "pg_catalog.ts_rank(c.search, q.q)" : "NULL::pg_catalog.float4",
					 has_search ?
					 ", pg_catalog.websearch_to_tsquery('pg_catalog.english'::pg_catalog.regconfig, $6) AS q(q)" : "");
	if (has_search)
		appendStringInfoString(&q, " AND c.search OPERATOR(pg_catalog.@@) q.q");
	if (has_tags)
		appendStringInfoString(&q, " AND c.tags OPERATOR(pg_catalog.@>) $8");
	if (has_status)
		appendStringInfoString(&q, " AND c.status OPERATOR(pg_catalog.=) $7");
	if (has_cursor)
	{
		if (sort == DD_SORT_NEWEST)
			appendStringInfoString(&q, " AND ROW(c.created_at, c.id) OPERATOR(pg_catalog.<) ROW($3, $5)");
		else if (sort == DD_SORT_OLDEST)
			appendStringInfoString(&q, " AND ROW(c.created_at, c.id) OPERATOR(pg_catalog.>) ROW($3, $5)");
		else
			appendStringInfoString(&q, " AND ROW(pg_catalog.ts_rank(c.search, q.q), c.id) OPERATOR(pg_catalog.<) ROW($4, $5)");
	}
	appendStringInfo(&q, " ORDER BY %s LIMIT $2) p, LATERAL (SELECT %s) j ORDER BY %s",
					 order, clip_columns, outer_order);

	MemoryContextSwitchTo(old);

	plan->nargs = 8;
	plan->argtypes[0] = TEXTOID;
	plan->argtypes[1] = INT4OID;
	plan->argtypes[2] = TIMESTAMPTZOID;
	plan->argtypes[3] = FLOAT4OID;
	plan->argtypes[4] = INT8OID;
	plan->argtypes[5] = TEXTOID;
	plan->argtypes[6] = TEXTOID;
	plan->argtypes[7] = TEXTARRAYOID;
	/*
	 * A plain list (no search, tags or status) is always the keyset scan of
	 * (user_id, created_at, id): plan it once (a custom plan per call costs
	 * about a quarter of the call).  With filters, let the planner look at
	 * the values (a rare search term of a big user wants the GIN index).
	 */
	plan->cursor_options = (!has_search && !has_tags && !has_status) ?
		CURSOR_OPT_GENERIC_PLAN : 0;
	plan->query = q.data;
	return plan;
}

/*
 * CursorError
 *		Report a cursor that cannot be used, naming the argument.
 */
static void
CursorError(DdCursorStatus status)
{
	switch (status)
	{
		case DD_CURSOR_MALFORMED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("cursor is not a dd_clips_page cursor"),
					 errdetail("A cursor is the continueCursor of an earlier dd_clips_page result, unchanged (%d characters of base64url).",
							   DD_CURSOR_TEXT_LEN),
					 errhint("Pass NULL as cursor to start from the first page.")));
			break;
		case DD_CURSOR_BAD_FORMAT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("cursor is of an unknown format"),
					 errdetail("This version of dd_clipper reads cursors of format %d.",
							   DD_CURSOR_FORMAT),
					 errhint("Pass NULL as cursor to start from the first page.")));
			break;
		case DD_CURSOR_BAD_CHECKSUM:
		case DD_CURSOR_BAD_FLAGS:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("cursor failed its integrity check"),
					 errdetail("It was changed after dd_clips_page returned it, or it was made by another database."),
					 errhint("Pass NULL as cursor to start from the first page.")));
			break;
		case DD_CURSOR_OK:
			break;
	}
}

/*
 * dd_clips_page(user_id, page_size, cursor, search, tags, status, sort)
 *		One page of the user's live clips, {"page": [clip...], "isDone",
 *		"continueCursor"}.  Keyset pagination: the cursor holds the last
 *		row's sort key and id and the next page starts strictly after it,
 *		so a deep page reads what the first does.  The cursor also holds a
 *		keyed hash of (user_id, sort, search, tags, status) and is refused
 *		with any other.
 *
 *		Reads one snapshot (the caller's); takes no locks.  Rows inserted
 *		between two pages appear on a later page if they sort after the
 *		cursor, never twice.
 */
Datum
dd_clips_page(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	int32		page_size;
	text	   *search;
	text	   *status;
	text	   *sort_text;
	ArrayType  *tags = NULL;
	char	  **tag_strings = NULL;
	int			ntags = 0;
	int			sort;
	uint8		key[DD_CURSOR_KEY_LEN];
	uint8		previous_key[DD_CURSOR_KEY_LEN];
	bool		has_previous = false;
	StringInfoData hashbuf;
	uint64		query_hash;
	DdCursor	cursor;
	bool		has_cursor = false;
	Datum		values[8];
	char		nulls[8];
	DdPlan	   *plan;
	int			n;
	int			shown;
	int			i;
	MemoryContext caller_cxt = CurrentMemoryContext;
	JsonbParseState *state = NULL;
	JsonbValue *result;
	Jsonb	   *out;
	char		cursor_text[DD_CURSOR_TEXT_LEN + 1];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("page_size must not be null")));
	page_size = PG_GETARG_INT32(1);
	if (page_size < 1 || page_size > DD_CLIPS_MAX_PAGE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_size must be between 1 and %d", DD_CLIPS_MAX_PAGE),
				 errdetail("It is %d.", page_size)));

	search = DdOptionalTextArg(fcinfo, 3, "search", DD_CLIPS_MAX_SEARCH);
	status = DdOptionalTextArg(fcinfo, 5, "status", DD_CLIPS_MAX_STATUS);

	sort_text = DdTextArg(fcinfo, 6, "sort", 32);
	{
		char	   *s = text_to_cstring(sort_text);

		if (strcmp(s, "newest") == 0)
			sort = DD_SORT_NEWEST;
		else if (strcmp(s, "oldest") == 0)
			sort = DD_SORT_OLDEST;
		else if (strcmp(s, "relevance") == 0)
			sort = DD_SORT_RELEVANCE;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sort must be newest, oldest or relevance"),
					 errdetail("It is \"%s\".", s)));
	}
	if (sort == DD_SORT_RELEVANCE && search == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sort relevance needs a search"),
				 errhint("Pass search, or sort by newest or oldest.")));

	if (!PG_ARGISNULL(4))
	{
		Datum	   *elems;
		bool	   *elemnulls;
		int			nelems;
		int			kept = 0;

		tags = PG_GETARG_ARRAYTYPE_P(4);
		if (ARR_NDIM(tags) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("tags must be a one-dimensional array")));
		deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &elemnulls, &nelems);
		if (nelems > DD_CLIPS_MAX_TAGS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags has too many elements"),
					 errdetail("It has %d; the limit is %d.", nelems, DD_CLIPS_MAX_TAGS)));
		tag_strings = palloc(sizeof(char *) * (nelems + 1));
		for (i = 0; i < nelems; i++)
		{
			if (elemnulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("tags must not contain null")));
			DdCheckText(DatumGetTextPP(elems[i]), "a tag in tags", DD_CLIPS_MAX_TAG);
			tag_strings[i] = TextDatumGetCString(elems[i]);
		}
		/* The query is the same whatever the order or repetition of tags. */
		qsort(tag_strings, nelems, sizeof(char *), CompareCStrings);
		for (i = 0; i < nelems; i++)
			if (kept == 0 || strcmp(tag_strings[kept - 1], tag_strings[i]) != 0)
				tag_strings[kept++] = tag_strings[i];
		ntags = kept;
		if (ntags == 0)
			tags = NULL;		/* no tag: no filter */
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	LoadCursorKey(nspid, key, previous_key, &has_previous);
	EnsureClipColumns(nspid);

	/* The query the cursor belongs to. */
	initStringInfo(&hashbuf);
	appendStringInfoChar(&hashbuf, 'Q');
	appendStringInfoChar(&hashbuf, (char) sort);
	HashField(&hashbuf, VARDATA_ANY(user_id), VARSIZE_ANY_EXHDR(user_id));
	HashField(&hashbuf, search ? VARDATA_ANY(search) : NULL,
			  search ? VARSIZE_ANY_EXHDR(search) : 0);
	HashField(&hashbuf, status ? VARDATA_ANY(status) : NULL,
			  status ? VARSIZE_ANY_EXHDR(status) : 0);
	HashField(&hashbuf, (char *) &ntags, sizeof(ntags));
	for (i = 0; i < ntags; i++)
		HashField(&hashbuf, tag_strings[i], strlen(tag_strings[i]));
	query_hash = dd_siphash24(key, hashbuf.data, hashbuf.len);

	memset(&cursor, 0, sizeof(cursor));
	if (!PG_ARGISNULL(2))
	{
		text	   *ct = PG_GETARG_TEXT_PP(2);
		DdCursorStatus cs;
		uint64		cursor_query_hash = query_hash;

		cs = dd_cursor_decode(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct), key,
							  &cursor);

		/*
		 * A cursor made before the last rotation: checked, and its query
		 * hash computed, with the key it was made with.  The next cursor is
		 * made with the current key.
		 */
		if (cs == DD_CURSOR_BAD_CHECKSUM && has_previous &&
			dd_cursor_decode(VARDATA_ANY(ct), VARSIZE_ANY_EXHDR(ct),
							 previous_key, &cursor) == DD_CURSOR_OK)
		{
			cs = DD_CURSOR_OK;
			cursor_query_hash = dd_siphash24(previous_key, hashbuf.data,
											 hashbuf.len);
		}
		CursorError(cs);
		if (cursor.sort != sort || cursor.query_hash != cursor_query_hash)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cursor belongs to another query"),
					 errdetail("It was returned for another user_id, sort, search, tags or status."),
					 errhint("Pass the arguments of the first page again, or NULL as cursor to start over.")));
		has_cursor = (cursor.flags & DD_CURSOR_HAS_POSITION) != 0;
	}

	memset(nulls, ' ', sizeof(nulls));
	values[0] = PointerGetDatum(user_id);
	values[1] = Int32GetDatum(page_size + 1);
	values[2] = Int64GetDatum((int64) cursor.key1);	/* timestamptz */
	values[3] = Float4GetDatum(0);
	if (sort == DD_SORT_RELEVANCE)
	{
		uint32		bits = (uint32) cursor.key1;
		float4		rank;

		memcpy(&rank, &bits, sizeof(rank));
		values[3] = Float4GetDatum(rank);
	}
	values[4] = Int64GetDatum(cursor.id);
	values[5] = search ? PointerGetDatum(search) : (Datum) 0;
	nulls[5] = search ? ' ' : 'n';
	values[6] = status ? PointerGetDatum(status) : (Datum) 0;
	nulls[6] = status ? ' ' : 'n';
	values[7] = tags ? PointerGetDatum(tags) : (Datum) 0;
	nulls[7] = tags ? ' ' : 'n';

	plan = PagePlan(sort, has_cursor, search != NULL, tags != NULL, status != NULL);
	n = DdExecutePlan(plan, nspid, values, nulls, true, 0, SPI_OK_SELECT);
	shown = Min(n, page_size);

	/* Build the result in the caller's memory, before SPI_finish. */
	MemoryContextSwitchTo(caller_cxt);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushKey(&state, "page");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < shown; i++)
	{
		bool		isnull;
		Datum		clip = SPI_getbinval(SPI_tuptable->vals[i],
										 SPI_tuptable->tupdesc, 1, &isnull);

		PushJsonb(&state, WJB_ELEM, DatumGetJsonbP(clip));
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);

	PushKey(&state, "isDone");
	PushBool(&state, WJB_VALUE, n <= page_size);

	/*
	 * The continue cursor: after the last row shown; with no row shown, the
	 * position given (or the start), so it always continues after what the
	 * caller has seen.
	 */
	if (shown > 0)
	{
		HeapTuple	last = SPI_tuptable->vals[shown - 1];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		cursor.flags = DD_CURSOR_HAS_POSITION;
		cursor.id = DatumGetInt64(SPI_getbinval(last, desc, 3, &isnull));
		if (sort == DD_SORT_RELEVANCE)
		{
			float4		rank = DatumGetFloat4(SPI_getbinval(last, desc, 4, &isnull));
			uint32		bits;

			memcpy(&bits, &rank, sizeof(bits));
			cursor.key1 = bits;
		}
		else
			cursor.key1 = (uint64) DatumGetTimestampTz(SPI_getbinval(last, desc, 2, &isnull));
	}
	cursor.sort = (uint8) sort;
	cursor.query_hash = query_hash;
	dd_cursor_encode(&cursor, key, cursor_text);
	PushKey(&state, "continueCursor");
	PushString(&state, WJB_VALUE, cursor_text);

	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	out = JsonbValueToJsonb(result);

	SPI_finish();
	PG_RETURN_JSONB_P(out);
}

/* ------------------------------------------------------------------------
 * dd_clip_changes
 * ------------------------------------------------------------------------
 */

/*
 * The high-water of this snapshot: every version <= it is settled (see the
 * file header).  LEAST is grammar (it ignores NULL: no own xid), not a
 * function a search_path could shadow.  pg_current_snapshot() is the snapshot the change query
 * runs in too, because both run read-only in the caller's snapshot.
 */
static DdPlan high_water_plan = {
	"SELECT (LEAST("
	"(pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::pg_catalog.text)::pg_catalog.int8, "
	"(pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text)::pg_catalog.int8) "
	"OPERATOR(pg_catalog.*) 1048576::pg_catalog.int8) "
	"OPERATOR(pg_catalog.-) 1::pg_catalog.int8",
	0, {InvalidOid}
};

/*
 * On Citus: is user $1's shard of clips ($2) on this node?  True too when
 * clips is not distributed.  Only prepared where Citus is installed (it
 * reads Citus's catalogs).
 */
static DdPlan local_shard_plan = {
	"SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d"
	"  WHERE d.logicalrelid OPERATOR(pg_catalog.=) $2)"
	" OR EXISTS (SELECT FROM pg_catalog.pg_dist_placement p, pg_catalog.pg_dist_local_group l"
	"  WHERE p.shardid OPERATOR(pg_catalog.=)"
	"   pg_catalog.get_shard_id_for_distribution_column($2, $1)"
	"  AND p.groupid OPERATOR(pg_catalog.=) l.groupid)",
	2, {TEXTOID, REGCLASSOID}
};

/*
 * EnsureLocalShard
 *		On Citus, refuse to answer for a user whose clips live on another
 *		node.  Versions are stamped from the transaction ids of the node
 *		that holds the user's shard, so the high-water must come from a
 *		snapshot of that node: answered anywhere else, a poll could skip a
 *		commit.  dd_distribute() delegates dd_clip_changes to that node, so
 *		a call through the coordinator (or any node) is answered there.
 */
static void
EnsureLocalShard(Oid nspid, text *user_id)
{
	Datum		values[2];
	bool		isnull;
	Oid			clips;

	if (!DdCitusInstalled())
		return;
	clips = get_relname_relid("clips", nspid);
	if (!OidIsValid(clips))
		elog(ERROR, "relation clips of dd_clipper does not exist");
	values[0] = PointerGetDatum(user_id);
	values[1] = ObjectIdGetDatum(clips);
	DdExecutePlan(&local_shard_plan, nspid, values, NULL, true, 1, SPI_OK_SELECT);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dd_clip_changes must run on the node that holds the clips of user_id \"%s\"",
						text_to_cstring(user_id)),
				 errdetail("Change versions come from that node's transaction ids, so only its snapshot gives a sound high-water."),
				 errhint("Run dd_distribute(), which delegates dd_clip_changes to that node, and call it as a statement of its own.")));
}

/*
 * Changes of user $1 with $2 < version <= $3, in version order, at most $4
 * (NULL: all): the current state of each clip (a soft-deleted clip is a
 * delete) and the tombstones of hard-deleted ones.
 */
/* Always index range scans of (user_id, version): planned once. */
static DdPlan changes_plan = {NULL, 4, {TEXTOID, INT8OID, INT8OID, INT8OID},
	InvalidOid, NULL, CURSOR_OPT_GENERIC_PLAN};

static DdPlan *
ChangesPlan(void)
{
	if (changes_plan.query == NULL)
		changes_plan.query = MemoryContextStrdup(TopMemoryContext, psprintf(
			"SELECT ch.version, ch.id, ch.deleted, ch.clip FROM ("
			"SELECT c.version, c.id, c.deleted_at IS NOT NULL AS deleted, "
			"CASE WHEN c.deleted_at IS NULL THEN pg_catalog.to_jsonb(j) END AS clip "
			"FROM @extschema@.clips c, LATERAL (SELECT %s) j "
			"WHERE c.user_id OPERATOR(pg_catalog.=) $1 "
			"AND c.version OPERATOR(pg_catalog.>) $2 AND c.version OPERATOR(pg_catalog.<=) $3 "
			"UNION ALL "
			"SELECT t.version, t.clip_id, true, NULL::pg_catalog.jsonb "
			"FROM @extschema@.clip_tombstones t "
			"WHERE t.user_id OPERATOR(pg_catalog.=) $1 "
			"AND t.version OPERATOR(pg_catalog.>) $2 AND t.version OPERATOR(pg_catalog.<=) $3"
			") ch ORDER BY ch.version, ch.id LIMIT $4",
			clip_columns_feed));
	return &changes_plan;
}

static int64
RowVersion(int row)
{
	bool		isnull;

	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * PushChanges
 *		Append rows [0, count) of the current SPI result as change objects.
 */
static void
PushChanges(JsonbParseState **state, int count)
{
	int			i;

	for (i = 0; i < count; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		deleted;
		Datum		clip;

		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		deleted = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
		PushKey(state, "op");
		PushString(state, WJB_VALUE, deleted ? "delete" : "upsert");
		PushKey(state, "id");
		PushInt64(state, WJB_VALUE, DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull)));
		PushKey(state, "version");
		PushInt64(state, WJB_VALUE, DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull)));
		PushKey(state, "clip");
		clip = SPI_getbinval(row, desc, 4, &isnull);
		if (isnull)
			PushNull(state, WJB_VALUE);
		else
			PushJsonb(state, WJB_VALUE, DatumGetJsonbP(clip));
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
}

/*
 * dd_clip_changes(user_id, since, max)
 *		The changes of the user's clips with a version after since, and the
 *		version to poll with next: {"changes": [{"op", "id", "version",
 *		"clip"}], "version"}.  A client that polls with the returned version
 *		never misses a committed change, even when writers commit out of
 *		order; the file header says why.
 *
 *		Reads one snapshot (the caller's); takes no locks, writes nothing.
 */
Datum
dd_clip_changes(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *user_id = DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID);
	int64		since;
	int32		max;
	int64		high_water;
	int64		next;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int			n;
	int			shown;
	MemoryContext caller_cxt = CurrentMemoryContext;
	JsonbParseState *state = NULL;
	JsonbValue *result;
	Jsonb	   *out;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("since must not be null"),
				 errhint("Pass 0 to read every change.")));
	since = PG_GETARG_INT64(1);
	if (since < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must not be negative"),
				 errdetail("It is " INT64_FORMAT ".", since),
				 errhint("Pass 0, or the version an earlier call returned.")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max must not be null")));
	max = PG_GETARG_INT32(2);
	if (max < 1 || max > DD_CLIPS_MAX_CHANGES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", DD_CLIPS_MAX_CHANGES),
				 errdetail("It is %d.", max)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	EnsureClipColumns(nspid);
	EnsureLocalShard(nspid, user_id);

	/* Read-only: this query and the next share the caller's snapshot. */
	DdExecutePlan(&high_water_plan, nspid, NULL, NULL, true, 1, SPI_OK_SELECT);
	high_water = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));

	values[0] = PointerGetDatum(user_id);
	values[1] = Int64GetDatum(since);
	values[2] = Int64GetDatum(high_water);
	values[3] = Int64GetDatum((int64) max + 1);
	if (high_water > since)
		n = DdExecutePlan(ChangesPlan(), nspid, values, nulls, true, 0, SPI_OK_SELECT);
	else
		n = 0;

	next = Max(since, high_water);
	shown = n;
	if (n > max)
	{
		int64		last = RowVersion(max - 1);

		if (RowVersion(max) != last)
		{
			shown = max;
			next = last;
		}
		else
		{
			/*
			 * The cut falls inside a run of equal versions (a transaction
			 * with more than 2^20 - 1 clip writes).  Cut before the run; if
			 * the run fills the page, return all of it.
			 */
			shown = max - 1;
			while (shown > 0 && RowVersion(shown - 1) == last)
				shown--;
			if (shown > 0)
				next = RowVersion(shown - 1);
			else
			{
				values[1] = Int64GetDatum(last - 1);
				values[2] = Int64GetDatum(last);
				nulls[3] = 'n';
				shown = DdExecutePlan(ChangesPlan(), nspid, values, nulls, true, 0,
									  SPI_OK_SELECT);
				next = last;
			}
		}
	}

	MemoryContextSwitchTo(caller_cxt);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushKey(&state, "changes");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	PushChanges(&state, shown);
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	PushKey(&state, "version");
	PushInt64(&state, WJB_VALUE, next);
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	out = JsonbValueToJsonb(result);

	SPI_finish();
	PG_RETURN_JSONB_P(out);
}
