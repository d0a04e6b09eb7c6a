import { randomUUID } from "node:crypto";
import { GetUsageRequest } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { InvalidArgumentError } from "../common/errors";
import { createStore, type Store } from "../common/store";
import { Accounting, utcDay } from "./accounting";
import { testStore } from "../test/support/store";

const { MEDIUM_IM, MEDIUM_SMS, MEDIUM_EMAIL, MEDIUM_UNSPECIFIED } = Medium;
const DAY = 86_400_000;
// 2024-03-10T12:00:00Z
const NOON = Date.UTC(2024, 2, 10, 12);


function query(q: Partial<GetUsageRequest>): GetUsageRequest {
  return GetUsageRequest.fromPartial(q);
}

async function invalidField(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.field;
    throw err;
  }
  throw new Error("expected an InvalidArgumentError");
}

it("utcDay formats the UTC calendar day", () => {
  expect(utcDay(NOON)).toBe("2024-03-10");
  expect(utcDay(Date.UTC(2024, 2, 10, 23, 59, 59, 999))).toBe("2024-03-10");
  expect(utcDay(Date.UTC(2024, 2, 11))).toBe("2024-03-11");
});

describe.each(["memory", "redis"] as const)("Accounting (%s store)", (kind) => {
  let store: Store;
  let now: number;
  let accounting: Accounting;

  beforeEach(() => {
    store = testStore(kind);
    now = NOON;
    accounting = new Accounting(store, () => now);
  });

  afterEach(async () => {
    await store.close();
  });

  async function book(): Promise<void> {
    // 2024-03-09
    await accounting.recordDelivery({ sender: "bob", medium: MEDIUM_IM, bytes: 10, segments: 0, atUnixMs: NOON - DAY });
    // 2024-03-10
    await accounting.recordDelivery({ sender: "bob", medium: MEDIUM_SMS, bytes: 300, segments: 3, atUnixMs: NOON });
    await accounting.recordDelivery({ sender: "bob", medium: MEDIUM_SMS, bytes: 100, segments: 1, atUnixMs: NOON + 1000 });
    await accounting.recordDelivery({ sender: "alice", medium: MEDIUM_EMAIL, bytes: 5000, segments: 0, atUnixMs: NOON });
    await accounting.recordDelivery({ sender: "alice", medium: MEDIUM_IM, bytes: 20, segments: 0, atUnixMs: Date.UTC(2024, 2, 10, 23, 59) });
    await accounting.recordDelivery({ sender: "", medium: MEDIUM_SMS, bytes: 70, segments: 1, atUnixMs: NOON });
    // 2024-03-12
    await accounting.recordDelivery({ sender: "alice", medium: MEDIUM_IM, bytes: 1, segments: 0, atUnixMs: NOON + 2 * DAY });
  }

  it("books messages, bytes and segments per day, sender and medium, ordered by day, sender, medium", async () => {
    await book();
    const rows = await accounting.usage(query({ fromDay: "2024-03-01", toDay: "2024-03-31" }));
    expect(rows).toEqual([
      { day: "2024-03-09", sender: "bob", medium: MEDIUM_IM, messages: 1, bytes: 10, segments: 0 },
      { day: "2024-03-10", sender: "alice", medium: MEDIUM_IM, messages: 1, bytes: 20, segments: 0 },
      { day: "2024-03-10", sender: "alice", medium: MEDIUM_EMAIL, messages: 1, bytes: 5000, segments: 0 },
      { day: "2024-03-10", sender: "bob", medium: MEDIUM_SMS, messages: 2, bytes: 400, segments: 4 },
      { day: "2024-03-10", sender: "external", medium: MEDIUM_SMS, messages: 1, bytes: 70, segments: 1 },
      { day: "2024-03-12", sender: "alice", medium: MEDIUM_IM, messages: 1, bytes: 1, segments: 0 },
    ]);
  });

  it("filters by sender, medium and day range; empty days mean today", async () => {
    await book();
    const today = await accounting.usage(query({}));
    expect(today.map((r) => `${r.day} ${r.sender} ${r.medium}`)).toEqual([
      `2024-03-10 alice ${MEDIUM_IM}`,
      `2024-03-10 alice ${MEDIUM_EMAIL}`,
      `2024-03-10 bob ${MEDIUM_SMS}`,
      `2024-03-10 external ${MEDIUM_SMS}`,
    ]);
    expect(await accounting.usage(query({ fromDay: "2024-03-09" }))).toEqual([
      { day: "2024-03-09", sender: "bob", medium: MEDIUM_IM, messages: 1, bytes: 10, segments: 0 },
    ]);
    const alice = await accounting.usage(query({ sender: "alice", fromDay: "2024-03-09", toDay: "2024-03-12" }));
    expect(alice.map((r) => [r.day, r.medium])).toEqual([
      ["2024-03-10", MEDIUM_IM],
      ["2024-03-10", MEDIUM_EMAIL],
      ["2024-03-12", MEDIUM_IM],
    ]);
    const sms = await accounting.usage(query({ medium: MEDIUM_SMS, fromDay: "2024-03-01", toDay: "2024-03-31" }));
    expect(sms.map((r) => [r.sender, r.messages, r.segments])).toEqual([
      ["bob", 2, 4],
      ["external", 1, 1],
    ]);
    expect(await accounting.usage(query({ sender: "external", medium: MEDIUM_SMS }))).toHaveLength(1);
    expect(await accounting.usage(query({ sender: "carol" }))).toEqual([]);
    expect(await accounting.usage(query({ fromDay: "2023-03-11", toDay: "2024-03-10" }))).toHaveLength(5);
  });

  it("accepts a range of 366 days", async () => {
    await book();
    expect(await accounting.usage(query({ fromDay: "2024-03-09", toDay: "2025-03-10" }))).toHaveLength(6);
  });

  it.each<[string, Partial<GetUsageRequest>, string]>([
    ["a day in another format", { fromDay: "10.03.2024" }, "from_day"],
    ["a month 13", { fromDay: "2024-13-01" }, "from_day"],
    ["February 30", { fromDay: "2024-02-01", toDay: "2024-02-30" }, "to_day"],
    ["a word", { fromDay: "yesterday" }, "from_day"],
    ["a to_day before from_day", { fromDay: "2024-03-10", toDay: "2024-03-09" }, "to_day"],
    ["a range of 367 days", { fromDay: "2024-03-09", toDay: "2025-03-11" }, "to_day"],
    ["a to_day before today with from_day empty", { toDay: "2024-03-01" }, "to_day"],
    ["an unknown medium", { medium: 12 as Medium }, "medium"],
    ["a malformed sender", { sender: "Bob|1" }, "sender"],
  ])("refuses %s", async (_name, q, field) => {
    expect(await invalidField(accounting.usage(query(q)))).toBe(field);
  });

  it("counts submissions per sender and UTC day", async () => {
    expect(await accounting.countSubmission("bob", NOON)).toBe(1);
    expect(await accounting.countSubmission("bob", NOON + 1)).toBe(2);
    expect(await accounting.countSubmission("alice", NOON)).toBe(1);
    expect(await accounting.countSubmission("bob", NOON + DAY)).toBe(1);
    expect(await accounting.countSubmission("", NOON)).toBe(1);
    const counts = await Promise.all(Array.from({ length: 20 }, () => accounting.countSubmission("carol", NOON)));
    expect(Math.max(...counts)).toBe(20);
    // Submissions are not deliveries: usage shows none.
    expect(await accounting.usage(query({}))).toEqual([]);
  });

  it("refuses to book an unknown medium and clamps negative counters to zero", async () => {
    expect(await invalidField(accounting.recordDelivery({ sender: "bob", medium: MEDIUM_UNSPECIFIED, bytes: 1, segments: 0, atUnixMs: NOON }))).toBe(
      "medium",
    );
    await accounting.recordDelivery({ sender: "bob", medium: MEDIUM_IM, bytes: -5, segments: Number.NaN, atUnixMs: NOON });
    expect(await accounting.usage(query({}))).toEqual([{ day: "2024-03-10", sender: "bob", medium: MEDIUM_IM, messages: 1, bytes: 0, segments: 0 }]);
  });

  it("keeps usage hashes for about 400 days", async () => {
    await book();
    const keys = (await store.scanKeys("usage:*")).sort();
    expect(keys).toEqual(["usage:2024-03-09", "usage:2024-03-10", "usage:2024-03-12"]);
    if (kind === "redis") {
      const prefix = `test:accounting:${randomUUID()}:`;
      const own = createStore({ redisUrl: process.env.UIMS_TEST_REDIS_URL, prefix });
      const { createClient } = await import("redis");
      const client = createClient({ url: process.env.UIMS_TEST_REDIS_URL });
      await client.connect();
      try {
        await new Accounting(own).recordDelivery({ sender: "bob", medium: MEDIUM_IM, bytes: 1, segments: 0, atUnixMs: NOON });
        const ttl = await client.pTTL(`${prefix}usage:2024-03-10`);
        expect(ttl).toBeGreaterThan(399 * DAY);
        expect(ttl).toBeLessThanOrEqual(400 * DAY);
      } finally {
        await client.quit();
        await own.close();
      }
    }
  });
});
