// @ts-check
// src/clip_list.js -- a Convex-style paginated list of a user's clips.
//
// In Convex:
//   export const list = query({
//     args: { paginationOpts: paginationOptsValidator },
//     handler: (ctx, { paginationOpts }) => ctx.db.query("clips")
//       .withIndex("by_user", (q) => q.eq("userId", userId))
//       .order("desc").paginate(paginationOpts),
//   });
// Here the same result, { page, isDone, continueCursor }, from one call of
// dd_clips_page: keyset pagination (page 1,000 costs what page 1 costs), an
// opaque cursor that is refused with another query.
import { clipsPage } from "./dd.js";

/**
 * One page, as Convex's paginate(paginationOpts) returns it.
 * @param {import("./dd.js").Db} db
 * @param {string} userId
 * @param {{ numItems: number, cursor: string | null }} paginationOpts
 * @param {{ search?: string, tags?: string[], status?: string, sort?: "newest" | "oldest" | "relevance" }} [filters]
 * @returns {Promise<import("./dd.js").ClipsPage>}
 */
export function listClips(db, userId, { numItems, cursor }, filters = {}) {
  return clipsPage(db, { userId, pageSize: numItems, cursor, ...filters });
}

/**
 * Every page after the other, as usePaginatedQuery's loadMore would fetch
 * them: each live clip once, in order.
 * @param {import("./dd.js").Db} db
 * @param {string} userId
 * @param {{ numItems?: number, search?: string, tags?: string[], status?: string, sort?: "newest" | "oldest" | "relevance" }} [options]
 * @returns {AsyncGenerator<import("./dd.js").Clip[]>}
 */
export async function* allPages(db, userId, { numItems = 50, ...filters } = {}) {
  /** @type {string | null} */
  let cursor = null;
  for (;;) {
    const { page, isDone, continueCursor } = await listClips(db, userId, { numItems, cursor }, filters);
    if (page.length > 0) yield page;
    if (isDone) return;
    cursor = continueCursor;
  }
}
