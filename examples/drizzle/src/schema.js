// @ts-nocheck -- as drizzle-kit wrote it (see below), not annotated.
// src/schema.js -- the Drizzle schema of dd_clipper's five tables.
//
// Written by `npx drizzle-kit pull` (drizzle-kit 0.31) from a database with
// the extension -- its output is kept as it came in drizzle/schema.ts -- then
// finished by hand where the pull gets PostgreSQL wrong:
//   - bytea and tsvector columns came as `unknown(...)` (undefined): declared
//     here with customType (bytea reads as a Buffer from either driver);
//   - clips.title DEFAULT '' came as `.default(')` (a syntax error);
//   - clips.tags DEFAULT '{}' came as `.default([""])` (one empty tag);
//   - identity maxValue 9223372036854775807 came as a JavaScript number
//     (rounded to ...776000): written as a string;
//   - the pull kept the sequences of tables its tablesFilter left out
//     (credit_grants_id_seq, ...): removed;
//   - drizzle-kit reads a composite primary key's columns and the operator
//     classes of an index's columns in no fixed order (from aggregates
//     without ORDER BY), so the pull pairs some with the wrong column and
//     gives (id, user_id) for (user_id, id), differently on PostgreSQL 15
//     and 18: written as the extension creates them.
// test/schema.test.js pulls again and fails when this file and the database
// part (comparing primary keys in the catalog's order, and index columns
// without their operator classes).
//
// Clips are written with db.insert(clips) / update / delete like any table;
// the extension's triggers keep search, version and the notifications.
import { pgTable, uniqueIndex, index, unique, check, bigint, text, timestamp, pgPolicy, primaryKey, jsonb, customType } from "drizzle-orm/pg-core"
import { sql } from "drizzle-orm"

const bytea = customType({ dataType: () => "bytea" });
const tsvector = customType({ dataType: () => "tsvector" });

export const apiKeys = pgTable("api_keys", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	id: bigint({ mode: "number" }).primaryKey().generatedAlwaysAsIdentity({ name: "api_keys_id_seq", startWith: 1, increment: 1, minValue: 1, maxValue: "9223372036854775807", cache: 1 }),
	userId: text("user_id").notNull(),
	name: text(),
	prefix: text().notNull(),
	keyHash: bytea("key_hash").notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	lastUsedAt: timestamp("last_used_at", { withTimezone: true, mode: 'string' }),
	expiresAt: timestamp("expires_at", { withTimezone: true, mode: 'string' }),
	revokedAt: timestamp("revoked_at", { withTimezone: true, mode: 'string' }),
	convexId: text("convex_id"),
}, (table) => [
	uniqueIndex("api_keys_user_id_convex_id_key").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.convexId.asc().nullsLast().op("text_ops")).where(sql`(convex_id IS NOT NULL)`),
	index("api_keys_user_id_idx").using("btree", table.userId.asc().nullsLast().op("text_ops")),
	unique("api_keys_key_hash_key").on(table.keyHash),
	check("api_keys_key_hash_check", sql`octet_length(key_hash) = 32`),
]);

export const apiCredits = pgTable("api_credits", {
	userId: text("user_id").primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	balance: bigint({ mode: "number" }).default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	convexId: text("convex_id"),
}, (table) => [
	uniqueIndex("api_credits_user_id_convex_id_key").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.convexId.asc().nullsLast().op("text_ops")).where(sql`(convex_id IS NOT NULL)`),
	pgPolicy("dd_user_rows", { as: "permissive", for: "all", to: ["public"], using: sql`(user_id = dd_claim_user_id())` }),
	check("api_credits_balance_check", sql`balance >= 0`),
]);

export const usageEvents = pgTable("usage_events", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	id: bigint({ mode: "number" }).generatedAlwaysAsIdentity({ name: "usage_events_id_seq", startWith: 1, increment: 1, minValue: 1, maxValue: "9223372036854775807", cache: 1 }),
	userId: text("user_id").notNull(),
	event: text().notNull(),
	properties: jsonb().default({}).notNull(),
	eventId: text("event_id"),
	occurredAt: timestamp("occurred_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	receivedAt: timestamp("received_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	convexId: text("convex_id"),
}, (table) => [
	index("usage_events_received_at_brin").using("brin", table.receivedAt.asc().nullsLast().op("timestamptz_minmax_ops")),
	uniqueIndex("usage_events_user_id_convex_id_key").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.convexId.asc().nullsLast().op("text_ops")).where(sql`(convex_id IS NOT NULL)`),
	index("usage_events_user_id_occurred_at_idx").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.occurredAt.desc().nullsFirst().op("timestamptz_ops")),
	primaryKey({ columns: [table.userId, table.id], name: "usage_events_pkey"}),
	unique("usage_events_user_id_event_id_key").on(table.userId, table.eventId),
	pgPolicy("dd_user_rows", { as: "permissive", for: "all", to: ["public"], using: sql`(user_id = dd_claim_user_id())` }),
]);

export const apiUsageLog = pgTable("api_usage_log", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	id: bigint({ mode: "number" }).generatedAlwaysAsIdentity({ name: "api_usage_log_id_seq", startWith: 1, increment: 1, minValue: 1, maxValue: "9223372036854775807", cache: 1 }),
	userId: text("user_id").notNull(),
	requestId: text("request_id"),
	endpoint: text(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	credits: bigint({ mode: "number" }).default(0).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	apiKeyId: bigint("api_key_id", { mode: "number" }),
	metadata: jsonb(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	balanceAfter: bigint("balance_after", { mode: "number" }),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	convexId: text("convex_id"),
}, (table) => [
	index("api_usage_log_created_at_brin").using("brin", table.createdAt.asc().nullsLast().op("timestamptz_minmax_ops")),
	uniqueIndex("api_usage_log_user_id_convex_id_key").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.convexId.asc().nullsLast().op("text_ops")).where(sql`(convex_id IS NOT NULL)`),
	index("api_usage_log_user_id_created_at_idx").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	primaryKey({ columns: [table.userId, table.id], name: "api_usage_log_pkey"}),
	unique("api_usage_log_user_id_request_id_key").on(table.userId, table.requestId),
	pgPolicy("dd_user_rows", { as: "permissive", for: "all", to: ["public"], using: sql`(user_id = dd_claim_user_id())` }),
	check("api_usage_log_credits_check", sql`credits >= 0`),
]);

export const clips = pgTable("clips", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	id: bigint({ mode: "number" }).generatedAlwaysAsIdentity({ name: "clips_id_seq", startWith: 1, increment: 1, minValue: 1, maxValue: "9223372036854775807", cache: 1 }),
	userId: text("user_id").notNull(),
	title: text().default("").notNull(),
	sourceUrl: text("source_url"),
	transcript: text(),
	notes: text(),
	tags: text().array().default([]).notNull(),
	status: text().default('ready').notNull(),
	blobProvider: text("blob_provider"),
	blobKey: text("blob_key"),
	blobSha256: bytea("blob_sha256"),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blobSize: bigint("blob_size", { mode: "number" }),
	blobContentType: text("blob_content_type"),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	deletedAt: timestamp("deleted_at", { withTimezone: true, mode: 'string' }),
	search: tsvector("search").generatedAlwaysAs(sql`((setweight(to_tsvector('english'::regconfig, COALESCE(title, ''::text)), 'A'::"char") || setweight(to_tsvector('english'::regconfig, COALESCE(notes, ''::text)), 'B'::"char")) || setweight(to_tsvector('english'::regconfig, COALESCE(transcript, ''::text)), 'C'::"char"))`),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	version: bigint({ mode: "number" }).default(0).notNull(),
	convexId: text("convex_id"),
}, (table) => [
	index("clips_search_idx").using("gin", table.search.asc().nullsLast().op("tsvector_ops")),
	index("clips_tags_idx").using("gin", table.tags.asc().nullsLast().op("array_ops")),
	uniqueIndex("clips_user_id_convex_id_key").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.convexId.asc().nullsLast().op("text_ops")).where(sql`(convex_id IS NOT NULL)`),
	index("clips_user_id_created_at_id_idx").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.createdAt.asc().nullsLast().op("timestamptz_ops"), table.id.asc().nullsLast().op("int8_ops")).where(sql`(deleted_at IS NULL)`),
	index("clips_user_id_version_idx").using("btree", table.userId.asc().nullsLast().op("text_ops"), table.version.asc().nullsLast().op("int8_ops")),
	primaryKey({ columns: [table.userId, table.id], name: "clips_pkey"}),
	pgPolicy("dd_user_rows", { as: "permissive", for: "all", to: ["public"], using: sql`(user_id = dd_claim_user_id())`, withCheck: sql`(user_id = dd_claim_user_id())`  }),
	check("clips_blob_sha256_check", sql`octet_length(blob_sha256) = 32`),
	check("clips_blob_size_check", sql`blob_size >= 0`),
	check("clips_blob_complete", sql`(blob_key IS NULL) = (blob_provider IS NULL)`),
	check("clips_user_id_length", sql`(char_length(user_id) >= 1) AND (char_length(user_id) <= 256)`),
]);
