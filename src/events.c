/*-------------------------------------------------------------------------
 *
 * events.c
 *	  Analytics events: dd_track_event (one event) and dd_track_events (a
 *	  batch of many thousands in one call), both deduplicated on the
 *	  client's event_id per user.
 *
 * Deduplication is the database's: usage_events has the unique constraint
 * (user_id, event_id), and every insert here is INSERT ... ON CONFLICT
 * (user_id, event_id) DO NOTHING.  That one statement drops a duplicate
 * inside a batch (DO NOTHING skips a row that conflicts with one the same
 * statement inserted), across batches, and when two batches race: the
 * second inserter of a key waits on the first one's speculative insertion
 * and then skips its row if the first commits (or inserts it if the first
 * rolls back).  Nothing is read first and written later, so no client
 * interleaving can store an event_id twice.  Events without an event_id
 * are never deduplicated (NULLs are distinct in a unique constraint).
 *
 * Batches.  dd_track_events parses the jsonb array once, in C, checking
 * every element before anything is written, and builds five arrays (one
 * per column); a single saved plan then inserts them all with
 * INSERT ... SELECT FROM unnest(...).  A malformed element is an error that
 * names its position (events[3].event must be a string); since the insert
 * has not run yet, nothing of the batch is stored.  A batch with event ids
 * is first inserted without the conflict clause in a subtransaction, and
 * again with it only if that meets a duplicate (see InsertBatch).
 *
 * Locking: only the row and index locks of the inserts themselves.  A batch
 * inserts its rows in (user_id, event_id) order, so two batches that share
 * ids wait for each other in one order.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "dd_clipper.h"

/*
 * DdDecodeDateTime: DecodeDateTime, which gained an extra-information
 * argument in PostgreSQL 16 (for the error details it reports itself).
 */
#if PG_VERSION_NUM >= 160000
#define DdDecodeDateTime(field, ftype, nf, dtype, tm, fsec, tz) \
	DecodeDateTime((field), (ftype), (nf), (dtype), (tm), (fsec), (tz), \
				   &(DateTimeErrorExtra) {0})
#else
#define DdDecodeDateTime DecodeDateTime
#endif

PG_FUNCTION_INFO_V1(dd_track_event);
PG_FUNCTION_INFO_V1(dd_track_events);

/* One event; a duplicate (user_id, event_id) returns no row. */
static DdPlan track_one_plan = {
	"INSERT INTO @extschema@.usage_events"
	" (user_id, event, properties, event_id, occurred_at)"
	" VALUES ($1, $2, $3, $4, $5)"
	" ON CONFLICT (user_id, event_id) DO NOTHING"
	" RETURNING id",
	5, {TEXTOID, TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID},
	.cursor_options = CURSOR_OPT_GENERIC_PLAN
};

/*
 * A batch, as five parallel arrays, inserted in (user_id, event_id) order:
 * two batches racing on overlapping ids then wait for each other in one
 * order and cannot deadlock; the ordinality keeps the first of duplicates
 * within a batch.
 */
#define TRACK_MANY_INSERT \
	"INSERT INTO @extschema@.usage_events" \
	" (user_id, event, properties, event_id, occurred_at)" \
	" SELECT t.user_id, t.event, t.properties, t.event_id, t.occurred_at" \
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)," \
	"  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5))" \
	"  WITH ORDINALITY AS t(user_id, event, properties, event_id, occurred_at, n)" \
	" ORDER BY t.user_id COLLATE pg_catalog.\"C\"," \
	"  t.event_id COLLATE pg_catalog.\"C\", t.n"
#define TRACK_MANY_ARGTYPES \
	{TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID, \
	TIMESTAMPTZARRAYOID}

static DdPlan track_many_plan = {
	TRACK_MANY_INSERT " ON CONFLICT (user_id, event_id) DO NOTHING",
	5, TRACK_MANY_ARGTYPES
};

/*
 * The same on Citus, which runs the batch as an INSERT ... SELECT through
 * intermediate results and counts the rows it sent to the shards, dropped
 * duplicates included (and SPI's check of RETURNING against that count
 * fails): the rows returned, counted, are the rows stored.
 */
static DdPlan track_many_citus_plan = {
	"WITH stored AS (" TRACK_MANY_INSERT
	" ON CONFLICT (user_id, event_id) DO NOTHING RETURNING 1)"
	" SELECT pg_catalog.count(*) FROM stored",
	5, TRACK_MANY_ARGTYPES
};

/*
 * The same batch without the conflict clause: the fast path (see
 * InsertBatch), and the only path when no element has an event_id.
 */
static DdPlan track_many_fast_plan = {
	TRACK_MANY_INSERT,
	5, TRACK_MANY_ARGTYPES
};

/* The keys an element of dd_track_events may have. */
#define KEY_USER_ID		0
#define KEY_EVENT		1
#define KEY_PROPERTIES	2
#define KEY_EVENT_ID	3
#define KEY_OCCURRED_AT 4
#define NUM_KEYS		5

static const char *const event_keys[NUM_KEYS] = {
	"user_id", "event", "properties", "event_id", "occurred_at"
};

/*
 * EmptyObject
 *		The jsonb value '{}', the default properties.
 */
static Datum
EmptyObject(void)
{
	JsonbValue	obj;

	obj.type = jbvObject;
	obj.val.object.nPairs = 0;
	obj.val.object.pairs = NULL;
	return JsonbPGetDatum(JsonbValueToJsonb(&obj));
}

/*
 * JsonValueKind
 *		What a JSON value is, for error details ("It is a number.").
 */
static const char *
JsonValueKind(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvArray:
			return "an array";
		case jbvObject:
			return "an object";
		case jbvBinary:
			if (JsonContainerIsScalar(v->val.binary.data))
				return "a scalar";
			return JsonContainerIsArray(v->val.binary.data) ?
				"an array" : "an object";
		default:
			return "an unknown JSON value";
	}
}

/*
 * ElementText
 *		The string value of key of element pos as text, checked like a text
 *		argument: not empty, at most max_chars characters.  A wrong type is
 *		22023, a missing or null required value 22004 (callers handle null
 *		for optional keys before calling).
 */
static Datum
ElementText(JsonbValue *v, int pos, const char *key, int max_chars)
{
	int			len;

	if (v == NULL || v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events[%d].%s must be a string", pos, key),
				 errdetail("It is %s.", v == NULL ? "missing" : "null"),
				 errhint("Every event needs a user_id and an event name.")));
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events[%d].%s must be a string", pos, key),
				 errdetail("It is %s.", JsonValueKind(v))));

	len = v->val.string.len;
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events[%d].%s must not be empty", pos, key)));
	/* Every character is at least one byte: count only when it can matter. */
	if (len > max_chars)
	{
		int			nchars = pg_mbstrlen_with_len(v->val.string.val, len);

		if (nchars > max_chars)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("events[%d].%s is too long", pos, key),
					 errdetail("It has %d characters; the limit is %d.",
							   nchars, max_chars)));
	}
	return PointerGetDatum(cstring_to_text_with_len(v->val.string.val, len));
}

/*
 * ElementTimestamp
 *		occurred_at of element pos: an ISO 8601 string (anything timestamptz
 *		input accepts as a date and time) or a number of milliseconds since
 *		the Unix epoch (as Convex's _creationTime).  Parsed without raising
 *		the input function's own error, so the error names the position.
 */
static TimestampTz
ElementTimestamp(JsonbValue *v, int pos)
{
	TimestampTz result;

	if (v->type == jbvString)
	{
		char	   *str = pnstrdup(v->val.string.val, v->val.string.len);
		char		workbuf[MAXDATELEN + MAXDATEFIELDS];
		char	   *field[MAXDATEFIELDS];
		int			ftype[MAXDATEFIELDS];
		int			nf;
		int			dtype;
		int			tz;
		int			dterr;
		struct pg_tm tt;
		fsec_t		fsec;

		dterr = v->val.string.len > MAXDATELEN ? DTERR_BAD_FORMAT :
			ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
		if (dterr == 0)
			dterr = DdDecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz);
		if (dterr != 0 || dtype != DTK_DATE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
					 errmsg("events[%d].occurred_at is not a valid timestamp", pos),
					 errdetail("It is \"%s\".", str),
					 errhint("Use ISO 8601, as in \"2026-01-31T12:00:00Z\", or milliseconds since the Unix epoch.")));
		if (tm2timestamp(&tt, fsec, &tz, &result) != 0 ||
			!IS_VALID_TIMESTAMP(result))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("events[%d].occurred_at is out of range", pos),
					 errdetail("It is \"%s\".", str)));
		pfree(str);
		return result;
	}
	if (v->type == jbvNumeric)
	{
		float8		ms;
		float8		usecs;

		ms = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
												NumericGetDatum(v->val.numeric)));
		usecs = ms * 1000.0 -
			(float8) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
		if (isnan(usecs) ||
			usecs < (float8) MIN_TIMESTAMP || usecs >= (float8) END_TIMESTAMP)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("events[%d].occurred_at is out of range", pos),
					 errdetail("A number is read as milliseconds since the Unix epoch.")));
		result = (TimestampTz) rint(usecs);
		return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("events[%d].occurred_at must be a string or a number", pos),
			 errdetail("It is %s.", JsonValueKind(v)),
			 errhint("Use ISO 8601, as in \"2026-01-31T12:00:00Z\", or milliseconds since the Unix epoch.")));
	return 0;					/* keep compiler quiet */
}

/*
 * InsertBatch
 *		Insert the five column arrays in values; returns the rows stored.
 *
 *		ON CONFLICT DO NOTHING first probes the arbiter index for every row
 *		and then inserts it, about twice the index work of a plain INSERT,
 *		whose own unique check finds a duplicate on the way.  Most batches
 *		hold no duplicate, so a batch with event ids is first inserted
 *		plainly in a subtransaction; if that hits a unique violation (a
 *		duplicate in the batch, one already stored, or one a concurrent
 *		batch committed while we waited for it) the subtransaction is rolled
 *		back and the batch inserted again with ON CONFLICT DO NOTHING.
 *		Either way each (user_id, event_id) is stored once.  Any other
 *		error is re-thrown.
 *
 *		On Citus the batch always takes ON CONFLICT DO NOTHING: a unique
 *		violation on a shard comes back from Citus as an internal error
 *		(XX000), not as 23505, so the plain insert's failure could not be
 *		told apart from any other.
 */
static int
InsertBatch(Oid nspid, Datum *values, bool any_event_id)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int stored = -1;

	if (DdCitusInstalled())
	{
		bool		isnull;

		DdExecutePlan(&track_many_citus_plan, nspid, values, NULL,
					  false, 0, SPI_OK_SELECT);
		return (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	}
	if (!any_event_id)
		return DdExecutePlan(&track_many_fast_plan, nspid, values, NULL,
							 false, 0, SPI_OK_INSERT);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		stored = DdExecutePlan(&track_many_fast_plan, nspid, values, NULL,
							   false, 0, SPI_OK_INSERT);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		stored = -1;
	}
	PG_END_TRY();

	if (stored < 0)
		stored = DdExecutePlan(&track_many_plan, nspid, values, NULL,
							   false, 0, SPI_OK_INSERT);
	return stored;
}

/*
 * dd_track_event
 *		Store one analytics event; returns its id, or NULL when the user
 *		already has an event with this event_id (the duplicate is dropped,
 *		also when the first one is being inserted concurrently: this call
 *		then waits for it to commit).
 */
Datum
dd_track_event(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	text	   *event_id;
	bool		isnull;
	Datum		id;

	values[0] = PointerGetDatum(DdTextArg(fcinfo, 0, "user_id", DD_MAX_USER_ID));
	values[1] = PointerGetDatum(DdTextArg(fcinfo, 1, "event", DD_MAX_EVENT));

	/* NULL properties mean none, like the default. */
	if (PG_ARGISNULL(2))
		values[2] = EmptyObject();
	else
	{
		Jsonb	   *props = PG_GETARG_JSONB_P(2);

		if (!JB_ROOT_IS_OBJECT(props))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("properties must be a JSON object"),
					 errhint("Pass '{}' for an event without properties.")));
		values[2] = JsonbPGetDatum(props);
	}

	event_id = DdOptionalTextArg(fcinfo, 3, "event_id", DD_MAX_EVENT_ID);
	if (event_id == NULL)
		nulls[3] = 'n';
	else
		values[3] = PointerGetDatum(event_id);

	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("occurred_at must not be null"),
				 errhint("Leave it out to use the current time.")));
	values[4] = PG_GETARG_DATUM(4);

	DdConfineUser(nspid, DatumGetTextPP(values[0]), "user_id");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (DdExecutePlan(&track_one_plan, nspid, values, nulls, false, 0,
					  SPI_OK_INSERT_RETURNING) == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();		/* a duplicate: dropped */
	}
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
					   &isnull);
	SPI_finish();
	PG_RETURN_DATUM(id);		/* int8 is by value */
}

/*
 * dd_track_events
 *		Store a jsonb array of events in one statement; returns how many
 *		rows were stored (duplicates of an event_id for the same user,
 *		within the batch or already stored, are dropped and not counted).
 *		Every element is checked before anything is written: a malformed
 *		one is an error naming its position and nothing is stored.  Two
 *		concurrent batches with overlapping event ids store each id once.
 */
Datum
dd_track_events(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	Jsonb	   *events;
	int			n;
	Datum	   *user_ids;
	Datum	   *names;
	Datum	   *props;
	Datum	   *event_ids;
	bool	   *event_id_nulls;
	Datum	   *times;
	bool		any_event_id = false;
	Datum		empty_object;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	int			pos;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[5];
	int			stored;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	events = PG_GETARG_JSONB_P(0);
	if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array"),
				 errdetail("It is %s.",
						   JB_ROOT_IS_OBJECT(events) ? "an object" : "a scalar"),
				 errhint("Pass an array of objects with the keys user_id, event, properties, event_id and occurred_at.")));

	n = JB_ROOT_COUNT(events);
	if (n == 0)
		PG_RETURN_INT64(0);

	user_ids = palloc(sizeof(Datum) * n);
	names = palloc(sizeof(Datum) * n);
	props = palloc(sizeof(Datum) * n);
	event_ids = palloc(sizeof(Datum) * n);
	event_id_nulls = palloc(sizeof(bool) * n);
	times = palloc(sizeof(Datum) * n);
	empty_object = EmptyObject();

	/* Walk the top-level array; nested containers come back as jbvBinary. */
	it = JsonbIteratorInit(&events->root);
	pos = 0;
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		JsonbValue *found[NUM_KEYS] = {NULL};
		JsonbValue	vals[NUM_KEYS];
		JsonbIterator *oit;
		JsonbValue	kv;
		JsonbIteratorToken otok;
		int			k = -1;

		if (tok != WJB_ELEM)
			continue;			/* WJB_BEGIN_ARRAY / WJB_END_ARRAY */

		if (pos % 1024 == 0)
			CHECK_FOR_INTERRUPTS();

		if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("events[%d] must be a JSON object", pos),
					 errdetail("It is %s.", JsonValueKind(&elem))));

		/* Collect the element's keys; an unknown key is an error. */
		oit = JsonbIteratorInit(elem.val.binary.data);
		while ((otok = JsonbIteratorNext(&oit, &kv, true)) != WJB_DONE)
		{
			if (otok == WJB_KEY)
			{
				int			i;

				k = -1;
				for (i = 0; i < NUM_KEYS; i++)
				{
					if (kv.val.string.len == strlen(event_keys[i]) &&
						memcmp(kv.val.string.val, event_keys[i],
							   kv.val.string.len) == 0)
					{
						k = i;
						break;
					}
				}
				if (k < 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("events[%d] has an unknown key \"%s\"", pos,
									pnstrdup(kv.val.string.val,
											 Min(kv.val.string.len, 64))),
							 errhint("The keys are user_id, event, properties, event_id and occurred_at.")));
			}
			else if (otok == WJB_VALUE)
			{
				Assert(k >= 0);
				vals[k] = kv;
				found[k] = &vals[k];
			}
		}

		user_ids[pos] = ElementText(found[KEY_USER_ID], pos, "user_id",
									DD_MAX_USER_ID);
		names[pos] = ElementText(found[KEY_EVENT], pos, "event", DD_MAX_EVENT);

		if (found[KEY_PROPERTIES] == NULL ||
			found[KEY_PROPERTIES]->type == jbvNull)
			props[pos] = empty_object;
		else if (found[KEY_PROPERTIES]->type == jbvBinary &&
				 JsonContainerIsObject(found[KEY_PROPERTIES]->val.binary.data))
			props[pos] = JsonbPGetDatum(JsonbValueToJsonb(found[KEY_PROPERTIES]));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("events[%d].properties must be a JSON object", pos),
					 errdetail("It is %s.", JsonValueKind(found[KEY_PROPERTIES]))));

		if (found[KEY_EVENT_ID] == NULL || found[KEY_EVENT_ID]->type == jbvNull)
		{
			event_ids[pos] = (Datum) 0;
			event_id_nulls[pos] = true;
		}
		else
		{
			event_ids[pos] = ElementText(found[KEY_EVENT_ID], pos, "event_id",
										 DD_MAX_EVENT_ID);
			event_id_nulls[pos] = false;
			any_event_id = true;
		}

		if (found[KEY_OCCURRED_AT] == NULL ||
			found[KEY_OCCURRED_AT]->type == jbvNull)
			times[pos] = TimestampTzGetDatum(now);
		else
			times[pos] = TimestampTzGetDatum(ElementTimestamp(found[KEY_OCCURRED_AT],
															  pos));
		pos++;
	}
	if (pos != n)
		elog(ERROR, "jsonb array has %d elements, expected %d", pos, n);

	/* A confined caller stores events of its claim's user only. */
	if (DdCallerConfined(nspid))
		for (pos = 0; pos < n; pos++)
			DdConfineUser(nspid, DatumGetTextPP(user_ids[pos]),
						  psprintf("events[%d].user_id", pos));

	/* Every element is good: insert them all in one statement. */
	dims[0] = n;
	values[0] = PointerGetDatum(construct_md_array(user_ids, NULL, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_md_array(names, NULL, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(props, NULL, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_md_array(event_ids, event_id_nulls,
												   1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(times, NULL, 1, dims, lbs,
												   TIMESTAMPTZOID, 8,
												   FLOAT8PASSBYVAL,
												   TYPALIGN_DOUBLE));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	stored = InsertBatch(nspid, values, any_event_id);
	SPI_finish();

	PG_RETURN_INT64(stored);
}
