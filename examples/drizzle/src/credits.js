// @ts-check
// src/credits.js -- credit deduction, the seed's way and done right.
import { eq } from "drizzle-orm";
import { apiCredits } from "./schema.js";
import { chargeCredit, refundCredit } from "./dd.js";

/**
 * The seed's deduction, as it was written for Convex, where mutations run one
 * at a time: read the balance, check it, write it back.  On PostgreSQL two
 * requests read the same balance and both write balance - cost: credits are
 * oversold, nothing is logged, a retry charges twice.  Kept here only to show
 * what chargeCredit replaces; never write to api_credits yourself.
 * @param {import("./dd.js").Db} db
 * @param {string} userId
 * @param {number} cost
 * @returns {Promise<boolean>}
 */
export async function deductCreditsTheSeedsWay(db, userId, cost) {
  const [row] = await db.select({ balance: apiCredits.balance }).from(apiCredits)
    .where(eq(apiCredits.userId, userId));
  if (!row || row.balance < cost) return false;
  await db.update(apiCredits).set({ balance: row.balance - cost })
    .where(eq(apiCredits.userId, userId));
  return true;
}

/**
 * @template T
 * @typedef {{ status: "done", result: T, balance: number, usageId: number }
 *         | { status: "replayed", balance: number, usageId: number }
 *         | { status: "insufficient_credits", balance: number | null }} PaidResult
 */

/**
 * Done right: charge first, in one call (check and debit under the balance
 * row's lock, the request logged, idempotent on requestId), then do the work;
 * if the work fails, give the credits back.
 *
 * requestId is the client's idempotency key: a retry of a request that was
 * charged is answered "replayed" and charges nothing (the work of the first
 * attempt stands, or was refunded).
 * @template T
 * @param {import("./dd.js").Db} db
 * @param {{ userId: string, requestId: string, cost: number, endpoint?: string }} request
 * @param {() => Promise<T>} work
 * @returns {Promise<PaidResult<T>>}
 */
export async function runPaidRequest(db, { userId, requestId, cost, endpoint }, work) {
  const charge = await chargeCredit(db, { userId, amount: cost, requestId, endpoint });
  if (!charge.ok) return { status: "insufficient_credits", balance: charge.balance };
  const balance = /** @type {number} */ (charge.balance);
  const usageId = /** @type {number} */ (charge.usageId);
  if (charge.replayed) return { status: "replayed", balance, usageId };
  let result;
  try {
    result = await work();
  } catch (err) {
    await refundCredit(db, { userId, requestId, reason: `failed: ${err instanceof Error ? err.message : err}` });
    throw err;
  }
  return { status: "done", result, balance, usageId };
}
