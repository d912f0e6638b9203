// @ts-check
// src/handler.js -- an API endpoint that authorizes and charges in one call.
//
// A web-standard handler (Request in, Response out: Hono, Next.js route
// handlers, Bun, Deno, or node:http through a small adapter).  The key comes
// in `Authorization: Bearer <key>`, the client's idempotency key in
// `Idempotency-Key`; dd_authorize_and_charge verifies the key, charges its
// user and logs the request in one round trip, and each code maps to a status:
import { randomUUID } from "node:crypto";
import { authorizeAndCharge, refundCredit, sqlState } from "./dd.js";

/**
 * Status and error for each code that stops a request.  The four key codes
 * are 401 (RFC 6750's invalid_token: the client must get another key), told
 * apart by error; a good key without the credit is 402 Payment Required.
 * @type {Record<Exclude<import("./dd.js").Authorization["code"], "VALID">, { status: number, error: string }>}
 */
export const REFUSALS = {
  MALFORMED: { status: 401, error: "malformed_api_key" },
  NOT_FOUND: { status: 401, error: "unknown_api_key" },
  EXPIRED: { status: 401, error: "expired_api_key" },
  REVOKED: { status: 401, error: "revoked_api_key" },
  INSUFFICIENT_CREDITS: { status: 402, error: "insufficient_credits" },
};

/**
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * A handler for one metered endpoint: cost credits per request, then work
 * (given the authorized user) makes the response body.
 * @template T
 * @param {import("./dd.js").Db} db
 * @param {{ endpoint: string, cost?: number, work: (auth: { userId: string, keyId: number }) => Promise<T> }} options
 * @returns {(request: Request) => Promise<Response>}
 */
export function meteredHandler(db, { endpoint, cost = 1, work }) {
  return async (request) => {
    const header = request.headers.get("authorization") ?? "";
    const apiKey = header.startsWith("Bearer ") ? header.slice(7) : null;
    // The client's idempotency key, or one of our own: a charge needs a
    // request id to be refunded.
    const requestId = request.headers.get("idempotency-key") ?? randomUUID();
    let auth;
    try {
      auth = await authorizeAndCharge(db, { apiKey, amount: cost, requestId, endpoint });
    } catch (err) {
      // An argument the function refused (an idempotency key over 256
      // characters, ...): the client's fault, with the function's message.
      const state = sqlState(err);
      if (state?.startsWith("22")) {
        const cause = /** @type {any} */ (err).cause ?? err;
        return json(400, { error: "bad_request", message: cause.message });
      }
      throw err;
    }
    if (auth.code !== "VALID") {
      const { status, error } = REFUSALS[auth.code];
      return json(status, { error, balance: auth.balance },
        status === 401 ? { "www-authenticate": `Bearer error="invalid_token", error_description="${error}"` } : {});
    }
    const headers = { "x-credits-remaining": String(auth.balance) };
    // A retry of a request charged before (same Idempotency-Key): charged
    // once, answered again (Stripe's Idempotent-Replayed header).
    if (auth.replayed) Object.assign(headers, { "idempotent-replayed": "true" });
    const userId = /** @type {string} */ (auth.userId);
    let body;
    try {
      body = await work({ userId, keyId: /** @type {number} */ (auth.keyId) });
    } catch (err) {
      // The work failed: the credits go back (once, whatever the retries),
      // and the framework answers 500.
      if (!auth.replayed) await refundCredit(db, { userId, requestId, reason: "request failed" });
      throw err;
    }
    return json(200, body, headers);
  };
}
