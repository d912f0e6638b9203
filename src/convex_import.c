/*-------------------------------------------------------------------------
 *
 * convex_import.c
 *	  Import from Convex: dd_convex_import_table, the one SQL-callable
 *	  function behind the bin/dd_convex_import command.
 *
 * The command streams one table's documents.jsonl (and, for the tables
 * that need them, its generated_schema.jsonl and _storage/documents.jsonl)
 * from the export ZIP with COPY into a temporary staging table of the
 * caller, (file text, line bigint, doc text): one row per line, numbered
 * from 1.  dd_convex_import_table(table_name, documents) then, in the
 * caller's transaction:
 *
 *	 1. checks every line of <table>/documents.jsonl in C with PostgreSQL's
 *		own JSON parser, which reports an error instead of raising one, so a
 *		malformed line is recorded as skipped ("malformed JSON", never its
 *		text: a line of apiKeys may hold a key) without aborting the table;
 *	 2. maps the good lines to the target table's columns in set-based SQL,
 *		each value converted only when its JSON type fits, so a value of the
 *		wrong type is a skip reason and never an error.  _creationTime and
 *		the other millisecond times are converted from the JSON number's
 *		exact decimal value (jsonb keeps numbers as numeric): the number of
 *		milliseconds times 1000, rounded to the nearest microsecond (half
 *		away from zero), is an integer below 2^53 and is added to the epoch
 *		exactly; to_timestamp(float8) would lose microseconds at this
 *		magnitude.  Int64 values, which Convex's clean JSON writes as
 *		strings and generated_schema.jsonl marks "int64", are read from
 *		their digits;
 *	 3. classifies each mapped document against the row with the same
 *		(user_id, convex_id): absent (inserted), different in a mapped value
 *		or in its unknown fields (updated), equal (unchanged: not touched
 *		at all, so a second import writes no row version);
 *	 4. writes: INSERT ... ON CONFLICT DO NOTHING for the new rows (a row
 *		that meets another unique key, a request id or a key hash already
 *		taken, is reported as skipped), UPDATE for the changed ones, the
 *		unknown fields into convex_unmapped, and for credits the opening
 *		grant in the ledger (below).
 *
 * It returns a jsonb report: read, inserted, updated, unchanged, skipped
 * and the skipped lines with their reasons.  Whether to keep the work is
 * the caller's: the command commits, or rolls back for --dry-run, and for
 * --strict when anything was skipped.
 *
 * Credits.  An imported balance is money granted in Convex and partly
 * spent there, and the imported usage rows are the spending.  So that
 * balance = grants - charges + refunds holds (dd_credit_audit), each
 * imported user gets one opening grant, credit_grants row with
 * idempotency_key 'convex:opening', of amount = the imported balance + the
 * credits of that user's imported usage rows, kept in convex_opening_balances
 * and adjusted whenever either import changes (a re-import that adds usage
 * rows raises the grant by exactly their credits).  A re-imported balance
 * moves api_credits.balance by the difference from the last imported one,
 * so charges made in PostgreSQL in between are kept.
 *
 * Every read and write goes through SPI, as the same statements sent by a
 * client would: constraints, triggers (the clips triggers set version and
 * notify), privileges and row policies apply.  The function runs as its
 * caller (SECURITY INVOKER) with search_path set to pg_catalog, pg_temp;
 * every object of the extension is qualified with its schema.  The
 * statements are built per call (the staging table is the caller's
 * temporary table), from fixed text and quoted identifiers only; values
 * are parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "dd_clipper.h"

PG_FUNCTION_INFO_V1(dd_convex_import_table);

/*
 * Expressions over one document w.d (jsonb) and its generated_schema
 * override ov.ctx (jsonb object, or NULL).  Each yields NULL when the field
 * is absent, JSON null, or of a type that does not fit; DD_BAD tells the
 * last case apart, for the skip reason.
 */
#define DD_STR(f) \
	"CASE WHEN jsonb_typeof(w.d->'" f "') = 'string' THEN w.d->>'" f "' END"
#define DD_INT(f) \
	"CASE WHEN jsonb_typeof(w.d->'" f "') = 'number'" \
	" AND (w.d->'" f "')::numeric = trunc((w.d->'" f "')::numeric)" \
	" AND abs((w.d->'" f "')::numeric) < 9223372036854775807" \
	" THEN (w.d->'" f "')::numeric::bigint" \
	" WHEN jsonb_typeof(w.d->'" f "') = 'string' AND ov.ctx->>'" f "' = 'int64'" \
	" AND (w.d->>'" f "') ~ '^-?[0-9]{1,19}$'" \
	" AND abs((w.d->>'" f "')::numeric) < 9223372036854775807" \
	" THEN (w.d->>'" f "')::bigint END"
/* Milliseconds since the epoch, exact to the microsecond (see banner). */
#define DD_TIME(f) \
	"CASE WHEN jsonb_typeof(w.d->'" f "') = 'number'" \
	" AND (w.d->'" f "')::numeric BETWEEN -9000000000000 AND 9000000000000" \
	" THEN '1970-01-01 00:00:00+00'::timestamptz" \
	" + round((w.d->'" f "')::numeric * 1000)::float8 * '1 microsecond'::interval END"
#define DD_OBJ(f) \
	"CASE WHEN jsonb_typeof(w.d->'" f "') = 'object' THEN w.d->'" f "' END"
/* Absent or JSON null; and conv, or dflt when the field is so. */
#define DD_ABSENT(f) "NOT COALESCE(jsonb_typeof(w.d->'" f "') <> 'null', false)"
#define DD_OR_DEFAULT(conv, f, dflt) \
	"COALESCE(" conv ", CASE WHEN " DD_ABSENT(f) " THEN " dflt " END)"
/* Present with a value (not absent, not JSON null). */
#define DD_HAS(f) "COALESCE(jsonb_typeof(s.d->'" f "') <> 'null', false)"
#define DD_BAD(f, col, msg) \
	" WHEN " DD_HAS(f) " AND s." col " IS NULL THEN '" f ": " msg "'"

/* The checks every document of the five tables gets first. */
#define DD_COMMON_CHECKS \
	" WHEN s.convex_id IS NULL THEN '_id: missing or not a string'" \
	" WHEN s.created_at IS NULL THEN '_creationTime: missing or not a time in milliseconds'" \
	" WHEN s.user_id IS NULL THEN 'userId: missing or not a string'" \
	" WHEN char_length(s.user_id) NOT BETWEEN 1 AND 256 THEN 'userId: must be 1 to 256 characters'"

#define DD_COMMON_COLS \
	DD_STR("_id") " AS convex_id, " \
	DD_TIME("_creationTime") " AS created_at, " \
	DD_STR("userId") " AS user_id, "

/*
 * One Convex table: how its documents map (map_cols, the SELECT list over
 * w and ov; checks, the WHEN branches of the skip reason over the mapped
 * columns and d), which columns are compared and written.
 */
typedef struct DdConvexTable
{
	const char *name;			/* Convex table */
	const char *target;			/* table of the extension */
	const char *known;			/* fields the mapping reads, as a text[] literal */
	const char *map_cols;
	const char *checks;
	const char *extra_from;		/* joins after the mapped subquery s, or "" */
	const char *extra_cols;		/* columns from those joins, or "" */
	const char *dup_key;		/* besides convex_id: another unique key, or NULL */
	const char *dup_reason;
	const char *compare_t;		/* row of the target (alias t) ... */
	const char *compare_m;		/* ... compared with the mapped row (alias m) */
	const char *insert_cols;	/* columns inserted, in order */
	const char *insert_vals;	/* their values from the plan (alias p) */
	const char *update_set;		/* SET list from the plan (alias p) */
} DdConvexTable;

static const DdConvexTable dd_convex_tables[] = {
	{
		"apiKeys", "api_keys",
		"{_id,_creationTime,userId,name,key,keyHash,prefix,expiresAt,lastUsedAt,revokedAt,revoked}",
		DD_COMMON_COLS
		DD_STR("name") " AS name, "
		DD_STR("key") " AS key_text, "
		DD_STR("keyHash") " AS key_hash_text, "
		DD_STR("prefix") " AS prefix_text, "
		DD_TIME("expiresAt") " AS expires_at, "
		DD_TIME("lastUsedAt") " AS last_used_at, "
		"COALESCE(" DD_TIME("revokedAt") ", CASE WHEN w.d->'revoked' = 'true'::jsonb"
		" THEN " DD_TIME("_creationTime") " END) AS revoked_at, "
		"CASE WHEN jsonb_typeof(w.d->'revoked') NOT IN ('boolean', 'null') THEN true END AS revoked_bad, "
		DD_TIME("revokedAt") " AS revoked_at_given, ",
		DD_BAD("name", "name", "not a string")
		DD_BAD("key", "key_text", "not a string")
		DD_BAD("keyHash", "key_hash_text", "not a string")
		DD_BAD("prefix", "prefix_text", "not a string")
		DD_BAD("expiresAt", "expires_at", "not a time in milliseconds")
		DD_BAD("lastUsedAt", "last_used_at", "not a time in milliseconds")
		DD_BAD("revokedAt", "revoked_at_given", "not a time in milliseconds")
		" WHEN s.revoked_bad THEN 'revoked: not a boolean'"
		" WHEN s.key_text IS NULL AND s.key_hash_text IS NULL THEN 'neither key nor keyHash'"
		" WHEN s.key_text = '' THEN 'key: empty'"
		" WHEN octet_length(s.key_text) > 512"
		" THEN 'key: longer than 512 bytes, which dd_clipper.legacy_keys does not look up'"
		" WHEN s.key_text LIKE 'ddk\\_%'"
		" THEN 'key: starts with ddk_ but is not a dd_clipper key, so it could never verify'"
		" WHEN s.key_text IS NULL AND kh.key_hash IS NULL"
		" THEN 'keyHash: not a SHA-256 in hex (64 digits) or base64 (44 characters)'",
		/* the hash, from the key or keyHash */
		" CROSS JOIN LATERAL (SELECT CASE"
		" WHEN s.key_text IS NOT NULL THEN sha256(convert_to(s.key_text, 'UTF8'))"
		" WHEN s.key_hash_text ~ '^[0-9A-Fa-f]{64}$' THEN decode(s.key_hash_text, 'hex')"
		" WHEN s.key_hash_text ~ '^[A-Za-z0-9+/_-]{43}=?$'"
		" THEN decode(rpad(translate(s.key_hash_text, '-_', '+/'), 44, '='), 'base64')"
		" END AS key_hash) kh",
		"kh.key_hash, COALESCE(s.prefix_text, CASE WHEN char_length(s.key_text) >= 32"
		" THEN left(s.key_text, 8) ELSE '' END) AS prefix, ",
		"key_hash", "its key is the key of line %s",
		/* A revocation or a later use recorded here is never undone. */
		"t.name, t.prefix, t.key_hash, t.created_at, t.expires_at,"
		" GREATEST(t.last_used_at, m.last_used_at), COALESCE(t.revoked_at, m.revoked_at)",
		"m.name, m.prefix, m.key_hash, m.created_at, m.expires_at,"
		" t.last_used_at, t.revoked_at",
		"user_id, name, prefix, key_hash, created_at, expires_at, last_used_at, revoked_at, convex_id",
		"p.user_id, p.name, p.prefix, p.key_hash, p.created_at, p.expires_at, p.last_used_at, p.revoked_at, p.convex_id",
		"name = p.name, prefix = p.prefix, key_hash = p.key_hash, created_at = p.created_at,"
		" expires_at = p.expires_at, last_used_at = GREATEST(t.last_used_at, p.last_used_at),"
		" revoked_at = COALESCE(t.revoked_at, p.revoked_at)"
	},
	{
		"apiCredits", "api_credits",
		"{_id,_creationTime,userId,balance,updatedAt}",
		DD_COMMON_COLS
		DD_INT("balance") " AS balance, "
		"COALESCE(" DD_TIME("updatedAt") ", " DD_TIME("_creationTime") ") AS updated_at, "
		DD_TIME("updatedAt") " AS updated_at_given, ",
		" WHEN NOT " DD_HAS("balance") " THEN 'balance: missing'"
		DD_BAD("balance", "balance", "not an integer")
		" WHEN s.balance < 0 THEN 'balance: negative'"
		DD_BAD("updatedAt", "updated_at_given", "not a time in milliseconds"),
		"", "",
		"user_id", "another apiCredits document of this user is on line %s",
		/* compared with what the last import recorded (convex_opening_balances) */
		"t.balance, t.convex_id",
		"m.balance, m.convex_id",
		NULL, NULL, NULL
	},
	{
		"apiUsageLog", "api_usage_log",
		"{_id,_creationTime,userId,requestId,endpoint,credits,apiKeyId,metadata,balanceAfter}",
		DD_COMMON_COLS
		DD_STR("requestId") " AS request_id, "
		DD_STR("endpoint") " AS endpoint, "
		DD_OR_DEFAULT(DD_INT("credits"), "credits", "0") " AS credits, "
		DD_STR("apiKeyId") " AS api_key_convex_id, "
		DD_OBJ("metadata") " AS metadata, "
		DD_INT("balanceAfter") " AS balance_after, ",
		DD_BAD("requestId", "request_id", "not a string")
		DD_BAD("endpoint", "endpoint", "not a string")
		" WHEN s.credits IS NULL THEN 'credits: not an integer'"
		" WHEN s.credits < 0 THEN 'credits: negative'"
		DD_BAD("apiKeyId", "api_key_convex_id", "not a string")
		DD_BAD("metadata", "metadata", "not an object")
		DD_BAD("balanceAfter", "balance_after", "not an integer"),
		/* apiKeyId -> the imported key's id, through its convex_id */
		" LEFT JOIN @ext@.api_keys k ON k.user_id = s.user_id"
		" AND k.convex_id = s.api_key_convex_id",
		"k.id AS api_key_id, ",
		"request_id", "its requestId is the requestId of line %s",
		"t.request_id, t.endpoint, t.credits, t.api_key_id, t.metadata, t.balance_after, t.created_at",
		"m.request_id, m.endpoint, m.credits, m.api_key_id, m.metadata, m.balance_after, m.created_at",
		"user_id, request_id, endpoint, credits, api_key_id, metadata, balance_after, created_at, convex_id",
		"p.user_id, p.request_id, p.endpoint, p.credits, p.api_key_id, p.metadata, p.balance_after, p.created_at, p.convex_id",
		"request_id = p.request_id, endpoint = p.endpoint, credits = p.credits,"
		" api_key_id = p.api_key_id, metadata = p.metadata, balance_after = p.balance_after,"
		" created_at = p.created_at"
	},
	{
		"clips", "clips",
		"{_id,_creationTime,userId,title,sourceUrl,transcript,notes,tags,status,storageId,updatedAt,deletedAt}",
		DD_COMMON_COLS
		DD_OR_DEFAULT(DD_STR("title"), "title", "''") " AS title, "
		DD_STR("sourceUrl") " AS source_url, "
		DD_STR("transcript") " AS transcript, "
		DD_STR("notes") " AS notes, "
		"CASE WHEN " DD_ABSENT("tags") " THEN '{}'::text[]"
		" WHEN jsonb_typeof(w.d->'tags') = 'array' AND NOT EXISTS (SELECT 1 FROM"
		" jsonb_array_elements(w.d->'tags') e WHERE jsonb_typeof(e) <> 'string')"
		" THEN ARRAY(SELECT jsonb_array_elements_text(w.d->'tags')) END AS tags, "
		DD_OR_DEFAULT(DD_STR("status"), "status", "'ready'") " AS status, "
		DD_STR("storageId") " AS storage_id, "
		"COALESCE(" DD_TIME("updatedAt") ", " DD_TIME("_creationTime") ") AS updated_at, "
		DD_TIME("updatedAt") " AS updated_at_given, "
		DD_TIME("deletedAt") " AS deleted_at, ",
		" WHEN s.title IS NULL THEN 'title: not a string'"
		DD_BAD("sourceUrl", "source_url", "not a string")
		DD_BAD("transcript", "transcript", "not a string")
		DD_BAD("notes", "notes", "not a string")
		" WHEN s.tags IS NULL THEN 'tags: not an array of strings'"
		" WHEN s.status IS NULL THEN 'status: not a string'"
		DD_BAD("storageId", "storage_id", "not a string")
		DD_BAD("updatedAt", "updated_at_given", "not a time in milliseconds")
		DD_BAD("deletedAt", "deleted_at", "not a time in milliseconds"),
		/* storageId -> the file's metadata from _storage/documents.jsonl */
		" LEFT JOIN pg_temp.dd_convex_storage st ON st.storage_id = s.storage_id",
		"CASE WHEN s.storage_id IS NOT NULL THEN 'convex' END AS blob_provider,"
		" s.storage_id AS blob_key, st.sha256 AS blob_sha256, st.size AS blob_size,"
		" st.content_type AS blob_content_type, ",
		NULL, NULL,
		/* updated_at is the triggers' (clips_stamp sets it on every update) */
		"t.title, t.source_url, t.transcript, t.notes, t.tags, t.status, t.blob_provider,"
		" t.blob_key, t.blob_sha256, t.blob_size, t.blob_content_type, t.created_at, t.deleted_at",
		"m.title, m.source_url, m.transcript, m.notes, m.tags, m.status, m.blob_provider,"
		" m.blob_key, m.blob_sha256, m.blob_size, m.blob_content_type, m.created_at, m.deleted_at",
		"user_id, title, source_url, transcript, notes, tags, status, blob_provider, blob_key,"
		" blob_sha256, blob_size, blob_content_type, created_at, updated_at, deleted_at, convex_id",
		"p.user_id, p.title, p.source_url, p.transcript, p.notes, p.tags, p.status, p.blob_provider,"
		" p.blob_key, p.blob_sha256, p.blob_size, p.blob_content_type, p.created_at, p.updated_at,"
		" p.deleted_at, p.convex_id",
		"title = p.title, source_url = p.source_url, transcript = p.transcript, notes = p.notes,"
		" tags = p.tags, status = p.status, blob_provider = p.blob_provider, blob_key = p.blob_key,"
		" blob_sha256 = p.blob_sha256, blob_size = p.blob_size,"
		" blob_content_type = p.blob_content_type, created_at = p.created_at,"
		" deleted_at = p.deleted_at"
	},
	{
		"usageEvents", "usage_events",
		"{_id,_creationTime,userId,event,properties,eventId,occurredAt}",
		DD_COMMON_COLS
		DD_STR("event") " AS event, "
		DD_OR_DEFAULT(DD_OBJ("properties"), "properties", "'{}'::jsonb") " AS properties, "
		DD_STR("eventId") " AS event_id, "
		"COALESCE(" DD_TIME("occurredAt") ", " DD_TIME("_creationTime") ") AS occurred_at, "
		DD_TIME("occurredAt") " AS occurred_at_given, ",
		" WHEN s.event IS NULL THEN 'event: missing or not a string'"
		" WHEN s.properties IS NULL THEN 'properties: not an object'"
		DD_BAD("eventId", "event_id", "not a string")
		DD_BAD("occurredAt", "occurred_at_given", "not a time in milliseconds"),
		"", "",
		"event_id", "its eventId is the eventId of line %s",
		"t.event, t.properties, t.event_id, t.occurred_at, t.received_at",
		"m.event, m.properties, m.event_id, m.occurred_at, m.created_at",
		"user_id, event, properties, event_id, occurred_at, received_at, convex_id",
		"p.user_id, p.event, p.properties, p.event_id, p.occurred_at, p.created_at, p.convex_id",
		"event = p.event, properties = p.properties, event_id = p.event_id,"
		" occurred_at = p.occurred_at, received_at = p.created_at"
	},
};

/*
 * The files of _storage/documents.jsonl that parse, for clips and for the
 * command's blob check: the storage id, the SHA-256 (base64 in the export,
 * 32 bytes here), size and content type.
 */
#define DD_STORAGE_MAP \
	"SELECT w.line, " DD_STR("_id") " AS storage_id," \
	" CASE WHEN (w.d->>'sha256') ~ '^[A-Za-z0-9+/]{43}=$' AND jsonb_typeof(w.d->'sha256') = 'string'" \
	" THEN decode(w.d->>'sha256', 'base64') END AS sha256," \
	" " DD_INT("size") " AS size, " DD_STR("contentType") " AS content_type" \
	" FROM pg_temp.dd_convex_doc w LEFT JOIN pg_temp.dd_convex_ov ov ON false"

/*
 * DdConvexQuery
 *		Run one statement built from text: @ext@ becomes the extension's
 *		quoted schema and @docs@ the staging table's quoted name.  Returns
 *		SPI_processed.
 */
static uint64
DdConvexQuery(const char *query, const char *ext, const char *docs,
			  int nargs, Oid *argtypes, Datum *values, int expected)
{
	StringInfoData buf;
	const char *p = query;
	int			rc;

	initStringInfo(&buf);
	while (*p)
	{
		if (strncmp(p, "@ext@", 5) == 0)
		{
			appendStringInfoString(&buf, ext);
			p += 5;
		}
		else if (strncmp(p, "@docs@", 6) == 0)
		{
			appendStringInfoString(&buf, docs);
			p += 6;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	rc = SPI_execute_with_args(buf.data, nargs, argtypes, values, NULL,
							   false, 0);
	if (rc != expected)
		elog(ERROR, "convex import: unexpected SPI result %d for: %.200s",
			 rc, buf.data);
	pfree(buf.data);
	return SPI_processed;
}

/*
 * DdJsonObjectCheck
 *		NULL when text[0..len) is one JSON object that jsonb accepts,
 *		otherwise the reason it is skipped.  Uses the parser that reports
 *		errors instead of raising them, with escapes decoded, so that what
 *		it accepts jsonb accepts (\u0000 included).  The reason never
 *		quotes the line: a line of apiKeys may hold a key.
 */
static const char *
DdJsonObjectCheck(char *json, int len)
{
	JsonLexContext *lex;
	JsonParseErrorType err;
	int			i = 0;

	while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\r'
					   || json[i] == '\n'))
		i++;
	if (i == len)
		return "empty line";
	if (json[i] != '{')
		return "not a JSON object";
#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, json, len, GetDatabaseEncoding(), true);
#else
	lex = makeJsonLexContextCstringLen(json, len, GetDatabaseEncoding(), true);
#endif
	err = pg_parse_json(lex, &nullSemAction);
#if PG_VERSION_NUM >= 170000
	freeJsonLexContext(lex);
#endif
	if (err != JSON_SUCCESS)
		return "malformed JSON";
	return NULL;
}

/*
 * DdConvexCheckLines
 *		Check every line of file in the staging table; the ones that are not
 *		a JSON object go to pg_temp.dd_convex_bad (line, reason).  Reads the
 *		lines through a cursor, a batch at a time, in a memory context reset
 *		per batch.
 */
static void
DdConvexCheckLines(const char *docs, const char *file)
{
	StringInfoData q;
	Portal		portal;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	SPIPlanPtr	plan;
	SPIPlanPtr	bad_plan;
	Oid			bad_types[2] = {INT8OID, TEXTOID};
	MemoryContext batch_cxt;
	MemoryContext old;

	initStringInfo(&q);
	appendStringInfo(&q, "SELECT line, doc FROM %s WHERE file = $1", docs);
	plan = SPI_prepare(q.data, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	bad_plan = SPI_prepare("INSERT INTO pg_temp.dd_convex_bad VALUES ($1, $2)",
						   2, bad_types);
	if (bad_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	values[0] = CStringGetTextDatum(file);
	portal = SPI_cursor_open(NULL, plan, values, NULL, true);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "convex import lines",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		uint64		n;
		SPITupleTable *batch;

		SPI_cursor_fetch(portal, true, 10000);
		n = SPI_processed;
		/* Kept: recording a bad line replaces SPI_tuptable. */
		batch = SPI_tuptable;
		if (n == 0)
		{
			SPI_freetuptable(batch);
			break;
		}
		old = MemoryContextSwitchTo(batch_cxt);
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	row = batch->vals[i];
			TupleDesc	desc = batch->tupdesc;
			bool		isnull;
			Datum		line = SPI_getbinval(row, desc, 1, &isnull);
			Datum		doc = SPI_getbinval(row, desc, 2, &isnull);
			const char *reason;

			CHECK_FOR_INTERRUPTS();
			if (isnull)
				reason = "empty line";
			else
			{
				text	   *t = DatumGetTextPP(doc);

				reason = DdJsonObjectCheck(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			if (reason != NULL)
			{
				Datum		bad[2];

				bad[0] = line;
				bad[1] = CStringGetTextDatum(reason);
				if (SPI_execute_plan(bad_plan, bad, NULL, false, 0) != SPI_OK_INSERT)
					elog(ERROR, "recording a skipped line failed");
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(batch_cxt);
	SPI_freeplan(plan);
	SPI_freeplan(bad_plan);
	pfree(q.data);
}

/*
 * DdConvexDropTemp
 *		Drop the temporary work table name if this session has one (left by
 *		an earlier call in the same transaction), without a notice.
 */
static void
DdConvexDropTemp(const char *name)
{
	Oid			relid = get_relname_relid(name, LookupCreationNamespace("pg_temp"));

	if (OidIsValid(relid))
	{
		char	   *q = psprintf("DROP TABLE pg_temp.%s", quote_identifier(name));

		if (SPI_execute(q, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "dropping %s failed", name);
		pfree(q);
	}
}

/*
 * DdConvexLoadDocs
 *		pg_temp.dd_convex_doc (line, d jsonb): the lines of file that are
 *		JSON objects, after DdConvexCheckLines recorded the others.
 */
static void
DdConvexLoadDocs(const char *ext, const char *docs, const char *file)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(file);
	DdConvexDropTemp("dd_convex_doc");
	DdConvexQuery("CREATE TEMP TABLE dd_convex_doc ON COMMIT DROP AS"
				  " SELECT x.line, x.doc::jsonb AS d FROM @docs@ x"
				  " WHERE x.file = $1 AND NOT EXISTS (SELECT 1 FROM pg_temp.dd_convex_bad b"
				  " WHERE b.line = x.line)",
				  ext, docs, 1, argtypes, values, SPI_OK_UTILITY);
	/*
	 * Statistics, so that the joins below are planned for the real row
	 * count.  Of the join keys only: statistics go to pg_statistic, which is
	 * WAL-logged, and a plaintext key must never reach it.
	 */
	DdConvexQuery("ANALYZE pg_temp.dd_convex_doc (line)", ext, docs, 0, NULL, NULL,
				  SPI_OK_UTILITY);
}

/*
 * dd_convex_import_table(table_name text, documents regclass) returns jsonb
 *		Import the documents of one Convex table (apiKeys, apiCredits,
 *		apiUsageLog, clips, usageEvents) from the staging table documents,
 *		as the file banner says; '_storage' only checks and reports the
 *		files of _storage/documents.jsonl.  Writes in the caller's
 *		transaction, as the caller; two imports of one table at once
 *		serialize on the unique indexes like any two writers.
 */
Datum
dd_convex_import_table(PG_FUNCTION_ARGS)
{
	Oid			nspid = DdFunctionSchema(fcinfo);
	text	   *table_arg = DdTextArg(fcinfo, 0, "table_name", 64);
	char	   *table_name = text_to_cstring(table_arg);
	const DdConvexTable *tbl = NULL;
	bool		storage_only = false;
	Oid			relid;
	const char *ext;
	char	   *docs;
	char	   *file;
	char	   *schema_file;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	StringInfoData q;
	Datum		result;
	bool		isnull;
	static const char *const cols[] = {"file", "line", "doc"};
	static const Oid col_types[] = {TEXTOID, INT8OID, TEXTOID};

	for (int i = 0; i < lengthof(dd_convex_tables); i++)
		if (strcmp(dd_convex_tables[i].name, table_name) == 0)
			tbl = &dd_convex_tables[i];
	if (strcmp(table_name, "_storage") == 0)
		storage_only = true;
	else if (tbl == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table_name must be a Convex table the import knows"),
				 errdetail("It is \"%s\".", table_name),
				 errhint("One of apiKeys, apiCredits, apiUsageLog, clips, usageEvents, _storage.")));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("documents must not be null")));
	relid = PG_GETARG_OID(1);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("documents: relation with OID %u does not exist", relid)));
	for (int i = 0; i < lengthof(cols); i++)
	{
		AttrNumber	att = get_attnum(relid, cols[i]);

		if (att == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("documents must have a column \"%s\"", cols[i]),
					 errhint("The staging table is (file text, line bigint, doc text), one row per line of the export.")));
		if (get_atttype(relid, att) != col_types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("documents.%s must be of type %s", cols[i],
							format_type_be(col_types[i])),
					 errhint("The staging table is (file text, line bigint, doc text), one row per line of the export.")));
	}

	ext = quote_identifier(get_namespace_name(nspid));
	docs = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
	file = psprintf("%s/documents.jsonl", table_name);
	schema_file = psprintf("%s/generated_schema.jsonl", table_name);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	{
		static const char *const work[] = {"dd_convex_bad", "dd_convex_ov",
		"dd_convex_storage", "dd_convex_map", "dd_convex_plan"};

		for (int i = 0; i < lengthof(work); i++)
			DdConvexDropTemp(work[i]);
	}
	DdConvexQuery("CREATE TEMP TABLE dd_convex_bad (line bigint, reason text) ON COMMIT DROP",
				  ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);

	/* _storage first: clips refer to its files, and '_storage' reports them. */
	if (storage_only || strcmp(table_name, "clips") == 0)
	{
		DdConvexCheckLines(docs, "_storage/documents.jsonl");
		DdConvexLoadDocs(ext, docs, "_storage/documents.jsonl");
		DdConvexQuery("CREATE TEMP TABLE dd_convex_ov (id text, ctx jsonb) ON COMMIT DROP",
					  ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
		DdConvexQuery("CREATE TEMP TABLE dd_convex_storage ON COMMIT DROP AS " DD_STORAGE_MAP,
					  ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
		DdConvexQuery("ANALYZE pg_temp.dd_convex_storage (storage_id)", ext, docs, 0, NULL, NULL,
					  SPI_OK_UTILITY);
	}
	if (storage_only)
	{
		DdConvexQuery("SELECT jsonb_build_object("
					  " 'table', '_storage',"
					  " 'read', (SELECT count(*) FROM pg_temp.dd_convex_storage)"
					  "   + (SELECT count(*) FROM pg_temp.dd_convex_bad),"
					  " 'skipped', COALESCE((SELECT jsonb_agg(jsonb_build_object('line', x.line,"
					  "   'reason', x.reason) ORDER BY x.line) FROM ("
					  "   SELECT line, reason FROM pg_temp.dd_convex_bad"
					  "   UNION ALL SELECT line, CASE"
					  "     WHEN storage_id IS NULL THEN '_id: missing or not a string'"
					  "     WHEN sha256 IS NULL THEN 'sha256: not a base64 SHA-256'"
					  "     WHEN size IS NULL OR size < 0 THEN 'size: not a byte count' END"
					  "   FROM pg_temp.dd_convex_storage"
					  "   WHERE storage_id IS NULL OR sha256 IS NULL OR size IS NULL OR size < 0) x),"
					  "   '[]'::jsonb),"
					  " 'files', COALESCE((SELECT jsonb_agg(jsonb_build_object('id', storage_id,"
					  "   'sha256', encode(sha256, 'hex'), 'size', size) ORDER BY line)"
					  "   FROM pg_temp.dd_convex_storage WHERE storage_id IS NOT NULL"
					  "   AND sha256 IS NOT NULL AND size >= 0), '[]'::jsonb))",
					  ext, docs, 0, NULL, NULL, SPI_OK_SELECT);
		goto report;
	}
	if (strcmp(table_name, "clips") == 0)
	{
		/* Only well-formed files are referenced; the others are reported by '_storage'. */
		DdConvexQuery("DELETE FROM pg_temp.dd_convex_storage WHERE storage_id IS NULL"
					  " OR sha256 IS NULL OR size IS NULL OR size < 0",
					  ext, docs, 0, NULL, NULL, SPI_OK_DELETE);
		DdConvexQuery("DELETE FROM pg_temp.dd_convex_storage a USING pg_temp.dd_convex_storage b"
					  " WHERE a.storage_id = b.storage_id AND a.line > b.line",
					  ext, docs, 0, NULL, NULL, SPI_OK_DELETE);
		DdConvexQuery("DROP TABLE pg_temp.dd_convex_ov, pg_temp.dd_convex_bad",
					  ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
		DdConvexQuery("CREATE TEMP TABLE dd_convex_bad (line bigint, reason text) ON COMMIT DROP",
					  ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
	}

	/*
	 * generated_schema.jsonl: its first line is the inferred shape (a JSON
	 * string); every further line {"<_id>": <export context>} names a
	 * document whose values need special reading.  Lines that are not such
	 * an object are ignored: they only ever widen what is read exactly.
	 */
	DdConvexCheckLines(docs, schema_file);
	values[0] = CStringGetTextDatum(schema_file);
	DdConvexQuery("CREATE TEMP TABLE dd_convex_ov ON COMMIT DROP AS"
				  " SELECT DISTINCT ON (o.key) o.key AS id, o.value AS ctx"
				  " FROM @docs@ x, LATERAL jsonb_each(x.doc::jsonb) o"
				  " WHERE x.file = $1 AND x.line > 1"
				  " AND NOT EXISTS (SELECT 1 FROM pg_temp.dd_convex_bad b WHERE b.line = x.line)"
				  " AND jsonb_typeof(o.value) = 'object'"
				  " ORDER BY o.key, x.line",
				  ext, docs, 1, argtypes, values, SPI_OK_UTILITY);
	DdConvexQuery("TRUNCATE pg_temp.dd_convex_bad", ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);

	/* 1. The lines that are JSON objects. */
	DdConvexCheckLines(docs, file);
	DdConvexLoadDocs(ext, docs, file);

	/* 2. Map them, with a skip reason for every document that cannot be. */
	initStringInfo(&q);
	appendStringInfo(&q,
					 "CREATE TEMP TABLE dd_convex_map ON COMMIT DROP AS"
					 " SELECT s.*, %s"
					 " CASE %s %s END AS reason"
					 " FROM (SELECT w.line, w.d AS d, %s"
					 "   NULLIF(w.d - '%s'::text[], '{}'::jsonb) AS fields"
					 "   FROM pg_temp.dd_convex_doc w"
					 "   LEFT JOIN pg_temp.dd_convex_ov ov ON ov.id = w.d->>'_id') s"
					 " %s",
					 tbl->extra_cols, DD_COMMON_CHECKS, tbl->checks,
					 tbl->map_cols, tbl->known, tbl->extra_from);
	DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
	DdConvexQuery("ANALYZE pg_temp.dd_convex_map (line, user_id, convex_id)", ext, docs, 0, NULL, NULL,
				  SPI_OK_UTILITY);

	/* A reference that did not resolve is kept with the unknown fields. */
	if (strcmp(tbl->name, "apiUsageLog") == 0)
		DdConvexQuery("UPDATE pg_temp.dd_convex_map SET fields = COALESCE(fields, '{}'::jsonb)"
					  " || jsonb_build_object('apiKeyId', api_key_convex_id)"
					  " WHERE api_key_convex_id IS NOT NULL AND api_key_id IS NULL",
					  ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);

	/* The second document with one _id (or other unique key) is skipped. */
	DdConvexQuery("UPDATE pg_temp.dd_convex_map m"
				  " SET reason = format('_id %s is also on line %s', m.convex_id, x.first)"
				  " FROM (SELECT line, min(line) OVER (PARTITION BY user_id, convex_id) AS first"
				  "       FROM pg_temp.dd_convex_map WHERE reason IS NULL) x"
				  " WHERE m.line = x.line AND x.first <> x.line",
				  ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
	if (tbl->dup_key != NULL)
	{
		resetStringInfo(&q);
		appendStringInfo(&q,
						 "UPDATE pg_temp.dd_convex_map m SET reason = format('%s', x.first)"
						 " FROM (SELECT line, min(line) OVER (PARTITION BY %s%s) AS first"
						 "       FROM pg_temp.dd_convex_map WHERE reason IS NULL"
						 "       AND %s IS NOT NULL) x"
						 " WHERE m.line = x.line AND x.first <> x.line",
						 tbl->dup_reason,
						 strcmp(tbl->dup_key, "key_hash") == 0 ? "" : "user_id, ",
						 tbl->dup_key, tbl->dup_key);
		DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
	}

	/*
	 * 3. Classify: s skipped, n new, c changed, u unchanged.  Credits are
	 * compared with what the last import recorded, the others with their
	 * row (and its unknown fields).
	 */
	resetStringInfo(&q);
	if (strcmp(tbl->name, "apiCredits") == 0)
		appendStringInfo(&q,
						 "CREATE TEMP TABLE dd_convex_plan ON COMMIT DROP AS"
						 " SELECT m.*, t.balance AS old_balance, u.fields AS old_fields,"
						 "  CASE WHEN m.reason IS NOT NULL THEN 's'"
						 "   WHEN t.balance IS NULL THEN 'n'"
						 "   WHEN (t.balance, t.convex_id, u.fields) IS DISTINCT FROM"
						 "        (m.balance, m.convex_id, m.fields) THEN 'c'"
						 "   ELSE 'u' END AS op"
						 " FROM pg_temp.dd_convex_map m"
						 " LEFT JOIN @ext@.convex_opening_balances t"
						 "   ON m.reason IS NULL AND t.user_id = m.user_id"
						 " LEFT JOIN @ext@.convex_unmapped u ON m.reason IS NULL"
						 "   AND u.user_id = m.user_id AND u.table_name = 'apiCredits'"
						 "   AND u.convex_id = m.convex_id");
	else
		appendStringInfo(&q,
						 "CREATE TEMP TABLE dd_convex_plan ON COMMIT DROP AS"
						 " SELECT m.*, t.id AS target_id, %s"
						 "  CASE WHEN m.reason IS NOT NULL THEN 's'"
						 "   WHEN t.id IS NULL THEN 'n'"
						 "   WHEN (%s, u.fields) IS DISTINCT FROM (%s, m.fields) THEN 'c'"
						 "   ELSE 'u' END AS op"
						 " FROM pg_temp.dd_convex_map m"
						 " LEFT JOIN @ext@.%s t ON m.reason IS NULL"
						 "   AND t.user_id = m.user_id AND t.convex_id = m.convex_id"
						 " LEFT JOIN @ext@.convex_unmapped u ON m.reason IS NULL"
						 "   AND u.user_id = m.user_id AND u.table_name = '%s'"
						 "   AND u.convex_id = m.convex_id",
						 strcmp(tbl->name, "apiUsageLog") == 0 ?
						 "t.credits AS old_credits," : "",
						 tbl->compare_t, tbl->compare_m, tbl->target, tbl->name);
	DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UTILITY);
	DdConvexQuery("ANALYZE pg_temp.dd_convex_plan (line, user_id, convex_id)", ext, docs, 0, NULL, NULL,
				  SPI_OK_UTILITY);

	/* 4. Write. */
	resetStringInfo(&q);
	if (strcmp(tbl->name, "apiCredits") == 0)
	{
		/*
		 * A new user's balance, added to a balance the user already has in
		 * PostgreSQL; a changed one moves by the difference from the last
		 * import, keeping what happened here since.
		 */
		DdConvexQuery("INSERT INTO @ext@.api_credits AS a (user_id, balance, created_at, updated_at, convex_id)"
					  " SELECT p.user_id, p.balance, p.created_at, p.updated_at, p.convex_id"
					  " FROM pg_temp.dd_convex_plan p WHERE p.op = 'n' ORDER BY p.user_id"
					  " ON CONFLICT (user_id) DO UPDATE SET balance = a.balance + excluded.balance,"
					  " convex_id = excluded.convex_id, updated_at = excluded.updated_at",
					  ext, docs, 0, NULL, NULL, SPI_OK_INSERT);
		DdConvexQuery("UPDATE @ext@.api_credits a SET balance = a.balance + (p.balance - p.old_balance),"
					  " convex_id = p.convex_id, updated_at = p.updated_at"
					  " FROM pg_temp.dd_convex_plan p WHERE p.op = 'c' AND a.user_id = p.user_id"
					  " AND (p.balance IS DISTINCT FROM p.old_balance OR a.convex_id IS DISTINCT FROM p.convex_id)",
					  ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
		DdConvexQuery("INSERT INTO @ext@.convex_opening_balances AS o (user_id, convex_id, balance, charged)"
					  " SELECT p.user_id, p.convex_id, p.balance, 0 FROM pg_temp.dd_convex_plan p"
					  " WHERE p.op IN ('n', 'c')"
					  " ON CONFLICT (user_id) DO UPDATE SET balance = excluded.balance,"
					  " convex_id = excluded.convex_id, updated_at = now()"
					  " WHERE (o.balance, o.convex_id) IS DISTINCT FROM (excluded.balance, excluded.convex_id)",
					  ext, docs, 0, NULL, NULL, SPI_OK_INSERT);
	}
	else
	{
		appendStringInfo(&q,
						 "WITH ins AS (INSERT INTO @ext@.%s (%s)"
						 "   SELECT %s FROM pg_temp.dd_convex_plan p WHERE p.op = 'n'"
						 "   ORDER BY p.line ON CONFLICT DO NOTHING RETURNING user_id, convex_id)"
						 " UPDATE pg_temp.dd_convex_plan p SET op = 'i' FROM ins"
						 " WHERE p.op = 'n' AND p.user_id = ins.user_id AND p.convex_id = ins.convex_id",
						 tbl->target, tbl->insert_cols, tbl->insert_vals);
		DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
		/* What met another unique key was not inserted. */
		resetStringInfo(&q);
		appendStringInfo(&q,
						 "UPDATE pg_temp.dd_convex_plan SET op = 's', reason = '%s'"
						 " WHERE op = 'n'",
						 strcmp(tbl->name, "apiKeys") == 0 ?
						 "its key is already the key of another row of api_keys" :
						 strcmp(tbl->name, "apiUsageLog") == 0 ?
						 "its requestId is already the request_id of another usage row of this user" :
						 strcmp(tbl->name, "usageEvents") == 0 ?
						 "its eventId is already the event_id of another event of this user" :
						 "it conflicts with an existing row");
		DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
		resetStringInfo(&q);
		appendStringInfo(&q,
						 "UPDATE @ext@.%s t SET %s FROM pg_temp.dd_convex_plan p"
						 " WHERE p.op = 'c' AND t.id = p.target_id AND t.user_id = p.user_id",
						 tbl->target, tbl->update_set);
		DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_UPDATE);
	}

	/* The unknown fields of every imported document, written when they differ. */
	resetStringInfo(&q);
	appendStringInfo(&q,
					 "INSERT INTO @ext@.convex_unmapped AS u (table_name, user_id, convex_id, fields)"
					 " SELECT '%s', p.user_id, p.convex_id, p.fields FROM pg_temp.dd_convex_plan p"
					 " WHERE p.op IN ('n', 'i', 'c') AND p.fields IS NOT NULL"
					 " ON CONFLICT (user_id, table_name, convex_id) DO UPDATE SET fields = excluded.fields"
					 " WHERE u.fields IS DISTINCT FROM excluded.fields",
					 tbl->name);
	DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_INSERT);
	resetStringInfo(&q);
	appendStringInfo(&q,
					 "DELETE FROM @ext@.convex_unmapped u USING pg_temp.dd_convex_plan p"
					 " WHERE p.op = 'c' AND p.fields IS NULL AND u.table_name = '%s'"
					 " AND u.user_id = p.user_id AND u.convex_id = p.convex_id",
					 tbl->name);
	DdConvexQuery(q.data, ext, docs, 0, NULL, NULL, SPI_OK_DELETE);

	/*
	 * The opening grants: imported usage changes what a user was charged in
	 * Convex, and so the grant that balances it.
	 */
	if (strcmp(tbl->name, "apiUsageLog") == 0)
		DdConvexQuery("INSERT INTO @ext@.convex_opening_balances AS o (user_id, charged)"
					  " SELECT p.user_id, sum(CASE p.op WHEN 'i' THEN p.credits"
					  "   ELSE p.credits - p.old_credits END)"
					  " FROM pg_temp.dd_convex_plan p WHERE p.op IN ('i', 'c')"
					  " GROUP BY p.user_id"
					  " HAVING sum(CASE p.op WHEN 'i' THEN p.credits ELSE p.credits - p.old_credits END) <> 0"
					  " ON CONFLICT (user_id) DO UPDATE SET charged = o.charged + excluded.charged,"
					  " updated_at = now()",
					  ext, docs, 0, NULL, NULL, SPI_OK_INSERT);
	if (strcmp(tbl->name, "apiUsageLog") == 0 || strcmp(tbl->name, "apiCredits") == 0)
	{
		DdConvexQuery("INSERT INTO @ext@.credit_grants AS g (user_id, amount, reason, idempotency_key)"
					  " SELECT o.user_id, COALESCE(o.balance, 0) + o.charged,"
					  "   'opening balance imported from Convex', 'convex:opening'"
					  " FROM @ext@.convex_opening_balances o"
					  " WHERE o.user_id IN (SELECT p.user_id FROM pg_temp.dd_convex_plan p"
					  "   WHERE p.op IN ('n', 'i', 'c'))"
					  " AND COALESCE(o.balance, 0) + o.charged > 0"
					  " ON CONFLICT ON CONSTRAINT credit_grants_user_id_idempotency_key_key"
					  " DO UPDATE SET amount = excluded.amount WHERE g.amount <> excluded.amount",
					  ext, docs, 0, NULL, NULL, SPI_OK_INSERT);
		DdConvexQuery("DELETE FROM @ext@.credit_grants g USING @ext@.convex_opening_balances o"
					  " WHERE g.user_id = o.user_id AND g.idempotency_key = 'convex:opening'"
					  " AND COALESCE(o.balance, 0) + o.charged = 0",
					  ext, docs, 0, NULL, NULL, SPI_OK_DELETE);
	}

	/* The report. */
	DdConvexQuery("SELECT jsonb_build_object("
				  " 'table', $1::text,"
				  " 'read', (SELECT count(*) FROM pg_temp.dd_convex_plan)"
				  "   + (SELECT count(*) FROM pg_temp.dd_convex_bad),"
				  " 'inserted', (SELECT count(*) FROM pg_temp.dd_convex_plan WHERE op IN ('i', 'n')),"
				  " 'updated', (SELECT count(*) FROM pg_temp.dd_convex_plan WHERE op = 'c'),"
				  " 'unchanged', (SELECT count(*) FROM pg_temp.dd_convex_plan WHERE op = 'u'),"
				  " 'skipped', COALESCE((SELECT jsonb_agg(jsonb_build_object('line', x.line,"
				  "   'reason', x.reason) ORDER BY x.line) FROM ("
				  "   SELECT line, reason FROM pg_temp.dd_convex_bad"
				  "   UNION ALL SELECT line, reason FROM pg_temp.dd_convex_plan WHERE op = 's') x),"
				  "   '[]'::jsonb))",
				  ext, docs, 1, argtypes, (values[0] = CStringGetTextDatum(table_name), values),
				  SPI_OK_SELECT);

report:
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
