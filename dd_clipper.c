/*-------------------------------------------------------------------------
 *
 * dd_clipper.c
 *	  Front door of the dd_clipper extension: module magic, _PG_init and
 *	  the dd_clipper.* settings.
 *
 * No feature logic lives here.  Each capability owns its SQL-callable
 * functions in a file of its own under src/ (credits.c, api_keys.c, ...),
 * and the machinery they share (saved SPI plans, argument checks) lives in
 * src/dd_common.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "dd_clipper.h"

PG_MODULE_MAGIC;

/* dd_clipper.key_touch_interval: see dd_clipper.h */
int			dd_key_touch_interval = 60;
int			dd_migration_batch_pause = 0;
bool		dd_legacy_keys = false;

/*
 * dd_clipper.user_id: read by the row-level security policies of 1.0 only.
 * From 1.1 the policies read dd_claim_user_id() (src/row_security.c), which
 * no SET can change; the setting stays so that a database still on 1.0
 * keeps working with this library until ALTER EXTENSION ... UPDATE.
 */
static char *dd_user_id = NULL;

void		_PG_init(void);

/*
 * _PG_init
 *		Define the dd_clipper.* settings and reserve the prefix, so that a
 *		misspelled setting is an error instead of a silently ignored
 *		placeholder.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("dd_clipper.key_touch_interval",
							"Minimum time between two writes of an API key's last_used_at.",
							"dd_verify_api_key writes last_used_at only when it is NULL or "
							"older than this, so a busy key is written at most once per "
							"interval instead of once per request.",
							&dd_key_touch_interval,
							60,
							0,
							INT_MAX / 1000,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("dd_clipper.migration_batch_pause",
							"Pause between two batches of a migration run.",
							"A run (CALL dd_migration_run, or the worker of "
							"dd_migration_start, which takes the value of the session that "
							"started it) waits this long after each committed batch, "
							"holding no snapshot and no lock, to leave room for the "
							"application's own writes.",
							&dd_migration_batch_pause,
							0,
							0,
							60000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("dd_clipper.legacy_keys",
							 "Also verify keys that are not in dd_clipper's format, by their hash.",
							 "Keys imported from Convex (bin/dd_convex_import) predate the "
							 "checksummed ddk_ format.  When on, dd_verify_api_key and "
							 "dd_authorize_and_charge look up any other text of 1 to 512 bytes "
							 "by its SHA-256; a text with the ddk_ prefix and a bad checksum "
							 "is still MALFORMED without a lookup.",
							 &dd_legacy_keys,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("dd_clipper.user_id",
							   "Version 1.0 only: the user whose rows row-level security lets this session see.",
							   "Read by the policies of dd_clipper 1.0; from 1.1 the policies read "
							   "the claim verified by dd_set_claim() instead, and ignore this.",
							   &dd_user_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("dd_clipper");

	DdRowSecurityInit();
}
