// @ts-check
// test/helpers.js -- shared by the tests (not a test file: npm test runs
// test/*.test.js).  The tests expect PGHOST, PGPORT, PGUSER and PGDATABASE to
// name a database where CREATE EXTENSION dd_clipper has run; each test makes
// its own users, so the tests can run again on the same database.
import { randomUUID } from "node:crypto";
import { connectNodePg, connectPostgresJs } from "../src/db.js";

/** A user id nobody else uses. @param {string} label */
export const newUser = (label) => `${label}-${randomUUID()}`;

/** Both drivers, each opened with at most max connections. */
export const drivers = /** @type {const} */ ([
  ["node-postgres", connectNodePg],
  ["postgres-js", connectPostgresJs],
]);

/**
 * Run fn with a database of each driver, closing it afterwards; returns the
 * results by driver name.
 * @template T
 * @param {(db: import("../src/dd.js").Db, name: string) => Promise<T>} fn
 * @param {{ max?: number }} [options]
 * @returns {Promise<Record<string, T>>}
 */
export async function withEachDriver(fn, options) {
  /** @type {Record<string, T>} */
  const out = {};
  for (const [name, connect] of drivers) {
    const conn = connect(options);
    try {
      out[name] = await fn(conn.db, name);
    } finally {
      await conn.close();
    }
  }
  return out;
}

/**
 * Wait until check() returns a truthy value, or fail after ms.
 * @template T
 * @param {() => T} check
 * @param {string} what
 * @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function waitFor(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
