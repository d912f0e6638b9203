/*-------------------------------------------------------------------------
 *
 * migrations.c
 *	  Backfill migrations (Convex's progressive migrations, done by the
 *	  database): dd_migration_create, CALL dd_migration_run,
 *	  dd_migration_start (a dynamic background worker), dd_migration_cancel,
 *	  dd_migration_dry_run, dd_migration_remaining and the keep-in-step
 *	  trigger.
 *
 * A migration is a SET list and a WHERE filter on one table with a primary
 * key.  A batch is one statement:
 *
 *		WITH dd_window AS (SELECT <key> FROM ONLY <table>
 *						   WHERE (<key>) > (<cursor>)
 *						   ORDER BY <key> LIMIT <batch_size>),
 *			 dd_batch AS (SELECT <key> FROM ONLY <table>
 *						  WHERE (<key>) IN (SELECT * FROM dd_window)
 *						  AND (<where_sql>) FOR NO KEY UPDATE),
 *			 dd_done AS (UPDATE ONLY <table> SET <set_sql> FROM dd_batch
 *						  WHERE (<key>) = (dd_batch.<key>)
 *						  RETURNING (<where_sql>))
 *		SELECT <rows updated>, <rows still selected>, <window size>, <last key>
 *
 * followed, in the same transaction, by the update of the migration's row
 * (processed, cursor).  So a batch is applied and counted, or neither: a
 * runner killed mid-batch, or a server crash, leaves the migration exactly
 * at its last committed batch, and running it again resumes there.  Each
 * batch looks at the next batch_size keys after the cursor (keyset
 * pagination over the primary key), so a batch costs the same at the end of
 * a big table as at its start whatever the filter selects, and the row
 * locks of a batch are held only for that batch.  The filter must
 * select exactly the rows still to do: a batch that leaves a row it updated
 * still selected raises an error (the migration could never complete).
 * When a pass reaches the end of the key, a final check looks for any row
 * the filter still selects (rows written behind the cursor meanwhile); if
 * there is one, another pass starts; if not, the migration is completed.
 *
 * Privileges.  The batches run as the role that runs or starts the
 * migration: in the caller's own session for dd_migration_run, and in a
 * background worker that switches to the caller's role (as a
 * security-restricted operation, so the migration's expressions cannot SET
 * ROLE back) for dd_migration_start.  The worker never runs a batch with
 * the rights of the extension owner or of a superuser it was not started
 * by.  Only the extension's bookkeeping (the row in @extschema@.migrations)
 * is written with the rights of that table's owner, by fixed statements.
 *
 * One runner per migration: a runner holds a session-level advisory lock
 * (classid 1684303207, objid = migrations.id, objsubid 2 in pg_locks) for
 * as long as it runs; a second runner cannot take it and gets SQLSTATE
 * 55006 (object_in_use).  The lock goes with the runner's process, so a
 * killed worker or a server restart frees it; dd_migration_progress shows
 * such a migration as paused, and running or starting it resumes it.
 *
 * The migration's expressions are parsed alone first (set_sql must be a
 * SET list and nothing more, where_sql one boolean expression), so text
 * given for one part of the statement cannot reach another; then the
 * whole statement is prepared, which type-checks them.  They always run
 * with the search_path in effect when the migration was created.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "dd_clipper.h"

PG_FUNCTION_INFO_V1(dd_migration_create);
PG_FUNCTION_INFO_V1(dd_migration_run);
PG_FUNCTION_INFO_V1(dd_migration_start);
PG_FUNCTION_INFO_V1(dd_migration_cancel);
PG_FUNCTION_INFO_V1(dd_migration_dry_run);
PG_FUNCTION_INFO_V1(dd_migration_remaining);
PG_FUNCTION_INFO_V1(dd_migration_keep_in_step);
PG_FUNCTION_INFO_V1(dd_migration_drop);

PGDLLEXPORT void dd_migration_worker_main(Datum main_arg);

/* An UPDATE's RETURNING list: a ReturningClause from PostgreSQL 18 on */
#if PG_VERSION_NUM >= 180000
#define UpdateReturning(upd) ((upd)->returningClause != NULL)
#else
#define UpdateReturning(upd) ((upd)->returningList != NIL)
#endif

/* First key of a runner's advisory lock ('ddmg'); the second is the id. */
#define DD_MIGRATION_LOCK_KEY	1684303207

#define DD_MAX_MIGRATION_NAME	200
#define DD_MAX_MIGRATION_SQL	10000

/* How long dd_migration_start waits for its worker to claim the migration */
#define DD_START_TIMEOUT_MS		30000

/*
 * Where the statements a migration runs come from: the extension's schema
 * (for the bookkeeping), the owner of the bookkeeping table, and who runs
 * the migration's own SQL.
 */
typedef struct MigrationEnv
{
	Oid			nspid;
	const char *nsp;			/* quoted schema name */
	Oid			bookkeeper;		/* owner of @extschema@.migrations */
	Oid			caller;			/* role the batches run as */
	bool		switch_user;	/* worker: switch to caller for batches */
} MigrationEnv;

/* One migration, as loaded from its row, with its statement pieces. */
typedef struct Migration
{
	int32		id;
	char	   *name;
	Oid			relid;
	char	   *rel;			/* ONLY target: schema-qualified, quoted */
	char	   *relref;			/* how statements refer to it: quoted name */
	int			nkeys;
	char	  **keys;			/* quoted key column names */
	char	  **keytypes;		/* their types, as format_type gives them */
	char	   *set_sql;
	char	   *where_sql;
	int32		batch_size;
	char	   *search_path;
	char	   *run_after;		/* NULL when none */
	bool		keep_in_step;
	Oid			owner;
	char	   *status;
	Datum		cursor;			/* text[], valid when !cursor_null */
	bool		cursor_null;
	TransactionId xmin;
	int32		runner_pid;		/* 0 when none */
	/* the statements, built when a run starts */
	char	   *sql_first;		/* first batch of a pass */
	char	   *sql_next;		/* a batch after the cursor */
	char	   *sql_check;		/* the final check */
} Migration;

/* What dd_migration_start and its worker share while the worker starts. */
typedef enum LaunchState
{
	LAUNCH_WAITING = 0,			/* the worker has not claimed it yet */
	LAUNCH_RUNNING,				/* claimed: it runs */
	LAUNCH_BUSY,				/* another runner holds it */
	LAUNCH_FAILED				/* could not start: see message */
} LaunchState;

typedef struct MigrationLaunch
{
	Oid			dboid;
	Oid			session_user;	/* the worker connects as this login role */
	Oid			caller;			/* and runs the batches as this role */
	Oid			nspid;
	int			pause_ms;		/* dd_clipper.migration_batch_pause */
	char		name[DD_MAX_MIGRATION_NAME * 4 + 1];
	pg_atomic_uint32 state;
	int			sqlstate;
	char		message[512];
} MigrationLaunch;

/* What one batch did. */
typedef enum BatchResult
{
	BATCH_MORE,					/* more rows after the cursor */
	BATCH_NEW_PASS,				/* end of the key, rows still selected */
	BATCH_COMPLETED,			/* final check found nothing: completed */
	BATCH_STOPPED				/* canceled meanwhile: nothing committed */
} BatchResult;

/*
 * The migration whose batch this process is running, if any: its
 * keep-in-step trigger has nothing to do for the batch's own rows.
 */
static const char *batch_in_progress = NULL;

static void MigrationLockTag(LOCKTAG *tag, int32 id);
static bool MigrationLockTry(int32 id);
static void MigrationLockRelease(int32 id);

/* ------------------------------------------------------------------------
 * Running SQL as the bookkeeper or as the caller
 * ------------------------------------------------------------------------
 */

/*
 * EnvInit
 *		Fill env for the extension schema nspid: the bookkeeping table's
 *		owner, and the current role as the caller.
 */
static void
EnvInit(MigrationEnv *env, Oid nspid)
{
	Oid			relid;
	HeapTuple	tuple;
	const char *nspname = get_namespace_name(nspid);

	if (nspname == NULL)
		elog(ERROR, "cache lookup failed for namespace %u", nspid);
	env->nspid = nspid;
	env->nsp = quote_identifier(nspname);
	relid = get_relname_relid("migrations", nspid);
	if (!OidIsValid(relid))
		elog(ERROR, "dd_clipper's migrations table is missing");
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	env->bookkeeper = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	env->caller = GetUserId();
	env->switch_user = false;
}

/*
 * Book
 *		Run one bookkeeping statement (text with %s for the extension's
 *		schema, every object and operator qualified) with the rights of the
 *		bookkeeping table's owner.  Returns SPI_processed.
 */
static uint64
Book(MigrationEnv *env, const char *query, int nargs, Oid *argtypes,
	 Datum *values, const char *nulls, bool read_only)
{
	Oid			save_uid;
	int			save_sec;
	int			rc;
	char	   *sql = psprintf(query, env->nsp, env->nsp);

	GetUserIdAndSecContext(&save_uid, &save_sec);
	SetUserIdAndSecContext(env->bookkeeper,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
							   read_only, 0);
	SetUserIdAndSecContext(save_uid, save_sec);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s",
			 SPI_result_code_string(rc));
	pfree(sql);
	return SPI_processed;
}

/*
 * AsCallerBegin / AsCallerEnd
 *		Around the migration's own statements: apply the search_path the
 *		migration was created with, and in a worker become the caller (as a
 *		security-restricted operation: no SET ROLE back).  An error in
 *		between is undone by the (sub)transaction's abort.
 */
typedef struct AsCaller
{
	int			nestlevel;
	Oid			save_uid;
	int			save_sec;
} AsCaller;

static void
AsCallerBegin(MigrationEnv *env, Migration *m, AsCaller *as)
{
	GetUserIdAndSecContext(&as->save_uid, &as->save_sec);
	if (env->switch_user)
		SetUserIdAndSecContext(env->caller,
							   as->save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	as->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", m->search_path,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static void
AsCallerEnd(AsCaller *as)
{
	AtEOXact_GUC(true, as->nestlevel);
	SetUserIdAndSecContext(as->save_uid, as->save_sec);
}

/* ------------------------------------------------------------------------
 * Loading and checking a migration
 * ------------------------------------------------------------------------
 */

/*
 * PrimaryKey
 *		The primary key columns of relid (quoted) and their types, in key
 *		order.  Errors if there is none.
 */
static int
PrimaryKey(Oid relid, char ***keys, char ***types)
{
	Relation	rel;
	Oid			pkoid;
	HeapTuple	tuple;
	Form_pg_index index;
	int			n;

	if (IsCatalogRelationOid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a migration cannot update the system catalog %s", get_rel_name(relid))));
	rel = relation_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" is not a table",
						RelationGetRelationName(rel))));
#if PG_VERSION_NUM >= 180000
	pkoid = RelationGetPrimaryKeyIndex(rel, false);
#else
	pkoid = RelationGetPrimaryKeyIndex(rel);
#endif
	if (!OidIsValid(pkoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key",
						RelationGetRelationName(rel)),
				 errhint("A migration walks the table in primary-key order; add a primary key first.")));
	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for index %u", pkoid);
	index = (Form_pg_index) GETSTRUCT(tuple);
	n = index->indnkeyatts;
	*keys = palloc(sizeof(char *) * n);
	*types = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		AttrNumber	attnum = index->indkey.values[i];
		Oid			typid;
		int32		typmod;
		Oid			collid;

		get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
		(*keys)[i] = pstrdup(quote_identifier(get_attname(relid, attnum, false)));
		(*types)[i] = format_type_with_typemod(typid, typmod);
	}
	ReleaseSysCache(tuple);
	relation_close(rel, NoLock);
	return n;
}

/* Fill the statement pieces of m from its relation. */
static void
MigrationResolve(Migration *m)
{
	char	   *relname;
	char	   *nspname;

	relname = get_rel_name(m->relid);
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table of migration \"%s\" no longer exists",
						m->name)));
	nspname = get_namespace_name(get_rel_namespace(m->relid));
	m->rel = quote_qualified_identifier(nspname, relname);
	m->relref = pstrdup(quote_identifier(relname));
	m->nkeys = PrimaryKey(m->relid, &m->keys, &m->keytypes);
}

/* Text of a text column of the current SPI row, or NULL. */
static char *
SpiText(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/*
 * MigrationLoad
 *		Load the migration called name (its row locked when for_update),
 *		into the current memory context.  Errors if there is none.
 */
static Migration *
MigrationLoad(MigrationEnv *env, const char *name, bool for_update)
{
	Migration  *m;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext cxt = CurrentMemoryContext;
	char	   *query;

	values[0] = CStringGetTextDatum(name);
	query = psprintf("SELECT id, relation::pg_catalog.oid, set_sql, where_sql, batch_size,"
					 " search_path, run_after, keep_in_step, owner::pg_catalog.oid,"
					 " status, cursor, xmin, COALESCE(runner_pid, 0)"
					 " FROM %%s.migrations WHERE name OPERATOR(pg_catalog.=) $1%s",
					 for_update ? " FOR UPDATE" : "");
	if (Book(env, query, 1, argtypes, values, NULL, false) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" does not exist", name)));

	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(cxt);
	m = palloc0(sizeof(Migration));
	m->name = pstrdup(name);
	m->id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	m->relid = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
	m->set_sql = SpiText(3);
	m->where_sql = SpiText(4);
	m->batch_size = DatumGetInt32(SPI_getbinval(row, desc, 5, &isnull));
	m->search_path = SpiText(6);
	m->run_after = SpiText(7);
	m->keep_in_step = DatumGetBool(SPI_getbinval(row, desc, 8, &isnull));
	m->owner = DatumGetObjectId(SPI_getbinval(row, desc, 9, &isnull));
	m->status = SpiText(10);
	m->cursor = SPI_getbinval(row, desc, 11, &m->cursor_null);
	if (!m->cursor_null)
		m->cursor = PointerGetDatum(PG_DETOAST_DATUM_COPY(m->cursor));
	m->xmin = DatumGetTransactionId(SPI_getbinval(row, desc, 12, &isnull));
	m->runner_pid = DatumGetInt32(SPI_getbinval(row, desc, 13, &isnull));
	return m;
}

/* The caller must be a member of the migration's owner. */
static void
CheckOwner(MigrationEnv *env, Migration *m)
{
	if (!has_privs_of_role(env->caller, m->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for migration \"%s\"", m->name),
				 errdetail("Only members of role \"%s\", which created it, may run, start, cancel or dry-run it.",
						   GetUserNameFromId(m->owner, false))));
}

/* A migration that runs after another may run once that one completed. */
static void
CheckPredecessor(MigrationEnv *env, Migration *m)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *status;

	if (m->run_after == NULL)
		return;
	values[0] = CStringGetTextDatum(m->run_after);
	if (Book(env, "SELECT status FROM %s.migrations WHERE name OPERATOR(pg_catalog.=) $1",
			 1, argtypes, values, NULL, false) == 0)
		elog(ERROR, "migration \"%s\" is missing", m->run_after);
	status = SpiText(1);
	if (strcmp(status, "completed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" runs after \"%s\", which has not completed",
						m->name, m->run_after),
				 errdetail("\"%s\" is %s.", m->run_after, status),
				 errhint("Run \"%s\" first; a runner that completes it goes on with \"%s\".",
						 m->run_after, m->name)));
}

/* ------------------------------------------------------------------------
 * The statements
 * ------------------------------------------------------------------------
 */

/* "k1, k2" with an optional prefix before each key */
static void
AppendKeys(StringInfo buf, Migration *m, const char *prefix, const char *suffix_fmt)
{
	for (int i = 0; i < m->nkeys; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (suffix_fmt)
			appendStringInfo(buf, suffix_fmt, i + 1);
		else
			appendStringInfo(buf, "%s%s", prefix ? prefix : "", m->keys[i]);
	}
}

/*
 * BatchSql
 *		The batch statement (see the file header).  $1 is the cursor
 *		(text[]; only when with_cursor), $2 the batch size.  A dry run's
 *		statement returns one jsonb: the rows it changed, each with its key
 *		and its changed columns before and after.
 */
static char *
BatchSql(Migration *m, bool with_cursor, bool dry_run)
{
	StringInfoData buf;
	char	   *target = psprintf("%s.", m->relref);

	initStringInfo(&buf);

	/*
	 * The window: the next batch_size keys of the table, whatever the
	 * filter says.  Without a filter the planner always walks the primary
	 * key in order and stops after the limit, so a batch costs the same
	 * anywhere in the table; a filtered ORDER BY ... LIMIT could instead be
	 * planned as a scan and sort of everything after the cursor.
	 */
	appendStringInfoString(&buf, "WITH dd_window AS (SELECT ");
	for (int i = 0; i < m->nkeys; i++)
		appendStringInfo(&buf, "%s%s AS dd_k%d", i > 0 ? ", " : "", m->keys[i], i + 1);
	appendStringInfo(&buf, " FROM ONLY %s", m->rel);
	if (with_cursor)
	{
		appendStringInfoString(&buf, " WHERE (");
		AppendKeys(&buf, m, NULL, NULL);
		appendStringInfoString(&buf, ") > (");
		for (int i = 0; i < m->nkeys; i++)
			appendStringInfo(&buf, "%s($1[%d])::%s", i > 0 ? ", " : "", i + 1, m->keytypes[i]);
		appendStringInfoString(&buf, ")");
	}
	appendStringInfoString(&buf, " ORDER BY ");
	AppendKeys(&buf, m, NULL, NULL);
	appendStringInfoString(&buf, " LIMIT $2), ");

	/* The batch: the rows of the window the filter selects, locked. */
	appendStringInfoString(&buf, "dd_batch AS (SELECT ");
	for (int i = 0; i < m->nkeys; i++)
		appendStringInfo(&buf, "%s%s AS dd_k%d", i > 0 ? ", " : "", m->keys[i], i + 1);
	if (dry_run)
		appendStringInfo(&buf, ", pg_catalog.to_jsonb(%s.*) AS dd_before", m->relref);
	appendStringInfo(&buf, " FROM ONLY %s WHERE (", m->rel);
	AppendKeys(&buf, m, NULL, NULL);
	appendStringInfoString(&buf, ") IN (SELECT ");
	AppendKeys(&buf, m, NULL, "dd_k%d");
	appendStringInfo(&buf, " FROM dd_window) AND (\n%s\n)", m->where_sql);
	appendStringInfo(&buf, " FOR NO KEY UPDATE OF %s), dd_done AS (UPDATE ONLY %s SET\n%s\n FROM dd_batch WHERE (",
					 m->relref, m->rel, m->set_sql);
	AppendKeys(&buf, m, target, NULL);
	appendStringInfoString(&buf, ") = (");
	AppendKeys(&buf, m, NULL, "dd_batch.dd_k%d");
	appendStringInfo(&buf, ") RETURNING (\n%s\n) AS dd_still", m->where_sql);
	if (dry_run)
	{
		appendStringInfoString(&buf, ", pg_catalog.jsonb_build_object(");
		for (int i = 0; i < m->nkeys; i++)
			appendStringInfo(&buf, "%s%s, %s%s", i > 0 ? ", " : "",
							 quote_literal_cstr(m->keys[i]), target, m->keys[i]);
		appendStringInfo(&buf, ") AS dd_key, dd_batch.dd_before, pg_catalog.to_jsonb(%s.*) AS dd_after", m->relref);
	}
	appendStringInfoString(&buf, ") ");
	if (dry_run)
		appendStringInfoString(&buf,
							   "SELECT pg_catalog.jsonb_build_object("
							   "'rows', (SELECT pg_catalog.count(*) FROM dd_done), "
							   "'still_selected', (SELECT pg_catalog.count(*) FROM dd_done WHERE dd_still), "
							   "'changes', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
							   "'key', dd_key, "
							   "'before', (SELECT COALESCE(pg_catalog.jsonb_object_agg(b.key, b.value), '{}') "
							   "FROM pg_catalog.jsonb_each(dd_before) b "
							   "WHERE b.value IS DISTINCT FROM dd_after OPERATOR(pg_catalog.->) b.key), "
							   "'after', (SELECT COALESCE(pg_catalog.jsonb_object_agg(a.key, a.value), '{}') "
							   "FROM pg_catalog.jsonb_each(dd_after) a "
							   "WHERE a.value IS DISTINCT FROM dd_before OPERATOR(pg_catalog.->) a.key))) "
							   "FROM dd_done), '[]'))");
	else
	{
		appendStringInfoString(&buf,
							   "SELECT (SELECT pg_catalog.count(*) FROM dd_done), "
							   "(SELECT pg_catalog.count(*) FROM dd_done WHERE dd_still), "
							   "(SELECT pg_catalog.count(*) FROM dd_window), "
							   "(SELECT ARRAY[");
		for (int i = 0; i < m->nkeys; i++)
			appendStringInfo(&buf, "%sdd_k%d::pg_catalog.text", i > 0 ? ", " : "", i + 1);
		appendStringInfoString(&buf, "] FROM dd_window ORDER BY ");
		for (int i = 0; i < m->nkeys; i++)
			appendStringInfo(&buf, "%sdd_k%d DESC", i > 0 ? ", " : "", i + 1);
		appendStringInfoString(&buf, " LIMIT 1)");
	}
	return buf.data;
}

/* The final check: does the filter still select any row? */
static char *
RemainingSql(Migration *m)
{
	return psprintf("SELECT EXISTS (SELECT 1 FROM ONLY %s WHERE (\n%s\n))",
					m->rel, m->where_sql);
}

/* ------------------------------------------------------------------------
 * Checking the expressions (dd_migration_create)
 * ------------------------------------------------------------------------
 */

typedef struct SqlPart
{
	const char *argname;
	const char *text;
} SqlPart;

static void
SqlPartErrorCallback(void *arg)
{
	SqlPart    *part = (SqlPart *) arg;

	errcontext("%s: %s", part->argname, part->text);
}

static bool
HasParamRef(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, ParamRef))
		return true;
	return raw_expression_tree_walker(node, HasParamRef, context);
}

/* Parse sql alone; it must be one statement of the given tag. */
static Node *
ParseAlone(const char *sql, const char *argname, const char *what, NodeTag tag)
{
	List	   *raw = NIL;
	RawStmt    *rs;
	MemoryContext cxt = CurrentMemoryContext;

	/* A syntax error's position would point into the caller's statement. */
	PG_TRY();
	{
		raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->cursorpos = 0;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s", argname, what)));
	rs = linitial_node(RawStmt, raw);
	if (nodeTag(rs->stmt) != tag || HasParamRef(rs->stmt, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s", argname, what)));
	return rs->stmt;
}

/*
 * PrepareChecked
 *		Prepare sql (and forget it): the parser's and planner's checks of
 *		names and types.  An error is reported against argname, without
 *		the generated statement around it.
 */
static void
PrepareChecked(const char *sql, int nargs, Oid *argtypes, const char *argname,
			   const char *text)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_freeplan(plan);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->internalquery = NULL;
		edata->internalpos = 0;
		edata->cursorpos = 0;
		edata->context = psprintf("%s: %s", argname, text);
		ReThrowError(edata);
	}
	PG_END_TRY();
}

/*
 * CheckExpressions
 *		set_sql must be a SET list and nothing more, where_sql one boolean
 *		expression and nothing more, no parameter in either, no key column
 *		assigned; then the batch statement must prepare (which resolves
 *		every name and checks every type).
 */
static void
CheckExpressions(Migration *m)
{
	ErrorContextCallback errcb;
	SqlPart		part;
	UpdateStmt *upd;
	SelectStmt *sel;
	ListCell   *lc;
	Oid			argtypes[2] = {TEXTARRAYOID, INT4OID};
	AsCaller	as;
	MigrationEnv noswitch = {0};

	errcb.callback = SqlPartErrorCallback;
	errcb.arg = &part;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	part.argname = "set_sql";
	part.text = m->set_sql;
	upd = (UpdateStmt *) ParseAlone(psprintf("UPDATE %s SET\n%s\n", m->rel, m->set_sql),
									"set_sql", "a SET list: column = expression, ...",
									T_UpdateStmt);
	if (upd->whereClause || upd->fromClause || UpdateReturning(upd) || upd->withClause)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("set_sql must be a SET list: column = expression, ...")));
	foreach(lc, upd->targetList)
	{
		ResTarget  *rt = lfirst_node(ResTarget, lc);

		for (int i = 0; i < m->nkeys; i++)
			if (strcmp(quote_identifier(rt->name), m->keys[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("set_sql must not assign the primary key column %s", m->keys[i]),
						 errdetail("Batches walk the table in primary-key order.")));
	}

	part.argname = "where_sql";
	part.text = m->where_sql;
	sel = (SelectStmt *) ParseAlone(psprintf("SELECT 1 WHERE\n%s\n", m->where_sql),
									"where_sql", "one boolean expression",
									T_SelectStmt);
	if (sel->op != SETOP_NONE || sel->fromClause || sel->groupClause ||
		sel->havingClause || sel->windowClause || sel->sortClause ||
		sel->limitCount || sel->limitOffset || sel->lockingClause ||
		sel->withClause || sel->intoClause || sel->distinctClause ||
		sel->valuesLists || list_length(sel->targetList) != 1 ||
		sel->whereClause == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("where_sql must be one boolean expression")));

	error_context_stack = errcb.previous;

	/*
	 * Names and types: each alone (so an error names its argument), then
	 * the statement that will run.
	 */
	AsCallerBegin(&noswitch, m, &as);
	PrepareChecked(psprintf("SELECT 1 FROM ONLY %s WHERE (\n%s\n)", m->rel, m->where_sql),
				   0, NULL, "where_sql", m->where_sql);
	PrepareChecked(psprintf("UPDATE ONLY %s SET\n%s\n WHERE false", m->rel, m->set_sql),
				   0, NULL, "set_sql", m->set_sql);
	PrepareChecked(BatchSql(m, true, false), 2, argtypes, "set_sql and where_sql",
				   psprintf("SET %s WHERE %s", m->set_sql, m->where_sql));
	AsCallerEnd(&as);
}

/* A text argument that must be present and at most max_chars long. */
static char *
MigrationTextArg(FunctionCallInfo fcinfo, int argno, const char *argname,
				 int max_chars)
{
	return text_to_cstring(DdTextArg(fcinfo, argno, argname, max_chars));
}

/*
 * dd_migration_create(name, relation, set_sql, where_sql, batch_size,
 *					   run_after, keep_in_step)
 */
Datum
dd_migration_create(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration	m = {0};
	Datum		values[10];
	char		nulls[10] = "          ";
	Oid			argtypes[10] = {TEXTOID, OIDOID, TEXTARRAYOID, TEXTOID, TEXTOID,
								INT4OID, TEXTOID, TEXTOID, BOOLOID, OIDOID};
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *keydatums;
	AclResult	aclresult;

	m.name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be null")));
	m.relid = PG_GETARG_OID(1);
	m.set_sql = MigrationTextArg(fcinfo, 2, "set_sql", DD_MAX_MIGRATION_SQL);
	m.where_sql = MigrationTextArg(fcinfo, 3, "where_sql", DD_MAX_MIGRATION_SQL);
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_size must not be null")));
	m.batch_size = PG_GETARG_INT32(4);
	if (m.batch_size <= 0 || m.batch_size > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 100000, not %d", m.batch_size),
				 errhint("About 100 rows per batch keeps each transaction's row locks short.")));
	m.run_after = PG_ARGISNULL(5) ? NULL :
		MigrationTextArg(fcinfo, 5, "run_after", DD_MAX_MIGRATION_NAME);
	m.keep_in_step = PG_ARGISNULL(6) ? false : PG_GETARG_BOOL(6);
	m.search_path = GetConfigOptionByName("search_path", NULL, false);

	EnvInit(&env, DdFunctionSchema(fcinfo));
	MigrationResolve(&m);

	/* The creator must be able to update the table at all (some column). */
	aclresult = pg_class_aclcheck(m.relid, env.caller, ACL_UPDATE);
	if (aclresult != ACLCHECK_OK)
		aclresult = pg_attribute_aclcheck_all(m.relid, env.caller, ACL_UPDATE, ACLMASK_ANY);
	if (aclresult != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(m.relid)),
				 errdetail("A migration's batches update the table with the rights of the role that runs them.")));
	if (m.keep_in_step)
	{
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(m.relid));
		Oid			relowner;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for relation %u", m.relid);
		relowner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
		ReleaseSysCache(tuple);
		if (!has_privs_of_role(env.caller, relowner))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s to keep it in step", get_rel_name(m.relid)),
					 errdetail("keep_in_step adds triggers to the table while the migration runs and drops them when it ends.")));
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	CheckExpressions(&m);

	if (m.run_after != NULL)
	{
		Oid			a[1] = {TEXTOID};
		Datum		v[1] = {CStringGetTextDatum(m.run_after)};

		if (Book(&env, "SELECT 1 FROM %s.migrations WHERE name OPERATOR(pg_catalog.=) $1",
				 1, a, v, NULL, false) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("migration \"%s\" does not exist", m.run_after),
					 errdetail("run_after names the migration that must complete first.")));
	}

	keydatums = palloc(sizeof(Datum) * m.nkeys);
	for (int i = 0; i < m.nkeys; i++)
		keydatums[i] = CStringGetTextDatum(m.keys[i]);

	values[0] = CStringGetTextDatum(m.name);
	values[1] = ObjectIdGetDatum(m.relid);
	values[2] = PointerGetDatum(construct_array(keydatums, m.nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = CStringGetTextDatum(m.set_sql);
	values[4] = CStringGetTextDatum(m.where_sql);
	values[5] = Int32GetDatum(m.batch_size);
	values[6] = m.run_after ? CStringGetTextDatum(m.run_after) : (Datum) 0;
	if (m.run_after == NULL)
		nulls[6] = 'n';
	values[7] = CStringGetTextDatum(m.search_path);
	values[8] = BoolGetDatum(m.keep_in_step);
	values[9] = ObjectIdGetDatum(env.caller);

	PG_TRY();
	{
		Book(&env,
			 "INSERT INTO %s.migrations (name, relation, key_columns, set_sql, where_sql,"
			 " batch_size, run_after, search_path, keep_in_step, owner)"
			 " VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5, $6, $7, $8, $9,"
			 " $10::pg_catalog.regrole)",
			 10, argtypes, values, nulls, false);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* The only unique key a new row can violate is the name. */
		if (edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
		{
			FlushErrorState();
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration \"%s\" already exists", m.name)));
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	SPI_finish();
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * The runner's lock
 * ------------------------------------------------------------------------
 */

static void
MigrationLockTag(LOCKTAG *tag, int32 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, DD_MIGRATION_LOCK_KEY, (uint32) id, 2);
}

/* Take the runner's lock of migration id, without waiting. */
static bool
MigrationLockTry(int32 id)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	MigrationLockTag(&tag, id);
	res = LockAcquire(&tag, ExclusiveLock, true, true);
	if (res == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (res == LOCKACQUIRE_ALREADY_HELD)
	{
		/* this very process runs it already (a chain that comes back) */
		LockRelease(&tag, ExclusiveLock, true);
		return false;
	}
	return true;
}

static void
MigrationLockRelease(int32 id)
{
	LOCKTAG		tag;

	MigrationLockTag(&tag, id);
	LockRelease(&tag, ExclusiveLock, true);
}

static void
ErrorAlreadyRunning(Migration *m)
{
	if (m->runner_pid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration \"%s\" is already running", m->name),
				 errdetail("Process %d runs it.", m->runner_pid),
				 errhint("Wait for it, or stop it with dd_migration_cancel.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("migration \"%s\" is already running", m->name),
			 errhint("Wait for it, or stop it with dd_migration_cancel.")));
}

/* ------------------------------------------------------------------------
 * Running: shared by CALL dd_migration_run and the background worker
 * ------------------------------------------------------------------------
 */

typedef struct RunCtx
{
	MigrationEnv *env;
	bool		worker;
	MemoryContext runcxt;		/* survives the commits of a run */
	MemoryContext batchcxt;		/* reset before every batch */
	int64		max_batches;	/* -1: no limit */
	int64		batches;		/* batches committed by this run */
	int			pause_ms;		/* wait after each batch that is not the last */
	const char *current;		/* the migration being run */
} RunCtx;

/*
 * Pause
 *		Wait pause_ms milliseconds (dd_clipper.migration_batch_pause),
 *		between two transactions, so the wait holds no lock and no
 *		snapshot.  Interrupts (a cancel, pg_terminate_backend) end it.
 */
static void
Pause(int pause_ms)
{
	TimestampTz end;
	long		left;

	if (pause_ms <= 0)
		return;
	end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause_ms);
	while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end)) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * NextTransaction
 *		Commit and begin the next transaction: through SPI_commit in a
 *		procedure, by hand in the worker.  SPI stays connected.  With
 *		pause, wait rc->pause_ms in between.
 */
static void
NextTransaction(RunCtx *rc, bool pause)
{
	if (!rc->worker)
	{
		SPI_commit();
		/* the new transaction has no snapshot yet: the wait holds none */
		if (pause)
			Pause(rc->pause_ms);
		return;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (pause)
		Pause(rc->pause_ms);
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* The name of the keep-in-step trigger of migration id for one event */
static char *
KeepInStepTrigger(Migration *m, const char *event)
{
	return psprintf("dd_migration_%d_%s", m->id, event);
}

/*
 * KeepInStep
 *		Put (on) or remove (off) the statement triggers that apply the SET
 *		list to rows other writers insert or update while the migration
 *		runs.  As the caller: it needs the TRIGGER privilege.
 */
static void
KeepInStep(RunCtx *rc, Migration *m, bool on)
{
	AsCaller	as;
	const char *events[2] = {"INSERT", "UPDATE"};
	const char *names[2] = {"insert", "update"};

	AsCallerBegin(rc->env, m, &as);
	for (int i = 0; i < 2; i++)
	{
		char	   *sql;
		char	   *trig = KeepInStepTrigger(m, names[i]);

		if (on)
			sql = psprintf("CREATE OR REPLACE TRIGGER %s AFTER %s ON %s"
						   " REFERENCING NEW TABLE AS dd_new FOR EACH STATEMENT"
						   " WHEN (pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.<) 1)"
						   " EXECUTE FUNCTION %s.dd_migration_keep_in_step(%s)",
						   quote_identifier(trig), events[i], m->rel, rc->env->nsp,
						   quote_literal_cstr(m->name));
		else
		{
			Oid			argtypes[2] = {OIDOID, TEXTOID};
			Datum		values[2] = {ObjectIdGetDatum(m->relid), CStringGetTextDatum(trig)};

			if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1"
									  " AND tgname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
									  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "trigger lookup failed");
			if (SPI_processed == 0)
				continue;
			sql = psprintf("DROP TRIGGER %s ON %s", quote_identifier(trig), m->rel);
		}
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not %s trigger %s", on ? "create" : "drop", trig);
	}
	AsCallerEnd(&as);
}

/*
 * Claim
 *		Mark m running by this process (a completed migration starts a new
 *		scan), and load where it resumes.  Its lock is already held.
 */
static void
Claim(RunCtx *rc, Migration *m)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	bool		isnull;
	Datum		cursor;
	MemoryContext old;

	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int32GetDatum(MyProcPid);
	if (Book(rc->env,
			 "UPDATE %s.migrations SET status = 'running', runner_pid = $2,"
			 " started_at = pg_catalog.clock_timestamp(), updated_at = NULL,"
			 " run_processed = 0, error = NULL,"
			 " cursor = CASE WHEN status OPERATOR(pg_catalog.=) 'completed' THEN NULL ELSE cursor END,"
			 " passes = CASE WHEN status OPERATOR(pg_catalog.=) 'completed' THEN 0 ELSE passes END,"
			 " completed_at = NULL"
			 " WHERE name OPERATOR(pg_catalog.=) $1 RETURNING cursor",
			 2, argtypes, values, NULL, false) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" does not exist", m->name)));
	cursor = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	old = MemoryContextSwitchTo(rc->runcxt);
	m->cursor_null = isnull;
	m->cursor = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(cursor));
	MemoryContextSwitchTo(old);
	if (m->keep_in_step)
		KeepInStep(rc, m, true);
}

/*
 * DoBatch
 *		One batch of m and its bookkeeping, in the current transaction.
 *		BATCH_STOPPED means the migration was canceled meanwhile: the
 *		caller must roll the batch back.
 */
static BatchResult
DoBatch(RunCtx *rc, Migration *m, int64 *pass_updated, int *empty_passes)
{
	AsCaller	as;
	Oid			argtypes[6] = {TEXTOID, INT8OID, TEXTARRAYOID, INT4OID, BOOLOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = "      ";
	Oid			batch_types[2] = {TEXTARRAYOID, INT4OID};
	Datum		batch_values[2];
	char		batch_nulls[2] = "  ";
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	int64		updated;
	int64		still;
	int64		taken;
	Datum		last = (Datum) 0;
	bool		last_null;
	BatchResult result = BATCH_MORE;
	int			rc_spi;

	/* The batch, as the caller. */
	AsCallerBegin(rc->env, m, &as);
	batch_in_progress = m->name;
	batch_values[0] = m->cursor_null ? (Datum) 0 : m->cursor;
	batch_nulls[0] = m->cursor_null ? 'n' : ' ';
	batch_values[1] = Int32GetDatum(m->batch_size);
	rc_spi = SPI_execute_with_args(m->cursor_null ? m->sql_first : m->sql_next,
								   2, batch_types, batch_values, batch_nulls, false, 0);
	if (rc_spi != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "migration batch returned %s", SPI_result_code_string(rc_spi));
	batch_in_progress = NULL;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	updated = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	still = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	taken = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	last = SPI_getbinval(row, desc, 4, &last_null);
	if (!last_null)
		last = PointerGetDatum(PG_DETOAST_DATUM_COPY(last));
	if (still > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\": where_sql still selects " INT64_FORMAT " of the rows set_sql updated",
						m->name, still),
				 errdetail("where_sql must select only the rows still to do; a migration whose updates it keeps selecting would never complete."),
				 errhint("Make where_sql false for a row once set_sql has updated it.")));
	*pass_updated += updated;

	/* End of the key: the final check, or another pass. */
	if (taken < m->batch_size)
	{
		bool		left;

		if (SPI_execute(m->sql_check, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "migration check failed");
		left = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
		if (!left)
			result = BATCH_COMPLETED;
		else
		{
			/*
			 * Rows were written behind the cursor meanwhile: walk again.
			 * Two passes in a row that update nothing while the check keeps
			 * finding rows mean the filter does not select what the batches
			 * see (a volatile where_sql, say): stop instead of spinning.
			 */
			*empty_passes = (*pass_updated == 0) ? *empty_passes + 1 : 0;
			if (*empty_passes >= 2)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration \"%s\": where_sql still selects rows that no batch updates",
								m->name),
						 errdetail("Two passes over the whole table updated nothing, yet the final check found rows."),
						 errhint("where_sql must give the same answer for a row every time it is evaluated.")));
			*pass_updated = 0;
			result = BATCH_NEW_PASS;
		}
	}
	AsCallerEnd(&as);

	/* Its bookkeeping, in the same transaction: counted if and only if applied. */
	values[0] = CStringGetTextDatum(m->name);
	values[1] = Int64GetDatum(updated);
	if (result == BATCH_MORE && !last_null)
		values[2] = last;
	else if (result == BATCH_MORE)
	{
		values[2] = m->cursor;
		nulls[2] = m->cursor_null ? 'n' : ' ';
	}
	else
		nulls[2] = 'n';
	values[3] = Int32GetDatum(result == BATCH_NEW_PASS ? 1 : 0);
	values[4] = BoolGetDatum(result == BATCH_COMPLETED);
	values[5] = Int32GetDatum(MyProcPid);
	if (Book(rc->env,
			 "UPDATE %s.migrations SET processed = processed OPERATOR(pg_catalog.+) $2,"
			 " run_processed = run_processed OPERATOR(pg_catalog.+) $2,"
			 " batches = batches OPERATOR(pg_catalog.+) 1, cursor = $3,"
			 " passes = passes OPERATOR(pg_catalog.+) $4,"
			 " updated_at = pg_catalog.clock_timestamp(),"
			 " status = CASE WHEN $5 THEN 'completed' ELSE status END,"
			 " completed_at = CASE WHEN $5 THEN pg_catalog.clock_timestamp() END,"
			 " runner_pid = CASE WHEN $5 THEN NULL ELSE runner_pid END"
			 " WHERE name OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
			 " AND runner_pid OPERATOR(pg_catalog.=) $6",
			 6, argtypes, values, nulls, false) == 0)
		return BATCH_STOPPED;

	/* Where the next batch starts: kept across the commit. */
	if (!m->cursor_null)
		pfree(DatumGetPointer(m->cursor));
	if (result == BATCH_MORE && !last_null)
	{
		MemoryContext old = MemoryContextSwitchTo(rc->runcxt);

		m->cursor = datumCopy(last, false, -1);
		m->cursor_null = false;
		MemoryContextSwitchTo(old);
	}
	else if (result != BATCH_MORE)
	{
		m->cursor = (Datum) 0;
		m->cursor_null = true;
	}
	else
		m->cursor_null = true;
	return result;
}

/* Record how a run ended that did not complete: paused or failed. */
static void
RecordEnd(RunCtx *rc, Migration *m, const char *status, ErrorData *edata)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[4];
	char		nulls[4] = "    ";

	values[0] = CStringGetTextDatum(m->name);
	values[1] = CStringGetTextDatum(status);
	if (edata != NULL)
		values[2] = CStringGetTextDatum(psprintf("%s: %s",
												 unpack_sql_state(edata->sqlerrcode),
												 edata->message));
	else
		nulls[2] = 'n';
	values[3] = Int32GetDatum(MyProcPid);
	Book(rc->env,
		 "UPDATE %s.migrations SET status = $2, error = $3, runner_pid = NULL"
		 " WHERE name OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'"
		 " AND runner_pid OPERATOR(pg_catalog.=) $4",
		 4, argtypes, values, nulls, false);
}

static void
ReportActivity(RunCtx *rc, Migration *m)
{
	char	   *activity;

	if (!rc->worker)
		return;
	activity = psprintf("dd_clipper migration \"%s\": batch " INT64_FORMAT " of this run, table %s",
						m->name, rc->batches + 1, m->rel);
	pgstat_report_activity(STATE_RUNNING, activity);
	pfree(activity);
}

/*
 * RunBatch
 *		One batch in a subtransaction: released when it applied, rolled
 *		back when the migration was canceled meanwhile or the batch failed
 *		(then *error is the error, copied into the run's context).
 */
static BatchResult
RunBatch(RunCtx *rc, Migration *m, int64 *pass_updated, int *empty_passes,
		 ErrorData **error)
{
	volatile BatchResult result = BATCH_MORE;

	*error = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(rc->batchcxt);
	PG_TRY();
	{
		result = DoBatch(rc, m, pass_updated, empty_passes);
		if (result == BATCH_STOPPED)
			RollbackAndReleaseCurrentSubTransaction();
		else
			ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		batch_in_progress = NULL;
		MemoryContextSwitchTo(rc->runcxt);
		*error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	return result;
}

/*
 * RunOne
 *		Run migration name until it completes, is canceled or the batch
 *		budget is spent.  Returns true when it completed.  A batch that
 *		fails is rolled back, the failure recorded and committed, and the
 *		error returned in *error (foreground: the caller re-raises it).
 */
static bool
RunOne(RunCtx *rc, const char *name, bool have_lock, ErrorData **error)
{
	Migration  *m;
	MemoryContext old;
	volatile BatchResult result = BATCH_MORE;
	ErrorData  *volatile edata = NULL;
	volatile bool paused = false;
	ErrorData  *batch_error;
	int64	   *pass_updated;
	int		   *empty_passes;

	old = MemoryContextSwitchTo(rc->runcxt);
	pass_updated = palloc0(sizeof(int64));
	empty_passes = palloc0(sizeof(int));
	m = MigrationLoad(rc->env, name, false);
	CheckOwner(rc->env, m);
	CheckPredecessor(rc->env, m);
	MigrationResolve(m);
	m->sql_first = BatchSql(m, false, false);
	m->sql_next = BatchSql(m, true, false);
	m->sql_check = RemainingSql(m);
	MemoryContextSwitchTo(old);

	if (!have_lock && !MigrationLockTry(m->id))
		ErrorAlreadyRunning(m);
	rc->current = m->name;

	PG_TRY();
	{
		Claim(rc, m);
		NextTransaction(rc, false);
		for (;;)
		{
			if (rc->max_batches >= 0 && rc->batches >= rc->max_batches)
			{
				paused = true;
				break;
			}
			CHECK_FOR_INTERRUPTS();
			MemoryContextReset(rc->batchcxt);
			ReportActivity(rc, m);
			result = RunBatch(rc, m, pass_updated, empty_passes, &batch_error);
			edata = batch_error;
			MemoryContextSwitchTo(rc->runcxt);

			if (edata != NULL || result == BATCH_STOPPED)
				break;
			rc->batches++;
			/* no pause after the last batch of the run */
			NextTransaction(rc, result != BATCH_COMPLETED &&
							(rc->max_batches < 0 || rc->batches < rc->max_batches));
			if (result == BATCH_COMPLETED)
				break;
		}

		/* How it ended, committed before anything is raised. */
		if (edata != NULL)
			RecordEnd(rc, m, edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "paused" : "failed", edata);
		else if (paused)
			RecordEnd(rc, m, "paused", NULL);
		/*
		 * keep_in_step triggers stay while the migration is only paused
		 * (new rows keep getting the SET list until it runs again) and go
		 * when it completed, failed or was canceled.
		 */
		if (m->keep_in_step &&
			(result == BATCH_COMPLETED || result == BATCH_STOPPED ||
			 (edata != NULL && edata->sqlerrcode != ERRCODE_QUERY_CANCELED)))
			KeepInStep(rc, m, false);
		NextTransaction(rc, false);
	}
	PG_CATCH();
	{
		MigrationLockRelease(m->id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MigrationLockRelease(m->id);

	*error = edata;
	return edata == NULL && result == BATCH_COMPLETED;
}

/*
 * RunChain
 *		Run migration first, then every migration that runs after one that
 *		completed, in the order they were created.
 */
static ErrorData *
RunChain(RunCtx *rc, const char *first, bool first_locked)
{
	bool		have_lock = first_locked;

	List	   *queue;
	MemoryContext old = MemoryContextSwitchTo(rc->runcxt);

	queue = list_make1(pstrdup(first));
	MemoryContextSwitchTo(old);
	while (queue != NIL)
	{
		char	   *name = linitial(queue);
		ErrorData  *edata = NULL;
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];

		queue = list_delete_first(queue);
		if (!RunOne(rc, name, have_lock, &edata))
			return edata;
		have_lock = false;

		values[0] = CStringGetTextDatum(name);
		Book(rc->env,
			 "SELECT name FROM %s.migrations WHERE run_after OPERATOR(pg_catalog.=) $1"
			 " AND status OPERATOR(pg_catalog.<>) 'completed' ORDER BY id",
			 1, argtypes, values, NULL, false);
		old = MemoryContextSwitchTo(rc->runcxt);
		for (uint64 i = 0; i < SPI_processed; i++)
			queue = lappend(queue, SPI_getvalue(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(old);
	}
	return NULL;
}

/*
 * CALL dd_migration_run(name, max_batches)
 */
Datum
dd_migration_run(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	RunCtx		rc = {0};
	char	   *name;
	ErrorData  *edata;

	if (fcinfo->context == NULL || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("dd_migration_run must be called with CALL outside a transaction block"),
				 errdetail("It commits after every batch."),
				 errhint("Inside a transaction, dd_migration_start runs the migration in a background worker.")));
	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	rc.max_batches = -1;
	rc.pause_ms = dd_migration_batch_pause;
	if (!PG_ARGISNULL(1))
	{
		rc.max_batches = PG_GETARG_INT32(1);
		if (rc.max_batches <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_batches must be positive, not " INT64_FORMAT, rc.max_batches),
					 errhint("Pass NULL to run until the migration completes.")));
	}

	EnvInit(&env, DdFunctionSchema(fcinfo));
	rc.env = &env;
	rc.worker = false;
	rc.runcxt = AllocSetContextCreate(CurrentMemoryContext, "dd_clipper migration run",
									  ALLOCSET_DEFAULT_SIZES);
	rc.batchcxt = AllocSetContextCreate(rc.runcxt, "dd_clipper migration batch",
										ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	edata = RunChain(&rc, name, false);
	SPI_finish();
	if (edata != NULL)
	{
		/* Say which migration failed, not which generated statement. */
		edata->internalquery = NULL;
		edata->internalpos = 0;
		edata->context = psprintf("a batch of migration \"%s\"", rc.current);
		ReThrowError(edata);
	}
	MemoryContextDelete(rc.runcxt);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * The background worker
 * ------------------------------------------------------------------------
 */

static void
LaunchFail(MigrationLaunch *launch, ErrorData *edata)
{
	launch->sqlstate = edata->sqlerrcode;
	snprintf(launch->message, sizeof(launch->message), "%s", edata->message);
	pg_write_barrier();
	pg_atomic_write_u32(&launch->state, LAUNCH_FAILED);
}

/*
 * dd_migration_worker_main
 *		Entry point of the worker dd_migration_start launches.  main_arg is
 *		the handle of the dynamic shared memory segment that holds the
 *		launch; the worker reports there whether it claimed the migration,
 *		detaches, and runs the chain.
 */
void
dd_migration_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	MigrationLaunch *launch;
	MigrationLaunch params;
	MigrationEnv env = {0};
	RunCtx		rc = {0};
	Migration  *m = NULL;
	ErrorData  *edata = NULL;
	MemoryContext workcxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	CurrentResourceOwner = ResourceOwnerCreate(NULL, "dd_clipper migration");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);			/* the session that started it is gone */
	launch = dsm_segment_address(seg);
	memcpy(&params, launch, offsetof(MigrationLaunch, state));

	BackgroundWorkerInitializeConnectionByOid(params.dboid, params.session_user, 0);
	SetConfigOption("application_name", "dd_clipper migration", PGC_USERSET, PGC_S_SESSION);

	workcxt = AllocSetContextCreate(TopMemoryContext, "dd_clipper migration worker",
									ALLOCSET_DEFAULT_SIZES);

	StartTransactionCommand();
	/* what is loaded now (env, the migration) lives as long as the worker */
	MemoryContextSwitchTo(workcxt);
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		EnvInit(&env, params.nspid);
		env.caller = params.caller;
		env.switch_user = true;
		/* SPI_connect switches to SPI's own context: env is made before */
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		m = MigrationLoad(&env, params.name, false);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(workcxt);
		edata = CopyErrorData();
		LaunchFail(launch, edata);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/*
	 * The handshake: take the runner's lock (held for the whole run) and
	 * tell dd_migration_start whether we got it.
	 */
	if (!MigrationLockTry(m->id))
	{
		pg_atomic_write_u32(&launch->state, LAUNCH_BUSY);
		proc_exit(0);
	}
	pg_atomic_write_u32(&launch->state, LAUNCH_RUNNING);
	dsm_detach(seg);

	rc.env = &env;
	rc.worker = true;
	rc.max_batches = -1;
	rc.pause_ms = params.pause_ms;
	rc.runcxt = AllocSetContextCreate(workcxt, "dd_clipper migration run", ALLOCSET_DEFAULT_SIZES);
	rc.batchcxt = AllocSetContextCreate(rc.runcxt, "dd_clipper migration batch", ALLOCSET_DEFAULT_SIZES);
	rc.current = params.name;

	PG_TRY();
	{
		edata = RunChain(&rc, params.name, true);
	}
	PG_CATCH();
	{
		/*
		 * An error outside a batch (the table dropped, a privilege missing
		 * for keep_in_step): record it on the migration being run.
		 */
		Oid			argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
		Datum		values[3];

		MemoryContextSwitchTo(workcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		values[0] = CStringGetTextDatum(rc.current);
		values[1] = CStringGetTextDatum(psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode),
												 edata->message));
		values[2] = Int32GetDatum(MyProcPid);
		Book(&env,
			 "UPDATE %s.migrations SET status = 'failed', error = $2, runner_pid = NULL"
			 " WHERE name OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.<>) 'completed'"
			 " AND (runner_pid IS NULL OR runner_pid OPERATOR(pg_catalog.=) $3)",
			 3, argtypes, values, NULL, false);
	}
	PG_END_TRY();

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	if (edata != NULL)
		ereport(LOG,
				(errmsg("dd_clipper migration stopped: %s", edata->message)));
	proc_exit(0);
}

/*
 * dd_migration_start(name) returns the worker's process id
 *
 * Launches a dynamic background worker that connects as this session's
 * login role and runs the batches as the current role, and waits until it
 * has claimed the migration (so a second start, or a run already in
 * progress, is an error here and not a silent worker exit).
 */
Datum
dd_migration_start(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration  *m;
	char	   *name;
	dsm_segment *seg;
	MigrationLaunch *launch;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	pid_t		pid = 0;
	LaunchState state = LAUNCH_WAITING;
	long		waited = 0;

	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	EnvInit(&env, DdFunctionSchema(fcinfo));

	/*
	 * Superuser rights reached through a SECURITY DEFINER function from a
	 * session that has none would follow the worker for hours: refuse.
	 */
	if (superuser_arg(env.caller) && !superuser_arg(GetSessionUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("dd_migration_start refuses to run a migration with superuser rights this session's login role does not have"),
				 errdetail("The current role is a superuser, but the session's role \"%s\" is not (a SECURITY DEFINER function?).",
						   GetUserNameFromId(GetSessionUserId(), false))));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = MigrationLoad(&env, name, false);
	CheckOwner(&env, m);
	CheckPredecessor(&env, m);
	MigrationResolve(m);
	if (TransactionIdIsCurrentTransactionId(m->xmin))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" was created or changed by this transaction", name),
				 errhint("Commit first: the worker runs in its own transactions and cannot see it yet.")));
	if (!MigrationLockTry(m->id))
		ErrorAlreadyRunning(m);
	MigrationLockRelease(m->id);
	SPI_finish();

	seg = dsm_create(sizeof(MigrationLaunch), 0);
	launch = dsm_segment_address(seg);
	memset(launch, 0, sizeof(MigrationLaunch));
	launch->dboid = MyDatabaseId;
	launch->session_user = GetSessionUserId();
	launch->caller = env.caller;
	launch->nspid = env.nspid;
	launch->pause_ms = dd_migration_batch_pause;
	snprintf(launch->name, sizeof(launch->name), "%s", name);
	pg_atomic_init_u32(&launch->state, LAUNCH_WAITING);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", "dd_clipper");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", "dd_migration_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "dd_clipper migration %d", m->id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", "dd_clipper migration");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a background worker for migration \"%s\"", name),
				 errhint("Every background worker slot is taken: raise max_worker_processes, or run it with CALL dd_migration_run.")));

	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("the background worker for migration \"%s\" did not start", name),
				 errhint("See the server log.")));

	/* Wait for the worker to claim it (or to say why it could not). */
	for (;;)
	{
		pid_t		unused;

		pg_read_barrier();
		state = (LaunchState) pg_atomic_read_u32(&launch->state);
		if (state != LAUNCH_WAITING)
			break;
		if (GetBackgroundWorkerPid(handle, &unused) == BGWH_STOPPED)
		{
			/* it may have written its state just before it stopped */
			state = (LaunchState) pg_atomic_read_u32(&launch->state);
			break;
		}
		if (waited >= DD_START_TIMEOUT_MS)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited += 10;
	}

	switch (state)
	{
		case LAUNCH_RUNNING:
			break;
		case LAUNCH_BUSY:
			dsm_detach(seg);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("migration \"%s\" is already running", name),
					 errhint("Wait for it, or stop it with dd_migration_cancel.")));
			break;
		case LAUNCH_FAILED:
			{
				int			sqlstate = launch->sqlstate;
				char	   *message = pstrdup(launch->message);

				dsm_detach(seg);
				ereport(ERROR,
						(errcode(sqlstate),
						 errmsg("migration \"%s\" could not start: %s", name, message)));
			}
			break;
		case LAUNCH_WAITING:
			dsm_detach(seg);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("the background worker for migration \"%s\" stopped before it claimed the migration", name),
					 errhint("See the server log.")));
			break;
	}
	dsm_detach(seg);
	PG_RETURN_INT32((int32) pid);
}

/*
 * dd_migration_cancel(name) returns whether it canceled anything
 *
 * A runner notices at its next batch: the batch's bookkeeping finds the
 * migration no longer running, and the batch is rolled back.
 */
Datum
dd_migration_cancel(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration  *m;
	char	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		n;

	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	EnvInit(&env, DdFunctionSchema(fcinfo));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = MigrationLoad(&env, name, false);
	CheckOwner(&env, m);
	/* No runner will remove them: take the keep-in-step triggers off now. */
	if (m->keep_in_step && MigrationLockTry(m->id))
	{
		RunCtx		rc = {.env = &env};

		MigrationLockRelease(m->id);
		MigrationResolve(m);
		KeepInStep(&rc, m, false);
	}
	values[0] = CStringGetTextDatum(name);
	n = Book(&env,
			 "UPDATE %s.migrations SET status = 'canceled', runner_pid = NULL"
			 " WHERE name OPERATOR(pg_catalog.=) $1"
			 " AND status OPERATOR(pg_catalog.<>) ALL (ARRAY['completed', 'canceled'])",
			 1, argtypes, values, NULL, false);
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}

/*
 * dd_migration_dry_run(name) returns jsonb
 *
 * The next batch, in a subtransaction that is rolled back: {"rows": n,
 * "still_selected": k, "changes": [{"key": {...}, "before": {...},
 * "after": {...}}]} with only the columns the batch changes.  Its row locks
 * are released with the rollback; identity and sequence values it drew are
 * not given back (as with any rolled-back INSERT).
 */
Datum
dd_migration_dry_run(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration  *m;
	char	   *name;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile Datum result = (Datum) 0;
	volatile bool isnull = true;
	Oid			argtypes[2] = {TEXTARRAYOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = "  ";

	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	EnvInit(&env, DdFunctionSchema(fcinfo));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = MigrationLoad(&env, name, false);
	CheckOwner(&env, m);
	MigrationResolve(m);

	values[0] = m->cursor_null ? (Datum) 0 : m->cursor;
	nulls[0] = m->cursor_null ? 'n' : ' ';
	values[1] = Int32GetDatum(m->batch_size);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		AsCaller	as;
		Datum		d;
		bool		null;

		AsCallerBegin(&env, m, &as);
		if (SPI_execute_with_args(BatchSql(m, !m->cursor_null, true), 2, argtypes,
								  values, nulls, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "dry run failed");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null);
		MemoryContextSwitchTo(cxt);
		isnull = null;
		if (!null)
			result = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		AsCallerEnd(&as);
	}
	PG_CATCH();
	{
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		PG_RE_THROW();
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/*
 * dd_migration_remaining(name) returns bigint
 *
 * 0 for a completed migration; otherwise the planner's estimate of the
 * rows where_sql selects (a plan, not a scan), or NULL when the migration's
 * statement no longer plans (its table or a column is gone).
 */
Datum
dd_migration_remaining(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration  *m;
	char	   *name;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile double rows = -1;

	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	EnvInit(&env, DdFunctionSchema(fcinfo));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = MigrationLoad(&env, name, false);
	if (strcmp(m->status, "completed") == 0)
	{
		SPI_finish();
		PG_RETURN_INT64(0);
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		AsCaller	as;
		SPIPlanPtr	plan;
		CachedPlan *cplan;
		PlannedStmt *stmt;

		MigrationResolve(m);
		AsCallerBegin(&env, m, &as);
		plan = SPI_prepare(psprintf("SELECT 1 FROM ONLY %s WHERE (\n%s\n)", m->rel, m->where_sql),
						   0, NULL);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed");
		cplan = SPI_plan_get_cached_plan(plan);
		if (cplan != NULL)
		{
			stmt = linitial_node(PlannedStmt, cplan->stmt_list);
			rows = stmt->planTree->plan_rows;
			ReleaseCachedPlan(cplan, NULL);
		}
		SPI_freeplan(plan);
		AsCallerEnd(&as);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		rows = -1;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	SPI_finish();
	if (rows < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) rows);
}

/*
 * dd_migration_keep_in_step() trigger
 *
 * AFTER INSERT or AFTER UPDATE, FOR EACH STATEMENT, with the new rows as
 * the transition table dd_new; the argument is the migration's name.
 * Applies the migration's SET list to the rows just written that its
 * filter selects, in one UPDATE, with the rights of the migration's owner
 * (who created it with UPDATE and TRIGGER rights on the table), so a
 * writer that may insert but not update still gets its rows migrated.
 * The trigger's WHEN clause (pg_trigger_depth() < 1) keeps that UPDATE
 * from firing it again.
 */
Datum
dd_migration_keep_in_step(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	MigrationEnv env;
	Migration  *m;
	StringInfoData sql;
	AsCaller	as;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("dd_migration_keep_in_step must be an AFTER ... FOR EACH STATEMENT trigger with the migration's name")));

	/* The migration's own batch: its rows are done already. */
	if (batch_in_progress != NULL &&
		strcmp(batch_in_progress, trigdata->tg_trigger->tgargs[0]) == 0)
		return PointerGetDatum(NULL);

	EnvInit(&env, DdFunctionSchema(fcinfo));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	m = MigrationLoad(&env, trigdata->tg_trigger->tgargs[0], false);
	MigrationResolve(m);

	initStringInfo(&sql);
	/* Only the keys of the new rows are in scope: no name can be ambiguous. */
	appendStringInfoString(&sql, "UPDATE ONLY ");
	appendStringInfo(&sql, "%s SET\n%s\n FROM (SELECT ", m->rel, m->set_sql);
	for (int i = 0; i < m->nkeys; i++)
		appendStringInfo(&sql, "%s%s AS dd_k%d", i > 0 ? ", " : "", m->keys[i], i + 1);
	appendStringInfoString(&sql, " FROM dd_new) dd_rows WHERE (");
	for (int i = 0; i < m->nkeys; i++)
		appendStringInfo(&sql, "%s%s.%s", i > 0 ? ", " : "", m->relref, m->keys[i]);
	appendStringInfoString(&sql, ") = (");
	for (int i = 0; i < m->nkeys; i++)
		appendStringInfo(&sql, "%sdd_rows.dd_k%d", i > 0 ? ", " : "", i + 1);
	appendStringInfo(&sql, ") AND (\n%s\n)", m->where_sql);

	env.caller = m->owner;
	env.switch_user = true;
	AsCallerBegin(&env, m, &as);
	rc = SPI_execute(sql.data, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "keep_in_step update returned %s", SPI_result_code_string(rc));
	AsCallerEnd(&as);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * dd_migration_drop(name) returns void
 *
 * Forget a migration that is not running (its changes stay).  A migration
 * another one runs after cannot be dropped before that one.
 */
Datum
dd_migration_drop(PG_FUNCTION_ARGS)
{
	MigrationEnv env;
	Migration  *m;
	char	   *name;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	name = MigrationTextArg(fcinfo, 0, "name", DD_MAX_MIGRATION_NAME);
	EnvInit(&env, DdFunctionSchema(fcinfo));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	m = MigrationLoad(&env, name, true);
	CheckOwner(&env, m);
	if (!MigrationLockTry(m->id))
		ErrorAlreadyRunning(m);
	MigrationLockRelease(m->id);
	values[0] = CStringGetTextDatum(name);
	if (Book(&env, "SELECT name FROM %s.migrations WHERE run_after OPERATOR(pg_catalog.=) $1 LIMIT 1",
			 1, argtypes, values, NULL, false) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("migration \"%s\" runs after \"%s\"", SpiText(1), name),
				 errhint("Drop \"%s\" first.", SpiText(1))));
	if (m->keep_in_step && get_rel_name(m->relid) != NULL)
	{
		RunCtx		rc = {.env = &env};

		MigrationResolve(m);
		KeepInStep(&rc, m, false);
	}
	Book(&env, "DELETE FROM %s.migrations WHERE name OPERATOR(pg_catalog.=) $1",
		 1, argtypes, values, NULL, false);
	SPI_finish();
	PG_RETURN_VOID();
}
