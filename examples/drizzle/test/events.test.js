// @ts-check
// Analytics events: one, a retry, a batch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { asc, eq } from "drizzle-orm";
import { trackEvent, trackEvents } from "../src/dd.js";
import { usageEvents } from "../src/schema.js";
import { newUser, withEachDriver } from "./helpers.js";

test("trackEvent and trackEvents: stored once per event id", async () => {
  await withEachDriver(async (db, driver) => {
    const userId = newUser("events");
    const id = await trackEvent(db, { userId, event: "clip.viewed", properties: { clip: 42 }, eventId: "evt-1" });
    assert.equal(typeof id, "number", driver);
    assert.equal(await trackEvent(db, { userId, event: "clip.viewed", properties: { clip: 42 }, eventId: "evt-1" }), null,
      `${driver}: a retry is dropped`);
    const stored = await trackEvents(db, [
      { userId, event: "clip.saved", eventId: "evt-2", properties: { clip: 42 } },
      { userId, event: "clip.saved", eventId: "evt-2" },
      { userId, event: "clip.viewed", eventId: "evt-1" },
      { userId, event: "login", occurredAt: "2026-03-01T10:00:00Z" },
      { userId, event: "search", occurredAt: 1772359200000 },
      { userId, event: "logout", occurredAt: new Date("2026-03-01T12:00:00Z") },
    ]);
    assert.equal(stored, 4, `${driver}: duplicates are dropped and not counted`);
    const rows = await db.select({ event: usageEvents.event, eventId: usageEvents.eventId, properties: usageEvents.properties })
      .from(usageEvents).where(eq(usageEvents.userId, userId)).orderBy(asc(usageEvents.id));
    assert.deepEqual(rows, [
      { event: "clip.viewed", eventId: "evt-1", properties: { clip: 42 } },
      { event: "clip.saved", eventId: "evt-2", properties: { clip: 42 } },
      { event: "login", eventId: null, properties: {} },
      { event: "search", eventId: null, properties: {} },
      { event: "logout", eventId: null, properties: {} },
    ]);
  });
});
