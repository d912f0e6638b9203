// @ts-check
// The Drizzle schema against the installed extension.
//
// drizzle/schema.ts (with drizzle/meta/0000_snapshot.json) is what
// `npx drizzle-kit pull` writes from a database with the extension, kept as
// it came.  src/schema.js is that file finished by hand where drizzle-kit
// 0.31 gets PostgreSQL wrong (see its header).  The tests pull again from the
// database under test and fail when either no longer matches.
//
// drizzle-kit reads two things in no fixed order (aggregates without ORDER
// BY), so they come out differently from PostgreSQL 15 and 18: the columns
// of a composite primary key, and which operator class goes with which
// column of an index.  Snapshots are compared without them (inOrder), and
// the primary keys of src/schema.js are checked against the catalog instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import { getTableConfig } from "drizzle-orm/pg-core";
import { generateDrizzleJson, generateMigration } from "drizzle-kit/api";
import config from "../drizzle.config.js";
import * as schema from "../src/schema.js";
import { connectNodePg } from "../src/db.js";

const root = fileURLToPath(new URL("..", import.meta.url));

// The extension's tables that are not in the schema: written only by its
// functions and triggers (or the Convex import), never by an application.
const BOOKKEEPING = ["api_usage_rollup", "clip_cursor_key", "clip_tombstones", "convex_opening_balances", "convex_unmapped", "credit_grants", "credit_refunds", "migrations", "row_security_keys"];

/** @type {Promise<{ snapshot: any }>} */
let pulled;
/** drizzle-kit pull into a temporary folder, with this project's configuration (once). */
function pullNow() {
  pulled ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "dd-drizzle-pull-"));
    try {
      const cfg = join(dir, "drizzle.config.js");
      await writeFile(cfg, `import base from ${JSON.stringify(join(root, "drizzle.config.js"))};\n` +
        `export default { ...base, out: ${JSON.stringify(join(dir, "out"))} };\n`);
      await promisify(execFile)(join(root, "node_modules/.bin/drizzle-kit"), ["pull", "--config", cfg], { cwd: root })
        .catch((err) => { throw new Error(`drizzle-kit pull failed:\n${err.stdout}\n${err.stderr}`); });
      return {
        snapshot: JSON.parse(await readFile(join(dir, "out/meta/0000_snapshot.json"), "utf8")),
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return pulled;
}

/**
 * A snapshot without what drizzle-kit reads in no fixed order: primary key
 * columns sorted, index columns without their operator classes.
 * @param {any} snapshot
 */
function inOrder(snapshot) {
  const copy = structuredClone(snapshot);
  for (const table of Object.values(copy.tables)) {
    for (const pk of Object.values(table.compositePrimaryKeys)) pk.columns.sort();
    for (const index of Object.values(table.indexes)) for (const column of index.columns) delete column.opclass;
  }
  return copy;
}

test("drizzle-kit pull from the installed extension writes the committed drizzle/", async () => {
  const now = await pullNow();
  const kept = JSON.parse(await readFile(join(root, "drizzle/meta/0000_snapshot.json"), "utf8"));
  const withoutIds = ({ id, prevId, ...rest }) => rest;   // random at every pull
  assert.deepEqual(withoutIds(inOrder(now.snapshot)), withoutIds(inOrder(kept)),
    "drizzle/ is stale: run `npm run pull` and carry the change into src/schema.js");
});

test("src/schema.js matches the pulled schema: drizzle-kit generates no migration between them", async () => {
  const pulled = inOrder((await pullNow()).snapshot);
  // What else drizzle-kit 0.31's pull gets wrong, set right before comparing
  // (each is fixed by hand in src/schema.js):
  // - clips.tags DEFAULT '{}'::text[] is read as '{""}' (one empty tag);
  const tags = pulled.tables["public.clips"].columns.tags;
  assert.ok(["'{\"\"}'", "'{}'"].includes(tags.default), `clips.tags default pulled as ${tags.default}`);
  tags.default = "'{}'";
  // - tablesFilter keeps out the bookkeeping tables but not their sequences.
  pulled.sequences = {};
  const mine = inOrder(generateDrizzleJson(schema, pulled.id));
  const statements = await generateMigration(pulled, mine);
  assert.deepEqual(statements, [], "src/schema.js differs from the database by these statements");
});

test("the schema has every table of the extension but its bookkeeping, and its primary keys in order", async () => {
  const names = Object.values(schema).map((t) => getTableConfig(/** @type {any} */ (t)).name).sort();
  assert.deepEqual(names, [...config.tablesFilter].sort(), "drizzle.config.js pulls the tables of src/schema.js");
  const { db, close } = connectNodePg({ max: 1 });
  try {
    const result = await db.execute(sql`
      SELECT c.relname AS name
        FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
        JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
       WHERE e.extname = 'dd_clipper' AND d.deptype = 'e' AND c.relkind IN ('r', 'p')
       ORDER BY 1`);
    const tables = (Array.isArray(result) ? result : result.rows).map((r) => r.name);
    assert.deepEqual(tables, [...names, ...BOOKKEEPING].sort(),
      "a table the extension has and the schema does not: pull it, or list it in BOOKKEEPING");

    // Primary keys, columns in the catalog's order.
    const pks = await db.execute(sql`
      SELECT c.relname AS name, array_agg(a.attname::text ORDER BY k.n) AS columns
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
       WHERE i.indisprimary AND c.relname = ANY (${`{${names.join(",")}}`}::text[])
         AND c.relnamespace = to_regnamespace(current_schema())
       GROUP BY c.relname`);
    const catalog = Object.fromEntries((Array.isArray(pks) ? pks : pks.rows).map((r) => [r.name, r.columns]));
    for (const table of Object.values(schema)) {
      const cfg = getTableConfig(/** @type {any} */ (table));
      const declared = cfg.primaryKeys.length
        ? cfg.primaryKeys[0].columns.map((c) => c.name)
        : cfg.columns.filter((c) => c.primary).map((c) => c.name);
      assert.deepEqual(declared, catalog[cfg.name], `${cfg.name}: primary key columns, in order`);
    }
  } finally {
    await close();
  }
});
