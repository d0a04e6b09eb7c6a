import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, startRedisServer } from "../../test/support/redis-server";
import { createStore, MemoryStore, StoreUnavailableError, type Store, type StoreOptions } from "./index";

// One suite, run against both implementations: the memory store must be indistinguishable from
// Redis. Each test gets its own key prefix, so tests never see each other's keys.

type Kind = Store["kind"];

function redisUrl(): string {
  const url = process.env.UIMS_TEST_REDIS_URL;
  if (!url) throw new Error("UIMS_TEST_REDIS_URL is not set: the jest globalSetup starts redis-server");
  return url;
}

function uniquePrefix(): string {
  return `test:${randomUUID()}:`;
}

function openStore(kind: Kind, options: StoreOptions = {}): Store {
  return createStore(kind === "redis" ? { redisUrl: redisUrl(), prefix: uniquePrefix(), ...options } : options);
}

/** Stream ids as comparable pairs, as Redis orders them. */
function idKey(id: string): [bigint, bigint] {
  const [ms, seq] = id.split("-");
  return [BigInt(ms ?? "0"), BigInt(seq ?? "0")];
}
function idLess(a: string, b: string): boolean {
  const [am, as] = idKey(a);
  const [bm, bs] = idKey(b);
  return am < bm || (am === bm && as < bs);
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe.each<Kind>(["memory", "redis"])("%s store", (kind) => {
  let store: Store;
  const opened: Store[] = [];
  const open = (options: StoreOptions = {}) => {
    const s = openStore(kind, options);
    opened.push(s);
    return s;
  };

  beforeEach(() => {
    store = open();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  test("reports its kind", () => {
    expect(store.kind).toBe(kind);
  });

  describe("strings", () => {
    test("get, set, getMany and del", async () => {
      expect(await store.get("missing")).toBeNull();
      await store.set("a", "1");
      await store.set("b", "2");
      await store.set("a", "one");
      expect(await store.get("a")).toBe("one");
      expect(await store.getMany(["a", "missing", "b"])).toEqual(["one", null, "2"]);
      expect(await store.getMany([])).toEqual([]);
      expect(await store.del("a", "missing", "b")).toBe(2);
      expect(await store.del()).toBe(0);
      expect(await store.get("a")).toBeNull();
    });

    test("bytes round-trip unchanged, with a TTL, and read as text where they are text", async () => {
      const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await store.setBytes("bin", every, 60_000);
      every[0] = 42;
      const read = await store.getBytes("bin");
      expect(read?.equals(Buffer.from(Array.from({ length: 256 }, (_, i) => i)))).toBe(true);
      // What a reader does to its copy never reaches the store.
      read![1] = 0;
      expect((await store.getBytes("bin"))?.[1]).toBe(1);
      expect(await store.getBytes("missing")).toBeNull();
      await store.setBytes("view", new Uint8Array(Buffer.from("xhiy").buffer, Buffer.from("xhiy").byteOffset + 1, 2));
      await store.set("text", "grüße");
      expect(await store.get("view")).toBe("hi");
      expect((await store.getBytes("text"))?.toString()).toBe("grüße");
      expect(await store.compareAndSet("view", "hi", "ho")).toBe(true);
      expect(await store.take("view")).toBe("ho");
      await store.setBytes("short", Buffer.from("x"), 30);
      await sleep(80);
      expect(await store.getBytes("short")).toBeNull();
    });

    test("empty and unicode values round-trip", async () => {
      await Promise.all([store.set("empty", ""), store.set("text", "grüße 😀 \n\t")]);
      expect(await store.getMany(["empty", "text"])).toEqual(["", "grüße 😀 \n\t"]);
    });

    test("set with a TTL expires; a later set without TTL keeps the key", async () => {
      await store.set("short", "x", 150);
      await store.set("kept", "x", 150);
      await store.set("kept", "y");
      expect(await store.get("short")).toBe("x");
      await sleep(200);
      expect(await store.get("short")).toBeNull();
      expect(await store.get("kept")).toBe("y");
      expect(await store.getMany(["short", "kept"])).toEqual([null, "y"]);
    });

    test("setMany sets every key with the TTL, replacing old values; an empty batch is a no-op", async () => {
      await store.set("b", "old");
      await store.setMany([["a", "1"], ["b", "2"], ["c", "3"]], 150);
      expect(await store.getMany(["a", "b", "c"])).toEqual(["1", "2", "3"]);
      await store.setMany([], 150);
      await sleep(200);
      expect(await store.getMany(["a", "b", "c"])).toEqual([null, null, null]);
      await expect(store.setMany([["d", "4"]], 0)).rejects.toThrow(RangeError);
    });

    test("setIfAbsent creates once, and again after expiry", async () => {
      expect(await store.setIfAbsent("nonce", "first", 150)).toBe(true);
      expect(await store.setIfAbsent("nonce", "second", 150)).toBe(false);
      expect(await store.get("nonce")).toBe("first");
      await sleep(200);
      expect(await store.setIfAbsent("nonce", "third")).toBe(true);
      expect(await store.get("nonce")).toBe("third");
    });

    test("setIfAbsent race: exactly one of many concurrent callers wins", async () => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.setIfAbsent("race", `v${i}`, 10_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.get("race")).toBe(`v${results.indexOf(true)}`);
    });

    test("take returns the value once", async () => {
      await store.set("session", "key");
      expect(await store.take("session")).toBe("key");
      expect(await store.take("session")).toBeNull();
      expect(await store.get("session")).toBeNull();
    });

    test("take race: exactly one of many concurrent takers gets the value", async () => {
      await store.set("single-use", "secret");
      const results = await Promise.all(Array.from({ length: 50 }, () => store.take("single-use")));
      expect(results.filter((r) => r !== null)).toEqual(["secret"]);
    });

    test("take honours TTL", async () => {
      await store.set("short", "x", 50);
      await sleep(90);
      expect(await store.take("short")).toBeNull();
    });
  });

  describe("compareAndSet", () => {
    test("creates, swaps, refuses and deletes", async () => {
      expect(await store.compareAndSet("state", null, "accepted")).toBe(true);
      expect(await store.compareAndSet("state", null, "other")).toBe(false);
      expect(await store.compareAndSet("state", "wrong", "routed")).toBe(false);
      expect(await store.get("state")).toBe("accepted");
      expect(await store.compareAndSet("state", "accepted", "routed")).toBe(true);
      expect(await store.get("state")).toBe("routed");
      expect(await store.compareAndSet("state", "routed", null)).toBe(true);
      expect(await store.get("state")).toBeNull();
      expect(await store.compareAndSet("state", null, null)).toBe(true);
      expect(await store.compareAndSet("state", "routed", null)).toBe(false);
    });

    test("sets the TTL it is given, and none without", async () => {
      expect(await store.compareAndSet("ttl", null, "a", 150)).toBe(true);
      expect(await store.compareAndSet("kept", null, "a", 150)).toBe(true);
      expect(await store.compareAndSet("kept", "a", "b")).toBe(true);
      await sleep(200);
      expect(await store.get("ttl")).toBeNull();
      expect(await store.get("kept")).toBe("b");
      // An expired key counts as absent.
      expect(await store.compareAndSet("ttl", null, "again")).toBe(true);
    });

    test("race: exactly one of many concurrent swaps from the same value wins", async () => {
      const create = await Promise.all(Array.from({ length: 50 }, (_, i) => store.compareAndSet("txn", null, `c${i}`)));
      expect(create.filter(Boolean)).toHaveLength(1);
      const current = `c${create.indexOf(true)}`;
      const swap = await Promise.all(Array.from({ length: 50 }, (_, i) => store.compareAndSet("txn", current, `s${i}`)));
      expect(swap.filter(Boolean)).toHaveLength(1);
      expect(await store.get("txn")).toBe(`s${swap.indexOf(true)}`);
    });

    test("optimistic counter: concurrent read-modify-write loops lose no update", async () => {
      const increment = async () => {
        for (;;) {
          const current = await store.get("counter");
          const next = String(Number(current ?? "0") + 1);
          if (await store.compareAndSet("counter", current, next)) return;
        }
      };
      await Promise.all(Array.from({ length: 20 }, async () => {
        for (let i = 0; i < 5; i++) await increment();
      }));
      expect(await store.get("counter")).toBe("100");
    });
  });

  describe("hash counters", () => {
    test("increment fields, read them back", async () => {
      expect(await store.getFields("acct")).toEqual({});
      await store.incrementFields("acct", { messages: 1, bytes: 256 });
      await store.incrementFields("acct", { messages: 1, bytes: 1024, segments: 3 });
      await store.incrementFields("acct", { segments: -1 });
      await store.incrementFields("acct", {});
      expect(await store.getFields("acct")).toEqual({ messages: "2", bytes: "1280", segments: "2" });
    });

    test("concurrent increments all count", async () => {
      await Promise.all(Array.from({ length: 100 }, () => store.incrementFields("acct", { n: 1 })));
      expect(await store.getFields("acct")).toEqual({ n: "100" });
    });

    test("the TTL is refreshed on every increment", async () => {
      // Second increment lands before the first TTL ends; the check falls after the first TTL
      // would have ended but before the refreshed one does.
      await store.incrementFields("day", { n: 1 }, 200);
      await sleep(120);
      await store.incrementFields("day", { n: 1 }, 200);
      await sleep(120);
      expect(await store.getFields("day")).toEqual({ n: "2" });
      await sleep(200);
      expect(await store.getFields("day")).toEqual({});
    });

    test("refuses non-integer increments and keys of another kind", async () => {
      await expect(store.incrementFields("acct", { n: 1.5 })).rejects.toThrow(RangeError);
      await store.set("plain", "x");
      await expect(store.incrementFields("plain", { n: 1 })).rejects.toThrow(/WRONGTYPE/);
      await expect(store.getFields("plain")).rejects.toThrow(/WRONGTYPE/);
      expect(await store.get("plain")).toBe("x");
    });
  });

  describe("token buckets", () => {
    // Slow rates: a loaded machine must not refill a bucket between two calls of a test.
    test("a burst, then the wait until the next token; the bucket refills at the rate", async () => {
      for (let i = 0; i < 3; i++) expect(await store.takeToken("bucket", 2, 3)).toBe(0);
      const wait = await store.takeToken("bucket", 2, 3);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(500);
      // Other keys are other buckets.
      expect(await store.takeToken("other", 2, 3)).toBe(0);
      await sleep(wait + 30);
      expect(await store.takeToken("bucket", 2, 3)).toBe(0);
      expect(await store.takeToken("bucket", 2, 3)).toBeGreaterThan(0);
    });

    test("refills up to the burst, never beyond; a bucket left alone expires once full", async () => {
      expect(await store.takeToken("b", 2, 2)).toBe(0);
      expect(await store.takeToken("b", 2, 2)).toBe(0);
      await sleep(1_600);
      expect(await store.takeToken("b", 2, 2)).toBe(0);
      expect(await store.takeToken("b", 2, 2)).toBe(0);
      expect(await store.takeToken("b", 2, 2)).toBeGreaterThan(0);
      expect(await store.takeToken("quick", 20, 1)).toBe(0);
      // Full again after 50 ms, gone a second after that.
      await sleep(1_300);
      expect(await store.scanKeys("quick")).toEqual([]);
    });

    test("a rate or burst that makes no bucket is a RangeError; another kind of key is WRONGTYPE", async () => {
      await expect(store.takeToken("b", 0, 1)).rejects.toThrow(RangeError);
      await expect(store.takeToken("b", 1, 0.5)).rejects.toThrow(RangeError);
      await store.set("text", "x");
      await expect(store.takeToken("text", 1, 1)).rejects.toThrow(/WRONGTYPE/);
    });
  });

  describe("sorted sets", () => {
    test("add, update, count, remove", async () => {
      await Promise.all([store.sortedAdd("due", "a", 3), store.sortedAdd("due", "b", 1), store.sortedAdd("due", "c", 2)]);
      await store.sortedAdd("due", "a", 0);
      expect(await store.sortedCount("due")).toBe(3);
      expect(await store.sortedRangeByScore("due", -Infinity, Infinity, 10)).toEqual([
        { member: "a", score: 0 },
        { member: "b", score: 1 },
        { member: "c", score: 2 },
      ]);
      expect(await store.sortedRemove("due", "b")).toBe(true);
      expect(await store.sortedRemove("due", "b")).toBe(false);
      expect(await store.sortedRemove("missing", "b")).toBe(false);
      expect(await store.sortedCount("due")).toBe(2);
      expect(await store.sortedCount("missing")).toBe(0);
    });

    test("range by score: inclusive bounds, ties by member, limit, fractions", async () => {
      const now = 1_700_000_000_000;
      await Promise.all([
        store.sortedAdd("due", "m2", now),
        store.sortedAdd("due", "m1", now),
        store.sortedAdd("due", "late", now + 1000),
        store.sortedAdd("due", "early", now - 1000),
        store.sortedAdd("due", "half", now + 0.5),
      ]);
      expect(await store.sortedRangeByScore("due", now, now + 1000, 10)).toEqual([
        { member: "m1", score: now },
        { member: "m2", score: now },
        { member: "half", score: now + 0.5 },
        { member: "late", score: now + 1000 },
      ]);
      expect((await store.sortedRangeByScore("due", -Infinity, now, 2)).map((m) => m.member)).toEqual(["early", "m1"]);
      expect(await store.sortedRangeByScore("due", now + 2000, Infinity, 10)).toEqual([]);
      expect(await store.sortedRangeByScore("due", now + 1, now - 1, 10)).toEqual([]);
      expect(await store.sortedRangeByScore("due", -Infinity, Infinity, 0)).toEqual([]);
      expect(await store.sortedRangeByScore("missing", -Infinity, Infinity, 10)).toEqual([]);
      await expect(store.sortedAdd("due", "x", Number.NaN)).rejects.toThrow(RangeError);
    });

    test("removal race: exactly one replica claims a member", async () => {
      await store.sortedAdd("work", "job-1", 1);
      const claims = await Promise.all(Array.from({ length: 30 }, () => store.sortedRemove("work", "job-1")));
      expect(claims.filter(Boolean)).toHaveLength(1);
    });

    test("the set disappears with its last member", async () => {
      await store.sortedAdd("z", "only", 1);
      await store.expire("z", 10_000);
      await store.sortedRemove("z", "only");
      expect(await store.scanKeys("z")).toEqual([]);
      await store.sortedAdd("z", "again", 1);
      expect(await store.sortedCount("z")).toBe(1);
    });

    test("lex paging walks every member once, in byte order", async () => {
      const members = ["b", "a", "ab", "A", "Z", "a b", "é", "e", "z", "😀", "\uFFFD", "\uE000", "10", "9", "-", "(", "[", "aa", "abc", "b0"];
      await Promise.all(members.map((m) => store.sortedAdd("dir", m, 0)));
      const seen: string[] = [];
      let after = "";
      for (;;) {
        const page = await store.sortedRangeByMember("dir", after, 7);
        seen.push(...page);
        if (page.length < 7) break;
        after = page[page.length - 1]!;
      }
      expect(seen).toEqual([...members].sort(byBytes));
      expect(await store.sortedRangeByMember("dir", "a", 2)).toEqual(["a b", "aa"]);
      expect(await store.sortedRangeByMember("dir", "zz", 5)).toEqual(["é", "\uE000", "\uFFFD", "😀"]);
      expect(await store.sortedRangeByMember("dir", "", 0)).toEqual([]);
      expect(await store.sortedRangeByMember("missing", "", 5)).toEqual([]);
    });
  });

  describe("streams", () => {
    test("values are bytes: every byte value survives, and the stored copy is the store's own", async () => {
      const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const id = await store.streamAppend("bin", every);
      every[0] = 42;
      const [entry] = await store.streamRange("bin", "", 1);
      expect(entry?.id).toBe(id);
      expect(entry?.value.equals(Buffer.from(Array.from({ length: 256 }, (_, i) => i)))).toBe(true);
      const view = new Uint8Array(every.buffer, every.byteOffset + 1, 3);
      await store.streamAppend("bin", view);
      expect((await store.streamRange("bin", id, 1))[0]?.value).toEqual(Buffer.from([1, 2, 3]));
    });

    test("ids increase, ranges resume after an id, count limits", async () => {
      const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => store.streamAppend("inbox", `m${i}`)));
      for (const id of ids) expect(id).toMatch(/^\d+-\d+$/);
      for (let i = 1; i < ids.length; i++) expect(idLess(ids[i - 1]!, ids[i]!)).toBe(true);

      const all = await store.streamRange("inbox", "", 100);
      expect(all).toEqual(ids.map((id, i) => ({ id, value: Buffer.from(`m${i}`) })));
      expect(await store.streamRange("inbox", "0", 3)).toEqual(all.slice(0, 3));
      expect(await store.streamRange("inbox", ids[4]!, 3)).toEqual(all.slice(5, 8));
      expect(await store.streamRange("inbox", ids[19]!, 10)).toEqual([]);
      expect(await store.streamRange("inbox", "", 0)).toEqual([]);
      expect(await store.streamRange("missing", "", 10)).toEqual([]);
      // A bare millisecond id means "<ms>-0".
      const [ms] = ids[0]!.split("-");
      expect((await store.streamRange("inbox", `${Number(ms) - 1}`, 1))[0]?.id).toBe(ids[0]);
    });

    test("resume from the last seen id across appends", async () => {
      const first = await store.streamAppend("inbox", "a");
      await store.streamAppend("inbox", "b");
      const page = await store.streamRange("inbox", first, 10);
      expect(page.map((e) => e.value.toString())).toEqual(["b"]);
      await store.streamAppend("inbox", "c");
      expect((await store.streamRange("inbox", page[0]!.id, 10)).map((e) => e.value.toString())).toEqual(["c"]);
    });

    test("delete one entry; later ids still increase", async () => {
      const a = await store.streamAppend("inbox", "a");
      const b = await store.streamAppend("inbox", "b");
      await store.streamDelete("inbox", b);
      await store.streamDelete("inbox", b);
      await store.streamDelete("missing", b);
      expect(await store.streamRange("inbox", "", 10)).toEqual([{ id: a, value: Buffer.from("a") }]);
      const c = await store.streamAppend("inbox", "c");
      expect(idLess(b, c)).toBe(true);
      await store.streamDelete("inbox", a);
      await store.streamDelete("inbox", c);
      // The emptied stream still exists and remembers its last id, as in Redis.
      expect(await store.scanKeys("inbox")).toEqual(["inbox"]);
      expect(idLess(c, await store.streamAppend("inbox", "d"))).toBe(true);
    });

    test("maxLen keeps at least the newest entries and drops old ones", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) ids.push(await store.streamAppend("log", `e${i}`, 10));
      const kept = await store.streamRange("log", "", 1000);
      expect(kept.length).toBeGreaterThanOrEqual(10);
      expect(kept.length).toBeLessThan(300);
      expect(kept.slice(-10).map((e) => e.value.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `e${290 + i}`));
      await expect(store.streamAppend("log", "x", 0)).rejects.toThrow(RangeError);
    });

    test("invalid ids are refused", async () => {
      await store.streamAppend("inbox", "a");
      await expect(store.streamRange("inbox", "not-an-id", 10)).rejects.toThrow(/Invalid stream ID/);
      await expect(store.streamDelete("inbox", "x")).rejects.toThrow(/Invalid stream ID/);
    });
  });

  describe("expiry of every kind of key", () => {
    test("expire applies to hashes, sorted sets and streams", async () => {
      await Promise.all([
        store.incrementFields("h", { n: 1 }),
        store.sortedAdd("z", "m", 1),
        store.streamAppend("s", "v"),
        store.set("str", "v"),
      ]);
      expect(await Promise.all(["h", "z", "s", "str"].map((k) => store.expire(k, 50)))).toEqual([true, true, true, true]);
      expect(await store.expire("missing", 50)).toBe(false);
      await sleep(90);
      expect(await store.getFields("h")).toEqual({});
      expect(await store.sortedCount("z")).toBe(0);
      expect(await store.streamRange("s", "", 10)).toEqual([]);
      expect(await store.get("str")).toBeNull();
      expect(await store.scanKeys("*")).toEqual([]);
      await expect(store.expire("h", 0)).rejects.toThrow(RangeError);
    });

    test("TTLs must be positive", async () => {
      await expect(store.set("k", "v", 0)).rejects.toThrow(RangeError);
      await expect(store.setIfAbsent("k", "v", -5)).rejects.toThrow(RangeError);
      await expect(store.compareAndSet("k", null, "v", Number.NaN)).rejects.toThrow(RangeError);
      expect(await store.get("k")).toBeNull();
    });
  });

  describe("kinds of key", () => {
    test("commands on a key of another kind fail with WRONGTYPE; MGET answers null", async () => {
      await store.sortedAdd("z", "m", 1);
      await store.set("s", "v");
      await expect(store.get("z")).rejects.toThrow(/WRONGTYPE/);
      await expect(store.take("z")).rejects.toThrow(/WRONGTYPE/);
      await expect(store.compareAndSet("z", null, "v")).rejects.toThrow(/WRONGTYPE/);
      await expect(store.sortedAdd("s", "m", 1)).rejects.toThrow(/WRONGTYPE/);
      await expect(store.streamAppend("s", "v")).rejects.toThrow(/WRONGTYPE/);
      await expect(store.streamRange("z", "", 1)).rejects.toThrow(/WRONGTYPE/);
      expect(await store.getMany(["z", "s"])).toEqual([null, "v"]);
      expect(await store.setIfAbsent("z", "v")).toBe(false);
      // SET replaces a key of any kind.
      await store.set("z", "now a string");
      expect(await store.get("z")).toBe("now a string");
      expect(await store.del("z", "s")).toBe(2);
    });
  });

  describe("scanKeys", () => {
    test("matches globs relative to the prefix, with a limit", async () => {
      await Promise.all([
        store.set("gw:im:1", "x"),
        store.set("gw:im:2", "x"),
        store.set("gw:sms:1", "x"),
        store.incrementFields("acct:1", { n: 1 }),
        store.set("gone", "x", 30),
      ]);
      await sleep(60);
      expect((await store.scanKeys("gw:*")).sort()).toEqual(["gw:im:1", "gw:im:2", "gw:sms:1"]);
      expect((await store.scanKeys("gw:im:?")).sort()).toEqual(["gw:im:1", "gw:im:2"]);
      expect((await store.scanKeys("gw:*:[2-9]")).sort()).toEqual(["gw:im:2"]);
      expect((await store.scanKeys("gw:[^i]*")).sort()).toEqual(["gw:sms:1"]);
      expect(await store.scanKeys("gw:*", 2)).toHaveLength(2);
      expect((await store.scanKeys("*")).sort()).toEqual(["acct:1", "gw:im:1", "gw:im:2", "gw:sms:1"]);
      expect(await store.scanKeys("nothing*")).toEqual([]);
    });

    test("a literal star is matched with a backslash escape", async () => {
      await Promise.all([store.set("a*b", "x"), store.set("axb", "x")]);
      expect(await store.scanKeys("a\\*b")).toEqual(["a*b"]);
    });

    test("stores with different prefixes do not see each other's keys", async () => {
      const other = open();
      await Promise.all([store.set("shared:1", "mine"), other.set("shared:2", "theirs")]);
      expect(await store.scanKeys("shared:*")).toEqual(["shared:1"]);
      expect(await other.scanKeys("shared:*")).toEqual(["shared:2"]);
      expect(await store.get("shared:2")).toBeNull();
    });
  });

  test("ping measures a round trip", async () => {
    const ms = await store.ping();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(1000);
  });

  test("a closed store refuses work with StoreUnavailableError", async () => {
    await store.set("k", "v");
    await store.close();
    await store.close();
    await expect(store.get("k")).rejects.toThrow(StoreUnavailableError);
    await expect(store.ping()).rejects.toThrow(StoreUnavailableError);
  });
});

describe("redis store only", () => {
  const opened: Store[] = [];
  const open = (options: StoreOptions) => {
    const s = createStore(options);
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  test("keys carry the prefix in Redis", async () => {
    const prefix = uniquePrefix();
    const store = open({ redisUrl: redisUrl(), prefix });
    const raw = open({ redisUrl: redisUrl(), prefix: "" });
    await store.set("k", "v");
    expect(await raw.get(`${prefix}k`)).toBe("v");
    expect(await raw.scanKeys(`${prefix}*`)).toEqual([`${prefix}k`]);
  });

  test("a prefix with glob characters is matched literally", async () => {
    const base = uniquePrefix();
    const store = open({ redisUrl: redisUrl(), prefix: `${base}[x]*?:` });
    const sibling = open({ redisUrl: redisUrl(), prefix: `${base}x-other:` });
    await Promise.all([store.set("k", "v"), sibling.set("k", "v")]);
    expect(await store.scanKeys("*")).toEqual(["k"]);
  });

  test("replicas on the same Redis and prefix share state", async () => {
    const prefix = uniquePrefix();
    const a = open({ redisUrl: redisUrl(), prefix });
    const b = open({ redisUrl: redisUrl(), prefix });
    await a.set("profile", "alice");
    expect(await b.get("profile")).toBe("alice");
    await b.set("session", "key");
    const taken = await Promise.all([a.take("session"), b.take("session")]);
    expect(taken.filter((t) => t !== null)).toEqual(["key"]);
    const swaps = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).compareAndSet("txn", null, `r${i}`)),
    );
    expect(swaps.filter(Boolean)).toHaveLength(1);
    const id = await a.streamAppend("inbox", "hello");
    expect(await b.streamRange("inbox", "", 10)).toEqual([{ id, value: Buffer.from("hello") }]);
  });

  test("an unreachable Redis surfaces as StoreUnavailableError, and errors reach onError", async () => {
    const port = await freePort();
    const errors: Error[] = [];
    const store = open({
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: uniquePrefix(),
      connectTimeoutMs: 200,
      readyWaitMs: 200,
      onError: (err) => errors.push(err),
    });
    const started = Date.now();
    await expect(store.get("k")).rejects.toThrow(StoreUnavailableError);
    await expect(store.ping()).rejects.toThrow(StoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(errors.length).toBeGreaterThan(0);
  });

  test("recovers by itself after Redis restarts", async () => {
    const server = await startRedisServer();
    let restarted: Awaited<ReturnType<typeof startRedisServer>> | undefined;
    try {
      const store = open({ redisUrl: server.url, prefix: uniquePrefix(), readyWaitMs: 200, maxReconnectDelayMs: 100, onError: () => undefined });
      await store.set("k", "v");
      await server.stop();
      const failure = await store.get("k").catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      restarted = await startRedisServer(server.port);
      // Redis started without persistence: the data is gone, the connection is back.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          expect(await store.get("k")).toBeNull();
          break;
        } catch (err) {
          if (!(err instanceof StoreUnavailableError) || Date.now() > deadline) throw err;
          await sleep(50);
        }
      }
      await store.set("k", "again");
      expect(await store.get("k")).toBe("again");
    } finally {
      await restarted?.stop();
      await server.stop();
    }
  });
});

describe("memory store only", () => {
  test("the sweep reclaims expired keys nobody reads", async () => {
    const store = new MemoryStore({ sweepIntervalMs: 20 });
    try {
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.set(`k${i}`, "v", 30)));
      await store.set("forever", "v");
      expect(store.size).toBe(101);
      await sleep(120);
      expect(store.size).toBe(1);
    } finally {
      await store.close();
    }
  });
});
