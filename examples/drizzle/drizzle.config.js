// drizzle-kit's configuration: `npx drizzle-kit pull` writes drizzle/schema.ts
// from a database where CREATE EXTENSION dd_clipper has run.  The connection
// comes from the libpq variables (PGHOST may be a socket directory).
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  out: "./drizzle",
  dbCredentials: {
    host: process.env.PGHOST ?? "localhost",
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE ?? process.env.PGUSER,
    ssl: false,
  },
  // The five tables an application reads and writes.  The extension's
  // bookkeeping tables (credit_grants, clip_tombstones, ...) are written only
  // by its functions; test/schema.test.js checks this list against the
  // extension's tables.
  tablesFilter: ["api_keys", "api_credits", "api_usage_log", "clips", "usage_events"],
});
