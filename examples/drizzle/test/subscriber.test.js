// @ts-check
// The LISTEN + change feed subscriber.
import { test } from "node:test";
import assert from "node:assert/strict";
import { and, eq } from "drizzle-orm";
import { clipChanges } from "../src/dd.js";
import { clips } from "../src/schema.js";
import { connectNodePg, connectPostgresJs } from "../src/db.js";
import { subscribeClips } from "../src/subscriber.js";
import { newUser, waitFor } from "./helpers.js";

test("a clip change arrives through LISTEN, and the feed returns it", async () => {
  const listen = connectNodePg({ max: 2 });
  const writer = connectPostgresJs({ max: 2 });   // written through the other driver
  const userId = newUser("live");
  /** @type {{ changes: import("../src/dd.js").ClipChange[], reason: string }[]} */
  const received = [];
  const sub = await subscribeClips({
    pool: listen.pool, db: listen.db, userId,
    timerMs: 3_600_000,          // no timer poll in this test: notifications only
    onChanges: (changes, { reason }) => { received.push({ changes, reason }); },
  });
  try {
    assert.deepEqual(received, [], "nothing yet");
    const start = sub.version;

    const [{ id }] = await writer.db.insert(clips).values({ userId, title: "Vacuum deep dive", tags: ["postgres"] })
      .returning({ id: clips.id });
    await waitFor(() => received.length === 1, "the insert");
    assert.equal(received[0].reason, "notify", "polled because of the notification");
    assert.deepEqual(received[0].changes.map((c) => [c.op, c.id, c.clip?.title]), [["upsert", id, "Vacuum deep dive"]]);
    assert.ok(BigInt(sub.version) > BigInt(start), "the version moved on");

    await writer.db.update(clips).set({ title: "Vacuum, deeper" }).where(and(eq(clips.userId, userId), eq(clips.id, id)));
    await waitFor(() => received.length === 2, "the update");
    assert.deepEqual(received[1].changes.map((c) => [c.op, c.id, c.clip?.title]), [["upsert", id, "Vacuum, deeper"]]);

    // Another user's change wakes nobody here.
    await writer.db.insert(clips).values({ userId: newUser("someone-else"), title: "x" });
    await writer.db.delete(clips).where(and(eq(clips.userId, userId), eq(clips.id, id)));
    await waitFor(() => received.length === 3, "the delete");
    assert.deepEqual(received[2].changes, [{ op: "delete", id, version: received[2].changes[0].version, clip: null }]);
    assert.deepEqual(received.map((r) => r.reason), ["notify", "notify", "notify"]);

    // A poll now finds nothing new: nothing is delivered twice.  Read from
    // the start, the feed has the clip once, in its last state.
    await sub.poll();
    assert.equal(received.length, 3, "nothing is delivered twice");
    const feed = await clipChanges(listen.db, { userId, since: start });
    assert.deepEqual(feed.changes, received[2].changes);
    // The high-water is the given version or later: any transaction that
    // ended meanwhile (another test file, autovacuum) may move it on.
    assert.ok(BigInt(feed.version) >= BigInt(sub.version), "the feed's version is the subscriber's or later");
  } finally {
    await sub.close();
    await listen.close();
    await writer.close();
  }
});
