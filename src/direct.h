/*-------------------------------------------------------------------------
 *
 * direct.h
 *	  Writes through the table and index access methods, without the
 *	  executor, for the per-request hot paths (see direct.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DD_DIRECT_H
#define DD_DIRECT_H

#include "postgres.h"

#include "access/tableam.h"
#include "nodes/execnodes.h"
#include "utils/snapshot.h"

#define DD_DIRECT_MAX_COLS	12
#define DD_DIRECT_MAX_CHECKS 4

/*
 * A table written directly.  The first part is written once, statically,
 * by the feature; the rest is the per-backend cache direct.c keeps.
 */
typedef struct DdDirectTable
{
	const char *relname;
	const char *keyindex;		/* unique index DdDirectFetch reads, or NULL */
	const char *arbiter;		/* unique index of ON CONFLICT DO NOTHING, or
								 * NULL */
	int			ncols;			/* the columns a caller gives, in order */
	const char *cols[DD_DIRECT_MAX_COLS];
	Oid			types[DD_DIRECT_MAX_COLS];
	bool		update_only;	/* never inserted into: indexes opened only
								 * for an update that is not HOT */
	int			nchecks;		/* CHECK constraints the caller's own checks
								 * already guarantee */
	const char *checks[DD_DIRECT_MAX_CHECKS];

	/* the cache: valid until a relcache invalidation of the table */
	bool		valid;
	bool		readable;		/* keyindex and cols[] found: DdDirectBeginRead
								 * works */
	bool		usable;			/* false: the caller must use its SPI plan */
	Oid			nspid;
	Oid			relid;
	Oid			keyindex_oid;
	int			nkeys;
	RegProcedure key_procs[INDEX_MAX_KEYS];
	AttrNumber	key_attnums[INDEX_MAX_KEYS];
	Oid			key_colls[INDEX_MAX_KEYS];
	Oid			arbiter_oid;
	bool		run_checks;		/* some CHECK constraint is not in checks[] */
	AttrNumber	attnums[DD_DIRECT_MAX_COLS];
	int			natts;
	char	   *fill;			/* per attribute: how an insert fills it */
	int		   *given;			/* per attribute: its index in cols[] */
	Datum	   *consts;			/* per attribute: a constant default */
	bool	   *constnulls;
	Oid			seqid;			/* identity column's sequence */
	AttrNumber	identity;		/* the identity column, 0: none */
} DdDirectTable;

/* One table opened for direct writes by one call. */
typedef struct DdDirect
{
	DdDirectTable *table;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;		/* the row being written */
	TupleTableSlot *found;		/* the row DdDirectFetch found */
	Relation	keyrel;			/* the keyindex, or NULL */
	LockTupleMode lockmode;		/* the row lock DdDirectUpdate needed */
	bool		indexes_open;	/* ExecOpenIndices was called */
	List	   *arbiters;
} DdDirect;

extern bool DdDirectBegin(DdDirectTable *t, Oid nspid, DdDirect *d);
extern void DdDirectBeginRead(DdDirectTable *t, Oid nspid, DdDirect *d);
extern void DdDirectEnd(DdDirect *d);
extern bool DdDirectFetch(DdDirect *d, Datum *keys, Snapshot snapshot);
extern bool DdDirectInsert(DdDirect *d, Datum *values, bool *nulls,
						   int64 *id);
extern TM_Result DdDirectUpdate(DdDirect *d, Datum *values, bool *nulls,
								Snapshot snapshot);
extern bool DdDirectLockLatest(DdDirect *d, Datum *keys, Snapshot snapshot);
extern AttrNumber DdDirectAttnum(DdDirect *d, int col);

#endif							/* DD_DIRECT_H */
