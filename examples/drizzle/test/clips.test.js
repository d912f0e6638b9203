// @ts-check
// Convex-style pages over dd_clips_page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { and, eq, sql } from "drizzle-orm";
import { allPages, listClips } from "../src/clip_list.js";
import { sqlState } from "../src/dd.js";
import { clips } from "../src/schema.js";
import { connectNodePg } from "../src/db.js";
import { newUser, withEachDriver } from "./helpers.js";

test("pages walk all 57 clips of a user exactly once", async () => {
  const setup = connectNodePg();
  const userId = newUser("pages");
  let ids;
  try {
    // 57 clips written with Drizzle, in one statement: one created_at for all,
    // so the pages are ordered by id within it.  Another user's clips and a
    // soft-deleted one must not appear.
    ids = (await setup.db.insert(clips).values(Array.from({ length: 58 }, (_, i) => ({
      userId, title: `clip ${i}`, tags: i % 2 ? ["odd"] : ["even"],
    }))).returning({ id: clips.id })).map((r) => r.id);
    const deleted = /** @type {number} */ (ids.pop());
    await setup.db.update(clips).set({ deletedAt: sql`now()` }).where(and(eq(clips.userId, userId), eq(clips.id, deleted)));
    await setup.db.insert(clips).values({ userId: newUser("other"), title: "not yours" });
  } finally {
    await setup.close();
  }
  const newestFirst = [...ids].sort((a, b) => b - a);

  const walks = await withEachDriver(async (db, driver) => {
    /** @type {import("../src/dd.js").ClipsPage[]} */
    const pages = [];
    /** @type {string | null} */
    let cursor = null;
    do {
      const page = await listClips(db, userId, { numItems: 10, cursor });
      pages.push(page);
      cursor = page.continueCursor;
    } while (!pages[pages.length - 1].isDone && pages.length < 20);
    assert.deepEqual(pages.map((p) => p.page.length), [10, 10, 10, 10, 10, 7], `${driver}: page sizes`);
    assert.deepEqual(pages.map((p) => p.isDone), [false, false, false, false, false, true]);
    const seen = pages.flatMap((p) => p.page.map((c) => c.id));
    assert.deepEqual(seen, newestFirst, `${driver}: every clip once, newest first`);
    for (const c of pages.flatMap((p) => p.page)) {
      assert.equal(c.userId, userId);
      assert.equal(typeof c.version, "string");
      assert.ok(!("search" in c), "no search vector");
    }

    // The same walk with the generator, oldest first, 25 a page; and a filter.
    const oldest = [];
    for await (const page of allPages(db, userId, { numItems: 25, sort: "oldest" })) oldest.push(...page.map((c) => c.id));
    assert.deepEqual(oldest, [...ids], `${driver}: oldest first`);
    let odd = 0;
    for await (const page of allPages(db, userId, { numItems: 7, tags: ["odd"] })) odd += page.length;
    assert.equal(odd, 28);

    // A cursor belongs to its query.
    await assert.rejects(listClips(db, userId, { numItems: 10, cursor: pages[0].continueCursor }, { sort: "oldest" }),
      (err) => sqlState(err) === "22023");
    await assert.rejects(listClips(db, userId, { numItems: 10, cursor: "not-a-cursor" }), (err) => sqlState(err) === "22P02");
    return pages;
  });
  assert.deepEqual(walks["postgres-js"], walks["node-postgres"], "both drivers return the same pages");
});
