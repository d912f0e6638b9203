/*-------------------------------------------------------------------------
 *
 * direct.c
 *	  Writes without the executor, for the per-request hot paths: a row
 *	  read through a unique index, updated under READ COMMITTED's rules,
 *	  or inserted (optionally ON CONFLICT DO NOTHING on one unique index),
 *	  through the table and index access methods -- the calls the executor
 *	  itself makes, and the way PostgreSQL's logical replication apply
 *	  writes rows (execReplication.c).
 *
 * Why.  Through SPI, every charge ran a whole executor cycle for a
 * statement whose shape never changes: the plan cache check, ExecutorStart
 * (opening every index, compiling every expression, the CTE's subplans),
 * ExecutorEnd.  Measured with perf, that bookkeeping cost more CPU than the
 * heap and index work it wrapped, and made the one-call function slower
 * than the same statement sent by a client.  Here the same heap and index
 * calls are made and nothing else.
 *
 * When it is not used.  Besides writing rows, the executor fires
 * triggers (including foreign keys), applies forced row security,
 * computes generated columns, routes to partitions and evaluates column
 * defaults.  The direct path does none of that, so a table is written
 * directly only while it is as the extension created it in those
 * respects: no triggers, no FORCE ROW LEVEL SECURITY, not partitioned nor
 * a partition, no generated column, no deferrable unique index, and every
 * column either given by the caller, NULL without a default, an identity,
 * a constant default or now() -- and only in a transaction that may write
 * (the executor's read-only check).  Otherwise DdDirectBegin answers false
 * and the caller runs its SPI plan, which does everything.  CHECK constraints
 * are evaluated by the executor's own ExecConstraints when the table has
 * one the caller does not guarantee itself (DdDirectTable.checks), and NOT
 * NULL always.  The answer is cached per backend and dropped on every
 * relcache invalidation of the table, so an ALTER TABLE or CREATE TRIGGER
 * is seen by the next call.
 *
 * Privileges.  None are checked here: the callers are SECURITY DEFINER
 * functions, running as the extension's owner, who owns the tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "direct.h"

/* How DdDirectInsert fills an attribute. */
#define FILL_NULL		0		/* dropped, or nullable without a default */
#define FILL_GIVEN		1		/* from the caller's values[] */
#define FILL_CONST		2		/* a constant default */
#define FILL_NOW		3		/* DEFAULT now(): the transaction's start */
#define FILL_IDENTITY	4		/* the identity sequence's next value */

/* The tables whose cache the relcache callback resets. */
#define MAX_TABLES 8
static DdDirectTable *tables[MAX_TABLES];
static int	ntables = 0;
static bool callback_registered = false;

/*
 * InvalidateTables
 *		Relcache callback: forget what is known of a table when it changes
 *		(relid), or of every table (InvalidOid).
 */
static void
InvalidateTables(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < ntables; i++)
		if (!OidIsValid(relid) || tables[i]->relid == relid)
			tables[i]->valid = false;
}

/*
 * Remember
 *		Put t under the relcache callback (once).
 */
static void
Remember(DdDirectTable *t)
{
	int			i;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateTables, (Datum) 0);
		callback_registered = true;
	}
	for (i = 0; i < ntables; i++)
		if (tables[i] == t)
			return;
	if (ntables >= MAX_TABLES)
		elog(ERROR, "dd_clipper: too many directly written tables");
	tables[ntables++] = t;
}

/*
 * IndexOid
 *		The OID of index name of t's table, or InvalidOid when it is not
 *		one of rel's indexes.
 */
static Oid
IndexOid(DdDirectTable *t, Relation rel, const char *name)
{
	Oid			oid = get_relname_relid(name, t->nspid);

	if (!OidIsValid(oid) || !list_member_oid(RelationGetIndexList(rel), oid))
		return InvalidOid;
	return oid;
}

/*
 * DescribeKey
 *		Fill in how to search t's keyindex; false when it is missing or
 *		not a plain btree index.
 */
static bool
DescribeKey(DdDirectTable *t, Relation rel)
{
	Relation	index;
	int			i;

	t->keyindex_oid = InvalidOid;
	if (t->keyindex == NULL)
		return true;
	t->keyindex_oid = IndexOid(t, rel, t->keyindex);
	if (!OidIsValid(t->keyindex_oid))
		return false;
	index = index_open(t->keyindex_oid, AccessShareLock);
	t->nkeys = IndexRelationGetNumberOfKeyAttributes(index);
	for (i = 0; i < t->nkeys; i++)
	{
		Oid			opno;

		opno = get_opfamily_member(index->rd_opfamily[i],
								   index->rd_opcintype[i],
								   index->rd_opcintype[i],
								   BTEqualStrategyNumber);
		t->key_attnums[i] = index->rd_index->indkey.values[i];
		t->key_colls[i] = index->rd_indcollation[i];
		if (!OidIsValid(opno) || index->rd_rel->relam != BTREE_AM_OID ||
			t->key_attnums[i] == 0)
		{
			index_close(index, AccessShareLock);
			t->keyindex_oid = InvalidOid;
			return false;
		}
		t->key_procs[i] = get_opcode(opno);
	}
	index_close(index, AccessShareLock);
	return true;
}

/*
 * DescribeColumns
 *		Find the columns t names (cols[]), with the types it gives them in,
 *		and the table's identity column; false when one is missing or of
 *		another type.
 */
static bool
DescribeColumns(DdDirectTable *t, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < t->ncols; i++)
	{
		AttrNumber	attnum = get_attnum(t->relid, t->cols[i]);

		if (attnum <= 0 ||
			TupleDescAttr(desc, attnum - 1)->atttypid != t->types[i])
			return false;
		t->attnums[i] = attnum;
	}

	t->identity = 0;
	for (i = 0; i < desc->natts && t->identity == 0; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && att->attidentity)
		{
			t->identity = i + 1;
			t->seqid = getIdentitySequence(t->relid, i + 1, false);
		}
	}
	return true;
}

/*
 * Describe
 *		Fill t's cache from the open table rel: whether it may be written
 *		directly, and how.
 */
static void
Describe(DdDirectTable *t, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;
	ListCell   *lc;
	int			i;

	t->valid = true;
	t->usable = false;
	t->relid = RelationGetRelid(rel);
	t->readable = DescribeKey(t, rel) && DescribeColumns(t, rel);
	if (!t->readable)
		return;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relispartition ||
		rel->trigdesc != NULL ||
		rel->rd_rel->relforcerowsecurity ||
		(desc->constr && desc->constr->has_generated_stored))
		return;

	/* Every unique index must be checked at once (no deferred checks). */
	foreach(lc, RelationGetIndexList(rel))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID,
										  ObjectIdGetDatum(lfirst_oid(lc)));
		bool		deferred;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		deferred = !((Form_pg_index) GETSTRUCT(tup))->indimmediate;
		ReleaseSysCache(tup);
		if (deferred)
			return;
	}

	old = MemoryContextSwitchTo(CacheMemoryContext);
	if (t->fill)
	{
		pfree(t->fill);
		pfree(t->given);
		pfree(t->consts);
		pfree(t->constnulls);
	}
	t->natts = desc->natts;
	t->fill = palloc0(desc->natts * sizeof(char));
	t->given = palloc0(desc->natts * sizeof(int));
	t->consts = palloc0(desc->natts * sizeof(Datum));
	t->constnulls = palloc0(desc->natts * sizeof(bool));
	MemoryContextSwitchTo(old);

	for (i = 0; i < t->ncols; i++)
	{
		t->fill[t->attnums[i] - 1] = FILL_GIVEN;
		t->given[t->attnums[i] - 1] = i;
	}

	/* The other columns: how an insert fills them, or not usable. */
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;

		if (att->attisdropped || t->fill[i] == FILL_GIVEN)
			continue;
		if (att->attidentity)
		{
			if (i + 1 != t->identity)
				return;			/* a second identity column */
			t->fill[i] = FILL_IDENTITY;
			continue;
		}
		if (!att->atthasdef)
			continue;			/* FILL_NULL */

		expr = eval_const_expressions(NULL, build_column_default(rel, i + 1));
		if (expr && IsA(expr, Const))
		{
			Const	   *c = (Const *) expr;

			t->fill[i] = FILL_CONST;
			t->constnulls[i] = c->constisnull;
			if (!c->constisnull)
			{
				old = MemoryContextSwitchTo(CacheMemoryContext);
				t->consts[i] = datumCopy(c->constvalue, att->attbyval,
										 att->attlen);
				MemoryContextSwitchTo(old);
			}
		}
		else if (expr && IsA(expr, FuncExpr) &&
				 ((FuncExpr *) expr)->funcid == F_NOW &&
				 att->atttypid == TIMESTAMPTZOID)
			t->fill[i] = FILL_NOW;
		else
			return;
	}

	/* CHECK constraints the caller does not guarantee: run them all. */
	t->run_checks = false;
	if (desc->constr)
	{
		for (i = 0; i < desc->constr->num_check; i++)
		{
			const char *name = desc->constr->check[i].ccname;
			bool		known = false;
			int			j;

			for (j = 0; j < t->nchecks; j++)
				if (strcmp(name, t->checks[j]) == 0)
					known = true;
			if (!known)
				t->run_checks = true;
		}
	}

	/* The unique index an insert's conflicts are checked on. */
	t->arbiter_oid = InvalidOid;
	if (t->arbiter)
	{
		t->arbiter_oid = IndexOid(t, rel, t->arbiter);
		if (!OidIsValid(t->arbiter_oid))
			return;
	}

	t->usable = true;
}

/*
 * OpenTable
 *		Open t's table in schema nspid with lockmode, its cache up to date.
 */
static Relation
OpenTable(DdDirectTable *t, Oid nspid, LOCKMODE lockmode)
{
	Relation	rel;

	Remember(t);
	if (!t->valid || t->nspid != nspid)
	{
		t->valid = false;
		t->nspid = nspid;
		t->relid = get_relname_relid(t->relname, nspid);
		if (!OidIsValid(t->relid))
			elog(ERROR, "dd_clipper: table %s is missing", t->relname);
	}

	/* Taking the lock processes invalidations: t may be reset meanwhile. */
	rel = try_table_open(t->relid, lockmode);
	if (rel == NULL)
	{
		t->valid = false;
		t->relid = get_relname_relid(t->relname, nspid);
		if (!OidIsValid(t->relid))
			elog(ERROR, "dd_clipper: table %s is missing", t->relname);
		rel = table_open(t->relid, lockmode);
	}
	if (!t->valid || t->relid != RelationGetRelid(rel))
		Describe(t, rel);
	return rel;
}

/*
 * DdDirectBegin
 *		Open t's table in schema nspid for direct writes into d; false when
 *		it cannot be written directly (see the file comment), and then
 *		nothing is left open.
 */
bool
DdDirectBegin(DdDirectTable *t, Oid nspid, DdDirect *d)
{
	Relation	rel;
	RangeTblEntry *rte;

	/*
	 * A read-only transaction (or a standby) refuses writes in the
	 * executor, with the error the SPI plan raises; the table AM would not.
	 */
	if (XactReadOnly || IsInParallelMode())
		return false;

	rel = OpenTable(t, nspid, RowExclusiveLock);
	if (!t->usable)
	{
		table_close(rel, NoLock);
		return false;
	}

	d->table = t;
	d->rel = rel;
	d->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = t->relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(d->estate, list_make1(rte));
	d->estate->es_output_cid = GetCurrentCommandId(true);
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, rel, 1, NULL, 0);
	d->indexes_open = !t->update_only;
	if (d->indexes_open)
		ExecOpenIndices(d->rri, OidIsValid(t->arbiter_oid));
	d->keyrel = NULL;
	if (OidIsValid(t->keyindex_oid))
		d->keyrel = index_open(t->keyindex_oid, RowExclusiveLock);
	d->slot = table_slot_create(rel, &d->estate->es_tupleTable);
	d->found = table_slot_create(rel, &d->estate->es_tupleTable);
	d->arbiters = OidIsValid(t->arbiter_oid) ?
		list_make1_oid(t->arbiter_oid) : NIL;
	return true;
}

/*
 * DdDirectBeginRead
 *		Open t's table in schema nspid for DdDirectFetch only (no writes),
 *		with the lock a SELECT takes.  Every table with a keyindex can be
 *		read so, whatever DdDirectBegin would answer.
 */
void
DdDirectBeginRead(DdDirectTable *t, Oid nspid, DdDirect *d)
{
	Relation	rel;

	rel = OpenTable(t, nspid, AccessShareLock);
	if (!t->readable || !OidIsValid(t->keyindex_oid))
		elog(ERROR, "dd_clipper: table %s lacks the index %s or a column it reads",
			 t->relname, t->keyindex ? t->keyindex : "(none)");
	memset(d, 0, sizeof(*d));
	d->table = t;
	d->rel = rel;
	d->keyrel = index_open(t->keyindex_oid, AccessShareLock);
	d->found = table_slot_create(rel, NULL);
}

/*
 * DdDirectEnd
 *		Close what DdDirectBegin opened; the table's lock is kept to the
 *		end of the transaction, as the executor keeps it.
 */
void
DdDirectEnd(DdDirect *d)
{
	if (d->keyrel)
		index_close(d->keyrel, NoLock);
	if (d->estate == NULL)
	{
		/* DdDirectBeginRead */
		ExecDropSingleTupleTableSlot(d->found);
		table_close(d->rel, NoLock);
		return;
	}
	if (d->indexes_open)
		ExecCloseIndices(d->rri);
	ExecResetTupleTable(d->estate->es_tupleTable, false);
	FreeExecutorState(d->estate);
	table_close(d->rel, NoLock);
}

/*
 * DdDirectAttnum
 *		The attribute number of given column col (an index into cols[]).
 */
AttrNumber
DdDirectAttnum(DdDirect *d, int col)
{
	return d->table->attnums[col];
}

/*
 * DdDirectFetch
 *		Find the row whose key index columns equal keys, as snapshot sees
 *		it, into d->found; false when there is none.
 */
bool
DdDirectFetch(DdDirect *d, Datum *keys, Snapshot snapshot)
{
	DdDirectTable *t = d->table;
	Relation	index = d->keyrel;
	ScanKeyData skey[INDEX_MAX_KEYS];
	IndexScanDesc scan;
	bool		found;
	int			i;

	if (index == NULL)
		elog(ERROR, "dd_clipper: table %s has no key index", t->relname);

	for (i = 0; i < t->nkeys; i++)
	{
		ScanKeyInit(&skey[i], i + 1, BTEqualStrategyNumber, t->key_procs[i],
					keys[i]);
		skey[i].sk_collation = index->rd_indcollation[i];
	}
	scan = index_beginscan(d->rel, index, snapshot, t->nkeys, 0);
	index_rescan(scan, skey, t->nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, d->found);
	index_endscan(scan);
	return found;
}

/*
 * FoundMatches
 *		Whether the row in d->found still has the key keys -- after
 *		table_tuple_lock moved it to the row's latest version, which a
 *		concurrent update may have given another key.
 */
static bool
FoundMatches(DdDirect *d, Datum *keys)
{
	DdDirectTable *t = d->table;
	int			i;

	for (i = 0; i < t->nkeys; i++)
	{
		bool		isnull;
		Datum		v = slot_getattr(d->found, t->key_attnums[i], &isnull);

		if (isnull ||
			!DatumGetBool(OidFunctionCall2Coll(t->key_procs[i],
											   t->key_colls[i], v, keys[i])))
			return false;
	}
	return true;
}

/*
 * CheckRow
 *		The constraints the executor would check on d->slot: NOT NULL, and
 *		CHECK constraints when the table has one the caller does not
 *		guarantee.
 */
static void
CheckRow(DdDirect *d)
{
	TupleDesc	desc = RelationGetDescr(d->rel);
	int			i;

	if (d->table->run_checks)
	{
		ExecConstraints(d->rri, d->slot, d->estate);
		return;
	}
	if (!desc->constr || !desc->constr->has_not_null)
		return;
	slot_getallattrs(d->slot);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attnotnull && d->slot->tts_isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(att->attname),
							RelationGetRelationName(d->rel))));
	}
}

/*
 * CheckConflictVisible
 *		Under REPEATABLE READ or SERIALIZABLE, a conflict with a row that
 *		another transaction committed after this one's snapshot is a
 *		serialization failure, as it is for ON CONFLICT DO NOTHING: the
 *		transaction could not have known of that row.
 */
static void
CheckConflictVisible(DdDirect *d, ItemPointer tid)
{
	TupleTableSlot *found = d->found;
	bool		isnull;
	TransactionId xmin;

	if (!IsolationUsesXactSnapshot())
		return;
	if (!table_tuple_fetch_row_version(d->rel, tid, SnapshotAny, found))
		elog(ERROR, "dd_clipper: failed to fetch a conflicting row");
	if (table_tuple_satisfies_snapshot(d->rel, found, GetTransactionSnapshot()))
		return;
	xmin = DatumGetTransactionId(slot_getsysattr(found,
												 MinTransactionIdAttributeNumber,
												 &isnull));
	if (!TransactionIdIsCurrentTransactionId(xmin))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent update")));
}

/*
 * DdDirectInsert
 *		Insert a row: the given columns from values/nulls (in cols[] order),
 *		the others from their defaults.  *id gets the identity column's new
 *		value.  With an arbiter index, a row whose key is already there
 *		(committed, or inserted by this transaction) is not inserted and
 *		false is returned; an insertion of the same key in flight is waited
 *		for.  As ON CONFLICT DO NOTHING does it: the row is inserted
 *		speculatively, and taken back if its index entry met a conflict.
 */
bool
DdDirectInsert(DdDirect *d, Datum *values, bool *nulls, int64 *id)
{
	DdDirectTable *t = d->table;
	TupleTableSlot *slot = d->slot;
	CommandId	cid = d->estate->es_output_cid;
	int			i;

	ExecClearTuple(slot);
	for (i = 0; i < t->natts; i++)
	{
		Datum		v = (Datum) 0;
		bool		isnull = true;

		switch (t->fill[i])
		{
			case FILL_GIVEN:
				v = values[t->given[i]];
				isnull = nulls[t->given[i]];
				break;
			case FILL_CONST:
				v = t->consts[i];
				isnull = t->constnulls[i];
				break;
			case FILL_NOW:
				v = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
				isnull = false;
				break;
			case FILL_IDENTITY:
				v = Int64GetDatum(nextval_internal(t->seqid, false));
				isnull = false;
				if (id)
					*id = DatumGetInt64(v);
				break;
		}
		slot->tts_values[i] = v;
		slot->tts_isnull[i] = isnull;
	}
	ExecStoreVirtualTuple(slot);
	CheckRow(d);

	if (d->arbiters == NIL)
	{
		table_tuple_insert(d->rel, slot, cid, 0, NULL);
		ExecInsertIndexTuples(d->rri, slot, d->estate, false, false, NULL,
							  NIL);
		return true;
	}

	for (;;)
	{
		ItemPointerData conflict;
		uint32		token;
		bool		clash = false;

		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(d->rel, slot, cid, 0, NULL, token);
		ExecInsertIndexTuples(d->rri, slot, d->estate, false, true, &clash,
							  d->arbiters);
		table_tuple_complete_speculative(d->rel, slot, token, !clash);
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		if (!clash)
			return true;

		/*
		 * The key met another row's.  Wait for its transaction to end: if
		 * the row stays, this insert is a duplicate; if not, try again.
		 */
		if (!ExecCheckIndexConstraints(d->rri, slot, d->estate, &conflict,
									   d->arbiters))
		{
			CheckConflictVisible(d, &conflict);
			return false;
		}
	}
}

/*
 * DdDirectUpdate
 *		Update the row in d->found (fetched with snapshot): the given
 *		columns from values/nulls, the others unchanged.  Returns what
 *		table_tuple_update returns: TM_Ok (updated, and the new version's
 *		tid in d->slot), or TM_Updated / TM_Deleted when a concurrent
 *		transaction changed the row after snapshot (it was waited for: it
 *		has committed).  Under REPEATABLE READ or SERIALIZABLE that is a
 *		serialization failure, as for an UPDATE; under READ COMMITTED the
 *		caller re-checks the latest version (DdDirectLockLatest), as the
 *		executor does.
 */
TM_Result
DdDirectUpdate(DdDirect *d, Datum *values, bool *nulls, Snapshot snapshot)
{
	DdDirectTable *t = d->table;
	TupleTableSlot *slot = d->slot;
	TM_FailureData tmfd;
	bool		update_indexes;
	TM_Result	result;
	int			i;

	slot_getallattrs(d->found);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, d->found->tts_values, t->natts * sizeof(Datum));
	memcpy(slot->tts_isnull, d->found->tts_isnull, t->natts * sizeof(bool));
	for (i = 0; i < t->ncols; i++)
	{
		slot->tts_values[t->attnums[i] - 1] = values[i];
		slot->tts_isnull[t->attnums[i] - 1] = nulls[i];
	}
	ExecStoreVirtualTuple(slot);
	ExecMaterializeSlot(slot);
	CheckRow(d);
	CheckCmdReplicaIdentity(d->rel, CMD_UPDATE);

	result = table_tuple_update(d->rel, &d->found->tts_tid, slot,
								d->estate->es_output_cid, snapshot,
								InvalidSnapshot, true, &tmfd, &d->lockmode,
								&update_indexes);
	if (result != TM_Ok && result != TM_Updated && result != TM_Deleted)
		elog(ERROR, "dd_clipper: unexpected result %d updating a row of %s",
			 (int) result, t->relname);
	if (result != TM_Ok && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent %s",
						result == TM_Updated ? "update" : "delete")));
	if (result == TM_Ok && update_indexes && !d->indexes_open)
	{
		ExecOpenIndices(d->rri, false);
		d->indexes_open = true;
	}
	if (result == TM_Ok && update_indexes && d->rri->ri_NumIndices > 0)
		ExecInsertIndexTuples(d->rri, slot, d->estate, true, false, NULL,
							  NIL);
	return result;
}

/*
 * DdDirectLockLatest
 *		READ COMMITTED's re-check after DdDirectUpdate found the row in
 *		d->found changed by a committed transaction: lock the row's latest
 *		version into d->found, as the executor does before it evaluates the
 *		statement's conditions again.  False when the row is gone, or is
 *		now the row of another key than keys.
 */
bool
DdDirectLockLatest(DdDirect *d, Datum *keys, Snapshot snapshot)
{
	TM_FailureData tmfd;
	TM_Result	result;

	result = table_tuple_lock(d->rel, &d->found->tts_tid, snapshot, d->found,
							  d->estate->es_output_cid, d->lockmode,
							  LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							  &tmfd);
	if (result == TM_Deleted)
		return false;
	if (result != TM_Ok)
		elog(ERROR, "dd_clipper: unexpected result %d locking a row of %s",
			 (int) result, d->table->relname);
	return FoundMatches(d, keys);
}
