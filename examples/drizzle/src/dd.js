// @ts-check
// src/dd.js -- typed wrappers for dd_clipper's functions, for Drizzle ORM.
//
// drizzle-kit manages tables, not functions: the functions come with
// CREATE EXTENSION dd_clipper and are called here through db.execute().  Each
// wrapper
//   - calls the function in named notation, as DESIGN.md spells the
//     parameters (`dd_charge_credit(user_id => $1, amount => $2)`), leaving out
//     the arguments the caller did not give so the function's defaults apply,
//     and casts every parameter to its SQL type, so the call means the same
//     whatever a driver infers from a JavaScript value;
//   - calls set-returning functions in FROM (`SELECT * FROM f(...)`): written
//     as `SELECT (f(...)).*` the function would run once per column;
//   - returns one plain object of the documented shape (camelCase keys), the
//     same whichever driver runs it: node-postgres returns { rows }, postgres-js
//     an array, and both return int8 as a string, so the rows are unwrapped and
//     every bigint is turned into a number (exact: a value past
//     Number.MAX_SAFE_INTEGER is an error, not a rounded number).
//
// Clip versions are the exception: a version is (transaction id << 20) | n,
// past 2^53 once a cluster has used 2^33 transaction ids, so versions travel
// as decimal strings (converted in SQL, before JSON.parse could round them).
// Pass them back unchanged, as Convex clients pass continueCursor.
//
// Errors are the driver's, wrapped by Drizzle (DrizzleQueryError); sqlState()
// reads the SQLSTATE from either driver's error.

import { sql } from "drizzle-orm";

/**
 * Any Drizzle PostgreSQL database: drizzle-orm/node-postgres or
 * drizzle-orm/postgres-js (or a transaction of either).
 * @typedef {import("drizzle-orm/pg-core").PgDatabase<any, any, any>} Db
 */

/** @typedef {{ ok: boolean, balance: number | null, usageId: number | null, replayed: boolean }} Charge */
/** @typedef {"VALID" | "MALFORMED" | "NOT_FOUND" | "EXPIRED" | "REVOKED"} KeyCode */
/** @typedef {{ valid: boolean, code: KeyCode, keyId: number | null, userId: string | null }} KeyCheck */
/**
 * @typedef {{ valid: boolean, code: KeyCode | "INSUFFICIENT_CREDITS",
 *             keyId: number | null, userId: string | null,
 *             ok: boolean, balance: number | null, usageId: number | null,
 *             replayed: boolean }} Authorization
 */
/**
 * A clip as dd_clips_page and dd_clip_changes return it: the columns of
 * `clips` but `search`, camelCased; timestamps are ISO 8601 strings,
 * blobSha256 is "\\x" followed by hex, version a decimal string.  Columns
 * added to the table appear too.
 * @typedef {{ id: number, userId: string, title: string, sourceUrl: string | null,
 *             transcript: string | null, notes: string | null, tags: string[],
 *             status: string, blobProvider: string | null, blobKey: string | null,
 *             blobSha256: string | null, blobSize: number | null,
 *             blobContentType: string | null, createdAt: string, updatedAt: string,
 *             deletedAt: string | null, version: string, convexId: string | null,
 *             [column: string]: unknown }} Clip
 */
/** @typedef {{ page: Clip[], isDone: boolean, continueCursor: string }} ClipsPage */
/** @typedef {{ op: "upsert" | "delete", id: number, version: string, clip: Clip | null }} ClipChange */
/** @typedef {{ changes: ClipChange[], version: string }} ClipChanges */
/**
 * @typedef {{ userId: string, event: string, properties?: Record<string, unknown>,
 *             eventId?: string, occurredAt?: string | number | Date }} TrackedEvent
 */

/**
 * The SQLSTATE of a failed call ("22023", "P0002", ...), from either driver's
 * error wrapped or not by Drizzle; undefined for an error that has none.
 * @param {unknown} err
 * @returns {string | undefined}
 */
export function sqlState(err) {
  for (let e = /** @type {any} */ (err); e; e = e.cause) {
    if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  }
  return undefined;
}

/**
 * db.execute's rows, whichever driver ran it.
 * @param {unknown} result
 * @returns {Record<string, any>[]}
 */
function rowsOf(result) {
  return Array.isArray(result) ? result : /** @type {any} */ (result).rows;
}

/**
 * A bigint column (a string from both drivers) as an exact number.
 * @param {unknown} value
 * @returns {number | null}
 */
function int8(value) {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${value} is not a safe integer`);
  return n;
}

/**
 * The same, for a column that is never NULL.
 * @param {unknown} value
 * @returns {number}
 */
function int8NotNull(value) {
  const n = int8(value);
  if (n === null) throw new TypeError("unexpected NULL");
  return n;
}

/**
 * A text[] literal ('{"a","b\"c"}'): the drivers disagree on how to send a
 * JavaScript array, so arrays are sent as text and cast.
 * @param {readonly string[]} items
 */
function textArray(items) {
  return `{${items.map((s) => `"${String(s).replace(/[\\"]/g, "\\$&")}"`).join(",")}}`;
}

/**
 * Named arguments `name => $n::type`, leaving out those that are undefined
 * (the function's default applies); null is passed as SQL NULL.
 * @param {[name: string, value: unknown, type: string][]} args
 */
function named(args) {
  return sql.join(
    args
      .filter(([, value]) => value !== undefined)
      .map(([name, value, type]) => sql`${sql.raw(name)} => ${value}::${sql.raw(type)}`),
    sql`, `,
  );
}

/** @param {Record<string, unknown> | null | undefined} obj */
const json = (obj) => (obj === undefined ? undefined : obj === null ? null : JSON.stringify(obj));

/** @param {Date | string | number | null | undefined} t  a number is milliseconds since the epoch */
const timestamp = (t) => (t instanceof Date ? t.toISOString() : typeof t === "number" ? new Date(t).toISOString() : t);

/**
 * dd_grant_credit: adds amount (> 0) credits; a repeated idempotencyKey grants
 * once.  Returns the new balance.
 * @param {Db} db
 * @param {{ userId: string, amount: number, reason?: string | null, idempotencyKey?: string | null }} a
 * @returns {Promise<number>}
 */
export async function grantCredit(db, { userId, amount, reason, idempotencyKey }) {
  const [row] = rowsOf(await db.execute(sql`SELECT dd_grant_credit(${named([
    ["user_id", userId, "text"],
    ["amount", amount, "bigint"],
    ["reason", reason, "text"],
    ["idempotency_key", idempotencyKey, "text"],
  ])}) AS balance`));
  return int8NotNull(row.balance);
}

/**
 * dd_charge_credit: takes amount (default 1) credits if the balance covers
 * them, and logs the request, in one statement under the balance row's lock.
 * ok = false: not enough credit, nothing written.  A repeated requestId
 * returns the first outcome with replayed = true and charges nothing.
 * @param {Db} db
 * @param {{ userId: string, amount?: number, requestId?: string | null, endpoint?: string | null,
 *           apiKeyId?: number | null, metadata?: Record<string, unknown> | null }} a
 * @returns {Promise<Charge>}
 */
export async function chargeCredit(db, { userId, amount, requestId, endpoint, apiKeyId, metadata }) {
  const [row] = rowsOf(await db.execute(sql`SELECT * FROM dd_charge_credit(${named([
    ["user_id", userId, "text"],
    ["amount", amount, "bigint"],
    ["request_id", requestId, "text"],
    ["endpoint", endpoint, "text"],
    ["api_key_id", apiKeyId, "bigint"],
    ["metadata", json(metadata), "jsonb"],
  ])})`));
  return { ok: row.ok, balance: int8(row.balance), usageId: int8(row.usage_id), replayed: row.replayed };
}

/**
 * dd_refund_credit: gives back the credits charged for requestId, once.
 * Returns the new balance.  Errors: P0002 never charged, 55000 refunded.
 * @param {Db} db
 * @param {{ userId: string, requestId: string, reason?: string | null }} a
 * @returns {Promise<number>}
 */
export async function refundCredit(db, { userId, requestId, reason }) {
  const [row] = rowsOf(await db.execute(sql`SELECT dd_refund_credit(${named([
    ["user_id", userId, "text"],
    ["request_id", requestId, "text"],
    ["reason", reason, "text"],
  ])}) AS balance`));
  return int8NotNull(row.balance);
}

/**
 * dd_credit_balance: the balance, 0 for a user without a balance row.
 * @param {Db} db
 * @param {string} userId
 * @returns {Promise<number>}
 */
export async function creditBalance(db, userId) {
  const [row] = rowsOf(await db.execute(sql`SELECT dd_credit_balance(user_id => ${userId}::text) AS balance`));
  return int8NotNull(row.balance);
}

/**
 * dd_create_api_key: a new key; apiKey exists only in this result.
 * @param {Db} db
 * @param {{ userId: string, name?: string | null, expiresAt?: Date | string | null }} a
 * @returns {Promise<{ keyId: number, apiKey: string }>}
 */
export async function createApiKey(db, { userId, name, expiresAt }) {
  const [row] = rowsOf(await db.execute(sql`SELECT * FROM dd_create_api_key(${named([
    ["user_id", userId, "text"],
    ["name", name, "text"],
    ["expires_at", timestamp(expiresAt), "timestamptz"],
  ])})`));
  return { keyId: int8NotNull(row.key_id), apiKey: row.api_key };
}

/**
 * dd_verify_api_key: never an error for a bad key (any text is MALFORMED).
 * @param {Db} db
 * @param {string | null} apiKey
 * @returns {Promise<KeyCheck>}
 */
export async function verifyApiKey(db, apiKey) {
  const [row] = rowsOf(await db.execute(sql`SELECT * FROM dd_verify_api_key(api_key => ${apiKey}::text)`));
  return { valid: row.valid, code: row.code, keyId: int8(row.key_id), userId: row.user_id };
}

/**
 * dd_revoke_api_key: true when this call revoked the key, false when it was
 * revoked already.
 * @param {Db} db
 * @param {number} keyId
 * @returns {Promise<boolean>}
 */
export async function revokeApiKey(db, keyId) {
  const [row] = rowsOf(await db.execute(sql`SELECT dd_revoke_api_key(key_id => ${keyId}::bigint) AS revoked`));
  return row.revoked;
}

/**
 * dd_authorize_and_charge: verify the key and charge its user, in one round
 * trip.  valid is true only when the request may proceed; code says why not
 * (INSUFFICIENT_CREDITS: the key is good, the balance is not).
 * @param {Db} db
 * @param {{ apiKey: string | null, amount?: number, requestId?: string | null,
 *           endpoint?: string | null, metadata?: Record<string, unknown> | null }} a
 * @returns {Promise<Authorization>}
 */
export async function authorizeAndCharge(db, { apiKey, amount, requestId, endpoint, metadata }) {
  const [row] = rowsOf(await db.execute(sql`SELECT * FROM dd_authorize_and_charge(${named([
    ["api_key", apiKey, "text"],
    ["amount", amount, "bigint"],
    ["request_id", requestId, "text"],
    ["endpoint", endpoint, "text"],
    ["metadata", json(metadata), "jsonb"],
  ])})`));
  return {
    valid: row.valid,
    code: row.code,
    keyId: int8(row.key_id),
    userId: row.user_id,
    ok: row.ok ?? false,
    balance: int8(row.balance),
    usageId: int8(row.usage_id),
    replayed: row.replayed ?? false,
  };
}

/**
 * A clip object of dd_clips_page / dd_clip_changes (snake_case JSON, version
 * already a string) as a Clip.
 * @param {Record<string, unknown>} clip
 * @returns {Clip}
 */
function toClip(clip) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, value] of Object.entries(clip)) {
    out[key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())] = value;
  }
  return /** @type {Clip} */ (out);
}

// SQL: a JSON clip with its version as a string.
const versionAsText = (clip) => sql`${clip} || jsonb_build_object('version', ${clip} ->> 'version')`;

/**
 * dd_clips_page: one page of a user's live clips, as Convex's paginate()
 * returns it.  Pass continueCursor back as cursor for the next page, with the
 * same userId, search, tags, status and sort.
 * @param {Db} db
 * @param {{ userId: string, pageSize?: number, cursor?: string | null, search?: string | null,
 *           tags?: readonly string[] | null, status?: string | null,
 *           sort?: "newest" | "oldest" | "relevance" }} a
 * @returns {Promise<ClipsPage>}
 */
export async function clipsPage(db, { userId, pageSize, cursor, search, tags, status, sort }) {
  const [row] = rowsOf(await db.execute(sql`
    SELECT (p ->> 'isDone')::boolean AS is_done, p ->> 'continueCursor' AS continue_cursor,
           (SELECT coalesce(jsonb_agg(${versionAsText(sql`c`)} ORDER BY n), '[]')
              FROM jsonb_array_elements(p -> 'page') WITH ORDINALITY AS e (c, n)) AS page
      FROM dd_clips_page(${named([
        ["user_id", userId, "text"],
        ["page_size", pageSize, "integer"],
        ["cursor", cursor, "text"],
        ["search", search, "text"],
        ["tags", tags == null ? tags : textArray(tags), "text[]"],
        ["status", status, "text"],
        ["sort", sort, "text"],
      ])}) AS p`));
  return { page: row.page.map(toClip), isDone: row.is_done, continueCursor: row.continue_cursor };
}

/**
 * dd_clip_changes: the changes of a user's clips after version since, oldest
 * first, and the version to poll with next.  A client that always polls with
 * the version it was given never misses a committed change.
 * @param {Db} db
 * @param {{ userId: string, since?: string | number, max?: number }} a
 * @returns {Promise<ClipChanges>}
 */
export async function clipChanges(db, { userId, since, max }) {
  const [row] = rowsOf(await db.execute(sql`
    SELECT r ->> 'version' AS version,
           (SELECT coalesce(jsonb_agg(c || jsonb_build_object(
                      'version', c ->> 'version',
                      'clip', CASE WHEN jsonb_typeof(c -> 'clip') = 'object'
                                   THEN ${versionAsText(sql`(c -> 'clip')`)} ELSE c -> 'clip' END)
                    ORDER BY n), '[]')
              FROM jsonb_array_elements(r -> 'changes') WITH ORDINALITY AS e (c, n)) AS changes
      FROM dd_clip_changes(${named([
        ["user_id", userId, "text"],
        ["since", since === undefined ? undefined : String(since), "bigint"],
        ["max", max, "integer"],
      ])}) AS r`));
  return {
    changes: row.changes.map((/** @type {any} */ c) => ({
      op: c.op,
      id: c.id,
      version: c.version,
      clip: c.clip === null ? null : toClip(c.clip),
    })),
    version: row.version,
  };
}

/**
 * dd_track_event: stores one event; returns its id, or null when the user
 * already has this eventId (a retry: nothing written).
 * @param {Db} db
 * @param {TrackedEvent} e
 * @returns {Promise<number | null>}
 */
export async function trackEvent(db, { userId, event, properties, eventId, occurredAt }) {
  const [row] = rowsOf(await db.execute(sql`SELECT dd_track_event(${named([
    ["user_id", userId, "text"],
    ["event", event, "text"],
    ["properties", json(properties), "jsonb"],
    ["event_id", eventId, "text"],
    ["occurred_at", timestamp(occurredAt), "timestamptz"],
  ])}) AS id`));
  return int8(row.id);
}

/**
 * dd_track_events: stores a batch in one call; returns how many rows were
 * stored (duplicate eventIds of a user are dropped, not counted).
 * occurredAt may be a Date, text, or milliseconds since the epoch (Convex's
 * _creationTime).
 * @param {Db} db
 * @param {readonly TrackedEvent[]} events
 * @returns {Promise<number>}
 */
export async function trackEvents(db, events) {
  const batch = events.map((e) => ({
    user_id: e.userId,
    event: e.event,
    ...(e.properties !== undefined && { properties: e.properties }),
    ...(e.eventId !== undefined && { event_id: e.eventId }),
    ...(e.occurredAt !== undefined && { occurred_at: e.occurredAt instanceof Date ? e.occurredAt.toISOString() : e.occurredAt }),
  }));
  const [row] = rowsOf(await db.execute(sql`SELECT dd_track_events(events => ${JSON.stringify(batch)}::jsonb) AS stored`));
  return int8NotNull(row.stored);
}
