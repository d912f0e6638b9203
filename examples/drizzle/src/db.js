// @ts-check
// src/db.js -- a Drizzle database over either driver.  Both read the libpq
// environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD) and
// nothing else; PGHOST may be a unix socket directory.
import pg from "pg";
import postgres from "postgres";
import { drizzle as drizzleNodePg } from "drizzle-orm/node-postgres";
import { drizzle as drizzlePostgresJs } from "drizzle-orm/postgres-js";
import * as schema from "./schema.js";

/**
 * Drizzle over node-postgres (`pg`), with a pool of at most max connections.
 * @param {{ max?: number }} [options]
 */
export function connectNodePg({ max = 10 } = {}) {
  const pool = new pg.Pool({ max });
  return { db: drizzleNodePg(pool, { schema }), pool, close: () => pool.end() };
}

/**
 * Drizzle over postgres-js (`postgres`), with at most max connections.
 * @param {{ max?: number }} [options]
 */
export function connectPostgresJs({ max = 10 } = {}) {
  const client = postgres({ max, onnotice: () => {} });
  return { db: drizzlePostgresJs(client, { schema }), client, close: () => client.end() };
}
