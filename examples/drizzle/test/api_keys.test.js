// @ts-check
// API keys: every code of dd_authorize_and_charge, through the wrapper and
// through the request handler.
import { test } from "node:test";
import assert from "node:assert/strict";
import { eq, sql } from "drizzle-orm";
import { authorizeAndCharge, createApiKey, creditBalance, grantCredit, revokeApiKey, verifyApiKey } from "../src/dd.js";
import { meteredHandler, REFUSALS } from "../src/handler.js";
import { apiKeys } from "../src/schema.js";
import { connectNodePg } from "../src/db.js";
import { newUser, withEachDriver } from "./helpers.js";

/**
 * A user with one key of each kind: good (with 5 credits), unknown, revoked,
 * expired, broke (a good key of a user without credit), malformed.
 * @param {import("../src/dd.js").Db} db
 */
async function keysOfEveryKind(db) {
  const userId = newUser("keys");
  const good = await createApiKey(db, { userId, name: "laptop" });
  await grantCredit(db, { userId, amount: 5 });
  const revoked = await createApiKey(db, { userId, name: "old laptop" });
  assert.equal(await revokeApiKey(db, revoked.keyId), true);
  assert.equal(await revokeApiKey(db, revoked.keyId), false, "revoked once");
  const expired = await createApiKey(db, { userId, name: "trial", expiresAt: new Date(Date.now() + 60_000) });
  // Its time passes: moved into the past through the Drizzle schema.
  await db.update(apiKeys).set({ expiresAt: sql`now() - interval '1 minute'` }).where(eq(apiKeys.id, expired.keyId));
  const broke = await createApiKey(db, { userId: newUser("broke") });
  // Well formed (prefix, base62, checksum) but never issued: a key of another
  // database, in effect.  Made by changing one character of a good key and
  // recomputing nothing would be MALFORMED, so take a real key and delete it.
  const gone = await createApiKey(db, { userId });
  await db.delete(apiKeys).where(eq(apiKeys.id, gone.keyId));
  return {
    userId,
    keys: {
      VALID: good.apiKey,
      MALFORMED: good.apiKey.slice(0, -1) + (good.apiKey.endsWith("A") ? "B" : "A"),
      NOT_FOUND: gone.apiKey,
      REVOKED: revoked.apiKey,
      EXPIRED: expired.apiKey,
      INSUFFICIENT_CREDITS: broke.apiKey,
    },
    keyId: good.keyId,
  };
}

test("authorizeAndCharge maps MALFORMED, NOT_FOUND, REVOKED, EXPIRED and INSUFFICIENT_CREDITS to distinct results", async () => {
  await withEachDriver(async (db, driver) => {
    const { userId, keys, keyId } = await keysOfEveryKind(db);
    /** @type {Record<string, import("../src/dd.js").Authorization>} */
    const results = {};
    for (const [code, apiKey] of Object.entries(keys)) {
      results[code] = await authorizeAndCharge(db, { apiKey, amount: 2, requestId: `req-${code}`, endpoint: "/v1/clip" });
      assert.equal(results[code].code, code, `${driver}: ${code}`);
      assert.equal(results[code].valid, code === "VALID", `${driver}: valid only for VALID`);
      assert.equal(results[code].ok, code === "VALID", `${driver}: charged only for VALID`);
    }
    assert.deepEqual({ ...results.VALID, usageId: 0 },
      { valid: true, code: "VALID", keyId, userId, ok: true, balance: 3, usageId: 0, replayed: false });
    assert.deepEqual(results.MALFORMED, { valid: false, code: "MALFORMED", keyId: null, userId: null, ok: false, balance: null, usageId: null, replayed: false });
    assert.equal(results.NOT_FOUND.keyId, null);
    assert.equal(results.REVOKED.userId, userId, "a revoked key still names its user");
    assert.equal(results.EXPIRED.userId, userId);
    assert.equal(new Set(Object.values(results).map((r) => JSON.stringify(r))).size, 6, "six distinct results");

    // Through the request handler: each code its status and error.
    let worked = 0;
    const handler = meteredHandler(db, { endpoint: "/v1/clip", cost: 2, work: async ({ userId: who }) => ({ clip: ++worked, for: who }) });
    /** @type {Record<string, { status: number, body: any }>} */
    const responses = {};
    for (const [code, apiKey] of Object.entries(keys)) {
      const res = await handler(new Request("http://api.test/v1/clip", {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "idempotency-key": `http-${code}` },
      }));
      responses[code] = { status: res.status, body: await res.json() };
      if (code === "VALID") {
        assert.equal(res.status, 200, driver);
        assert.deepEqual(responses[code].body, { clip: 1, for: userId });
        assert.equal(res.headers.get("x-credits-remaining"), "1");
      } else {
        const want = REFUSALS[/** @type {keyof typeof REFUSALS} */ (code)];
        assert.equal(res.status, want.status, `${driver}: ${code} -> HTTP ${want.status}`);
        assert.equal(responses[code].body.error, want.error);
        assert.equal(res.headers.has("www-authenticate"), res.status === 401);
      }
    }
    assert.deepEqual(Object.fromEntries(Object.entries(responses).map(([c, r]) => [c, r.status])),
      { VALID: 200, MALFORMED: 401, NOT_FOUND: 401, REVOKED: 401, EXPIRED: 401, INSUFFICIENT_CREDITS: 402 });
    assert.equal(new Set(Object.values(responses).map((r) => JSON.stringify(r))).size, 6, "six distinct responses");

    // A retry of the good request: answered again, charged once.
    const retry = await handler(new Request("http://api.test/v1/clip", {
      method: "POST", headers: { authorization: `Bearer ${keys.VALID}`, "idempotency-key": "http-VALID" },
    }));
    assert.equal(retry.status, 200);
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(retry.headers.get("x-credits-remaining"), "1", "nothing charged again");
    // The work fails: the credits go back.
    const failing = meteredHandler(db, { endpoint: "/v1/clip", cost: 1, work: async () => { throw new Error("model down"); } });
    await assert.rejects(failing(new Request("http://api.test/v1/clip", { headers: { authorization: `Bearer ${keys.VALID}` } })), /model down/);
    assert.equal((await verifyApiKey(db, keys.VALID)).valid, true);
    assert.equal(await creditBalance(db, userId), 1, "refunded");
    // No key at all, and a bad idempotency key.
    const none = await handler(new Request("http://api.test/v1/clip"));
    assert.equal(none.status, 401);
    assert.equal((await none.json()).error, "malformed_api_key");
    const bad = await handler(new Request("http://api.test/v1/clip", {
      headers: { authorization: `Bearer ${keys.VALID}`, "idempotency-key": "x".repeat(300) },
    }));
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /request_id is too long/);
  });
});

test("createApiKey and verifyApiKey: the key once, its hash stored", async () => {
  const { db, close } = connectNodePg();
  try {
    const userId = newUser("verify");
    const { keyId, apiKey } = await createApiKey(db, { userId, name: "ci" });
    assert.match(apiKey, /^ddk_[0-9A-Za-z]{49}$/);
    assert.deepEqual(await verifyApiKey(db, apiKey), { valid: true, code: "VALID", keyId, userId });
    assert.deepEqual(await verifyApiKey(db, "ddk_not-a-key"), { valid: false, code: "MALFORMED", keyId: null, userId: null });
    assert.deepEqual(await verifyApiKey(db, null), { valid: false, code: "MALFORMED", keyId: null, userId: null });
    const [row] = await db.select().from(apiKeys).where(eq(apiKeys.id, keyId));
    assert.equal(row.prefix, apiKey.slice(0, 12));
    assert.ok(Buffer.isBuffer(row.keyHash) && row.keyHash.length === 32, "key_hash: 32 bytes of SHA-256");
    assert.ok(!JSON.stringify(row).includes(apiKey.slice(12)), "the key itself is not stored");
  } finally {
    await close();
  }
});
