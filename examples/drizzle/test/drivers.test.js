// @ts-check
// The wrappers return the same plain objects whichever driver runs them.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dd from "../src/dd.js";
import { clips } from "../src/schema.js";
import { connectNodePg } from "../src/db.js";
import { newUser, withEachDriver } from "./helpers.js";

/** Plain data: objects of Object.prototype, arrays, strings, numbers, booleans, null. */
function assertPlain(value, path = "result") {
  if (value === null || ["string", "number", "boolean"].includes(typeof value)) return;
  if (Array.isArray(value)) return value.forEach((v, i) => assertPlain(v, `${path}[${i}]`));
  assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} is a plain object`);
  for (const [k, v] of Object.entries(value)) assertPlain(v, `${path}.${k}`);
}

/**
 * The feed with its high-water version checked and replaced by "H".
 * @param {import("../src/dd.js").ClipChanges} feed
 */
function highWater(feed) {
  assert.match(feed.version, /^\d+$/);
  for (const c of feed.changes) assert.ok(BigInt(c.version) <= BigInt(feed.version), "every change is at or below the version");
  return { ...feed, version: "H" };
}

test("every wrapper returns the same plain objects over node-postgres and postgres-js", async () => {
  const setup = connectNodePg();
  const userId = newUser("same");
  let apiKey, keyId;
  try {
    await dd.grantCredit(setup.db, { userId, amount: 50 });
    await dd.chargeCredit(setup.db, { userId, amount: 4, requestId: "r-1", metadata: { model: "small" } });
    ({ apiKey, keyId } = await dd.createApiKey(setup.db, { userId, name: "both" }));
    await dd.authorizeAndCharge(setup.db, { apiKey, amount: 1, requestId: "r-2" });
    await setup.db.insert(clips).values([
      { userId, title: "one", tags: ["a", 'b "quoted"'], blobProvider: "s3", blobKey: "k1", blobSha256: Buffer.alloc(32, 7), blobSize: 10 },
      { userId, title: "two", notes: "postgres" },
    ]);
    await dd.trackEvent(setup.db, { userId, event: "e", eventId: "evt-1" });
  } finally {
    await setup.close();
  }

  const results = await withEachDriver(async (db) => ({
    balance: await dd.creditBalance(db, userId),
    chargeReplay: await dd.chargeCredit(db, { userId, amount: 4, requestId: "r-1" }),
    verify: await dd.verifyApiKey(db, apiKey),
    authorizeReplay: await dd.authorizeAndCharge(db, { apiKey, amount: 1, requestId: "r-2" }),
    authorizeZero: await dd.authorizeAndCharge(db, { apiKey, amount: 0 }),
    malformed: await dd.authorizeAndCharge(db, { apiKey: "nope" }),
    page: await dd.clipsPage(db, { userId, pageSize: 5, tags: ['b "quoted"'] }),
    search: await dd.clipsPage(db, { userId, search: "postgres", sort: "relevance" }),
    // The feed's version is the poll's high-water mark, which moves on as
    // other transactions end: the same call later may return a later one.
    changes: highWater(await dd.clipChanges(db, { userId, since: "0", max: 10 })),
    eventRetry: await dd.trackEvent(db, { userId, event: "e", eventId: "evt-1" }),
  }));
  const pg = results["node-postgres"];
  assertPlain(pg);
  assert.deepStrictEqual(results["postgres-js"], pg);

  assert.equal(pg.balance, 45);
  assert.deepEqual(pg.chargeReplay, { ok: true, balance: 46, usageId: pg.chargeReplay.usageId, replayed: true });
  assert.deepEqual(pg.verify, { valid: true, code: "VALID", keyId, userId });
  assert.equal(pg.authorizeReplay.replayed, true);
  assert.deepEqual({ ...pg.authorizeZero, usageId: null }, { valid: true, code: "VALID", keyId, userId, ok: true, balance: 45, usageId: null, replayed: false });
  assert.equal(pg.page.page.length, 1);
  const clip = pg.page.page[0];
  assert.deepEqual(clip.tags, ["a", 'b "quoted"'], "a text[] argument with quotes round-trips");
  assert.equal(clip.blobSha256, "\\x" + "07".repeat(32));
  assert.equal(clip.blobSize, 10);
  assert.match(clip.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/);
  assert.deepEqual(pg.search.page.map((c) => c.title), ["two"]);
  assert.deepEqual(pg.changes.changes.map((c) => [c.op, c.clip?.title, c.version === c.clip?.version]),
    [["upsert", "one", true], ["upsert", "two", true]]);
  assert.equal(pg.eventRetry, null);
});
