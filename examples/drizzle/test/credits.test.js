// @ts-check
// Credits from a pool: the race the seed lost, a retry, a failed job refunded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { and, count, eq, sql } from "drizzle-orm";
import { chargeCredit, creditBalance, grantCredit, refundCredit, sqlState } from "../src/dd.js";
import { deductCreditsTheSeedsWay, runPaidRequest } from "../src/credits.js";
import { apiUsageLog } from "../src/schema.js";
import { connectNodePg, connectPostgresJs } from "../src/db.js";
import { newUser, withEachDriver } from "./helpers.js";

/** @param {import("../src/dd.js").Db} db @param {string} userId */
async function usageRows(db, userId) {
  const [{ n }] = await db.select({ n: count() }).from(apiUsageLog).where(eq(apiUsageLog.userId, userId));
  return n;
}

/** @param {import("../src/dd.js").Db} db @param {string} userId */
async function auditClean(db, userId) {
  const result = await db.execute(sql`SELECT count(*)::int AS n FROM dd_credit_audit() WHERE user_id = ${userId}`);
  const rows = Array.isArray(result) ? result : result.rows;
  return rows[0].n === 0;
}

test("32 concurrent chargeCredit calls from a pool on a balance of 10: exactly 10 succeed", async (t) => {
  await withEachDriver(async (db, driver) => {
    const userId = newUser("race");
    await grantCredit(db, { userId, amount: 10 });
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) =>
      chargeCredit(db, { userId, amount: 1, requestId: `req-${i}`, endpoint: "/v1/clip" })));
    const ok = results.filter((r) => r.ok);
    assert.equal(ok.length, 10, `${driver}: successes`);
    assert.equal(new Set(ok.map((r) => r.usageId)).size, 10, `${driver}: ten distinct usage rows`);
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.balance), Array(22).fill(0),
      `${driver}: the other 22 are refused, with the balance at 0`);
    assert.equal(await creditBalance(db, userId), 0);
    assert.equal(await usageRows(db, userId), 10, `${driver}: one usage row per success`);
    assert.ok(await auditClean(db, userId), `${driver}: the ledger balances`);
  }, { max: 32 });

  // For contrast, not an assertion: the seed's read-check-write on the same race.
  const { db, close } = connectNodePg({ max: 32 });
  try {
    const userId = newUser("seed");
    await grantCredit(db, { userId, amount: 10 });
    const sold = (await Promise.all(Array.from({ length: 32 }, () =>
      deductCreditsTheSeedsWay(db, userId, 1)))).filter(Boolean).length;
    t.diagnostic(`the seed's read-check-write sold ${sold} requests for 10 credits; balance left ${await creditBalance(db, userId)}`);
  } finally {
    await close();
  }
});

test("a retry with the same request id replays: one charge, the first outcome", async () => {
  await withEachDriver(async (db, driver) => {
    const userId = newUser("retry");
    await grantCredit(db, { userId, amount: 10 });
    const first = await chargeCredit(db, { userId, amount: 3, requestId: "req-42", endpoint: "/v1/clip", metadata: { model: "small" } });
    assert.deepEqual({ ...first, usageId: 0 }, { ok: true, balance: 7, usageId: 0, replayed: false }, driver);
    const retry = await chargeCredit(db, { userId, amount: 3, requestId: "req-42" });
    assert.deepEqual(retry, { ...first, replayed: true }, `${driver}: the retry returns the first charge`);
    // Sixteen copies of a new request at once (a client retrying on timeouts).
    const burst = await Promise.all(Array.from({ length: 16 }, () =>
      chargeCredit(db, { userId, amount: 2, requestId: "req-43" })));
    assert.equal(burst.filter((r) => !r.replayed).length, 1, `${driver}: one of the copies charges`);
    assert.equal(new Set(burst.map((r) => r.usageId)).size, 1, `${driver}: all name one usage row`);
    assert.equal(await creditBalance(db, userId), 5, `${driver}: 10 - 3 - 2`);
    assert.equal(await usageRows(db, userId), 2);
    assert.ok(await auditClean(db, userId));
  }, { max: 16 });
});

test("runPaidRequest: charged once per request id, refunded when the work fails", async () => {
  await withEachDriver(async (db, driver) => {
    const userId = newUser("job");
    await grantCredit(db, { userId, amount: 5 });
    const done = await runPaidRequest(db, { userId, requestId: "job-1", cost: 2 }, async () => "clip 1");
    assert.deepEqual({ ...done, usageId: 0 }, { status: "done", result: "clip 1", balance: 3, usageId: 0 }, driver);
    const again = await runPaidRequest(db, { userId, requestId: "job-1", cost: 2 }, async () => assert.fail("work ran twice"));
    assert.equal(again.status, "replayed");
    await assert.rejects(runPaidRequest(db, { userId, requestId: "job-2", cost: 2 }, async () => {
      throw new Error("transcoder down");
    }), /transcoder down/);
    assert.equal(await creditBalance(db, userId), 3, `${driver}: the failed job's credits came back`);
    const broke = await runPaidRequest(db, { userId, requestId: "job-3", cost: 4 }, async () => assert.fail("ran without credit"));
    assert.deepEqual(broke, { status: "insufficient_credits", balance: 3 });
    assert.ok(await auditClean(db, userId));
  });
});

test("grants are idempotent on their key; a refund is given once (55000 after)", async () => {
  await withEachDriver(async (db, driver) => {
    const userId = newUser("grant");
    assert.equal(await grantCredit(db, { userId, amount: 100, reason: "pro plan", idempotencyKey: "invoice-1" }), 100);
    assert.equal(await grantCredit(db, { userId, amount: 100, idempotencyKey: "invoice-1" }), 100, `${driver}: granted once`);
    await chargeCredit(db, { userId, amount: 30, requestId: "r1" });
    assert.equal(await refundCredit(db, { userId, requestId: "r1", reason: "timeout" }), 100);
    await assert.rejects(refundCredit(db, { userId, requestId: "r1" }), (err) => sqlState(err) === "55000");
    await assert.rejects(refundCredit(db, { userId, requestId: "never" }), (err) => sqlState(err) === "P0002");
    const [{ credits }] = await db.select({ credits: apiUsageLog.credits }).from(apiUsageLog)
      .where(and(eq(apiUsageLog.userId, userId), eq(apiUsageLog.requestId, "r1")));
    assert.equal(credits, 30, "the usage row keeps what was charged");
  });
});
