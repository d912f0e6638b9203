// @ts-check
// src/subscriber.js -- live clips without Convex's useQuery: LISTEN for the
// extension's notifications, poll the change feed when one arrives.
//
// Every committed change of a clip sends one NOTIFY on dd_clipper_clips with
// {"table","user_id","id","op","version"}.  A notification says *when* to
// poll; dd_clip_changes says *what* changed, and a client that polls with the
// version it was given never misses a committed change, even when writers
// commit out of order.  So the subscriber
//   1. LISTENs on its own connection (a pooled one would lose the LISTEN),
//   2. polls once to catch up from the version it resumes from,
//   3. polls again on each notification for its user, and on a slow timer
//      (a notification sent while the listener was down is lost; the changes
//      never are),
//   4. and, when a notification names a version the feed does not reach yet
//      (an older transaction, of any user, is still open: the feed holds back
//      what could still be overtaken), polls again shortly until it does.
// Polls never overlap; each change reaches onChanges once, in feed order.

import { clipChanges } from "./dd.js";

export const CHANNEL = "dd_clipper_clips";

/**
 * @typedef {"start" | "notify" | "retry" | "timer"} PollReason
 * @typedef {{
 *   close: () => Promise<void>,
 *   readonly version: string,
 *   poll: (reason?: PollReason) => Promise<void>,
 * }} Subscription
 */

/**
 * Subscribe to one user's clip changes.
 * @param {{
 *   pool: import("pg").Pool,
 *   db: import("./dd.js").Db,
 *   userId: string,
 *   since?: string,
 *   onChanges: (changes: import("./dd.js").ClipChange[], info: { version: string, reason: PollReason }) => void | Promise<void>,
 *   onError?: (err: unknown) => void,
 *   max?: number,
 *   retryMs?: number,
 *   timerMs?: number,
 * }} options
 *   pool: node-postgres pool to take the listening connection from; db:
 *   where to poll (any Drizzle database); since: the version to resume from
 *   (persist info.version to resume after a restart).
 * @returns {Promise<Subscription>}
 */
export async function subscribeClips({
  pool, db, userId, since = "0", onChanges,
  onError = (err) => console.error("clip subscriber:", err),
  max = 100, retryMs = 50, timerMs = 30_000,
}) {
  let version = since;
  let wanted = 0n;                 // the highest version a notification named
  /** @type {Promise<void> | null} */
  let running = null;
  let again = false;
  let closed = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let retry;

  /** @param {PollReason} reason */
  async function pollLoop(reason) {
    do {
      again = false;
      for (;;) {
        const feed = await clipChanges(db, { userId, since: version, max });
        version = feed.version;
        if (feed.changes.length > 0) await onChanges(feed.changes, { version, reason });
        if (feed.changes.length < max) break;
      }
    } while (again && !closed);
    if (!closed && wanted > BigInt(version) && retry === undefined) {
      retry = setTimeout(() => { retry = undefined; poll("retry"); }, retryMs);
    }
  }

  /** @param {PollReason} [reason] */
  function poll(reason = "timer") {
    if (closed) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = pollLoop(reason).catch(onError).finally(() => { running = null; });
    return running;
  }

  const listener = await pool.connect();
  listener.on("notification", (msg) => {
    if (msg.channel !== CHANNEL || !msg.payload) return;
    const note = JSON.parse(msg.payload);
    if (note.user_id !== userId) return;
    // The version is read from the text: JSON.parse rounds past 2^53.
    const v = BigInt(/"version":(\d+)\}$/.exec(msg.payload)?.[1] ?? "0");
    if (v > wanted) wanted = v;
    if (v > BigInt(version)) poll("notify");
  });
  listener.on("error", onError);
  await listener.query(`LISTEN ${CHANNEL}`);
  await poll("start");
  const timer = setInterval(() => poll("timer"), timerMs);
  timer.unref();

  return {
    get version() { return version; },
    poll,
    async close() {
      closed = true;
      clearInterval(timer);
      clearTimeout(retry);
      await running;
      await listener.query(`UNLISTEN ${CHANNEL}`).catch(() => {});
      listener.release();
    },
  };
}
