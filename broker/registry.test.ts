import { Medium } from "../gen/uims/common/v1/types";
import { InvalidArgumentError } from "../common/errors";
import type { Store } from "../common/store";
import { GatewayRegistry, type NodeRegistration } from "./registry";
import { testStore, withOverrides } from "../test/support/store";
import { until } from "../test/support/wait";

const { MEDIUM_IM, MEDIUM_SMS, MEDIUM_EMAIL, MEDIUM_UNSPECIFIED } = Medium;
const INTERVAL = 1000;



function gateway(nodeId: string, medium: Medium, extra: Partial<NodeRegistration> = {}): NodeRegistration {
  return { nodeId, kind: "gateway", medium, endpoint: `${nodeId}:50051`, capacity: 100, version: "0.1.0", ...extra };
}

function invalidField(err: unknown): string {
  if (err instanceof InvalidArgumentError) return err.field;
  throw err;
}

describe.each(["memory", "redis"] as const)("GatewayRegistry (%s store)", (kind) => {
  let store: Store;
  let now: number;
  let registry: GatewayRegistry;

  beforeEach(() => {
    store = testStore(kind);
    now = 1_700_000_000_000;
    registry = new GatewayRegistry(store, { heartbeatIntervalMs: INTERVAL, clock: () => now });
  });

  afterEach(async () => {
    await store.close();
  });

  it("registers nodes and lists them by id, all or by medium", async () => {
    await registry.register(gateway("gw-sms-1", MEDIUM_SMS));
    await registry.register(gateway("gw-im-1", MEDIUM_IM));
    await registry.register({ nodeId: "proc-1", kind: "processor", medium: MEDIUM_UNSPECIFIED, endpoint: "proc-1:50051", capacity: 8, version: "0.1.0" });
    await registry.register(gateway("gw-im-0", MEDIUM_IM));

    expect((await registry.list()).map((r) => r.nodeId)).toEqual(["gw-im-0", "gw-im-1", "gw-sms-1", "proc-1"]);
    expect((await registry.list(MEDIUM_UNSPECIFIED)).map((r) => r.nodeId)).toEqual(["gw-im-0", "gw-im-1", "gw-sms-1", "proc-1"]);
    expect((await registry.list(MEDIUM_IM)).map((r) => r.nodeId)).toEqual(["gw-im-0", "gw-im-1"]);
    expect(await registry.list(MEDIUM_EMAIL)).toEqual([]);
    expect(await registry.get("gw-sms-1")).toEqual({
      ...gateway("gw-sms-1", MEDIUM_SMS),
      registeredAtUnixMs: now,
      lastHeartbeatUnixMs: now,
      reportedHealthy: true,
      detail: "",
      inFlight: 0,
    });
    expect(await registry.get("unknown")).toBeNull();
    expect(await registry.get("")).toBeNull();
  });

  it("registration is an upsert", async () => {
    await registry.register(gateway("gw-im-1", MEDIUM_IM, { endpoint: "old:1" }));
    now += 10;
    await registry.register(gateway("gw-im-1", MEDIUM_IM, { endpoint: "new:1", version: "0.2.0" }));
    const rec = await registry.get("gw-im-1");
    expect(rec).toMatchObject({ endpoint: "new:1", version: "0.2.0", registeredAtUnixMs: now });
    expect(await registry.list()).toHaveLength(1);
  });

  it.each<[string, NodeRegistration, string]>([
    ["an empty node id", gateway("", MEDIUM_IM), "node_id"],
    ["a node id with a slash", gateway("gw/1", MEDIUM_IM), "node_id"],
    ["a gateway without a medium", gateway("gw-1", MEDIUM_UNSPECIFIED), "medium"],
    ["a gateway of an unknown medium", gateway("gw-1", 17 as Medium), "medium"],
    ["no endpoint", gateway("gw-1", MEDIUM_IM, { endpoint: "" }), "endpoint"],
    ["a fractional capacity", gateway("gw-1", MEDIUM_IM, { capacity: 1.5 }), "capacity"],
    ["an unknown kind", { ...gateway("gw-1", MEDIUM_IM), kind: "router" as "gateway" }, "kind"],
  ])("refuses a registration with %s and writes nothing", async (_name, rec, field) => {
    expect(invalidField(await registry.register(rec).catch((err: unknown) => err))).toBe(field);
    expect(await store.scanKeys("*")).toEqual([]);
  });

  it("heartbeats update the entry; an unknown node is told to register", async () => {
    expect(await registry.heartbeat("gw-im-1", { inFlight: 1, healthy: true, detail: "" })).toBe(false);
    expect(await store.scanKeys("*")).toEqual([]);
    await registry.register(gateway("gw-im-1", MEDIUM_IM));
    now += 500;
    expect(await registry.heartbeat("gw-im-1", { inFlight: 42, healthy: false, detail: "SMSC down" })).toBe(true);
    expect(await registry.get("gw-im-1")).toMatchObject({
      inFlight: 42,
      reportedHealthy: false,
      detail: "SMSC down",
      lastHeartbeatUnixMs: now,
      registeredAtUnixMs: now - 500,
    });
  });

  it("a node is healthy while it says so and its last heartbeat is at most 3 intervals old", async () => {
    const rec = await registry.register(gateway("gw-sms-1", MEDIUM_SMS));
    expect(registry.isHealthy(rec, now)).toBe(true);
    expect(registry.isHealthy(rec, now + 3 * INTERVAL)).toBe(true);
    expect(registry.isHealthy(rec, now + 3 * INTERVAL + 1)).toBe(false);

    now += 3 * INTERVAL + 1;
    const stale = registry.toGatewayInfo((await registry.get("gw-sms-1"))!);
    expect(stale).toMatchObject({ nodeId: "gw-sms-1", kind: "gateway", medium: MEDIUM_SMS, healthy: false, detail: "no heartbeat for 3 s" });

    await registry.heartbeat("gw-sms-1", { inFlight: 3, healthy: true, detail: "" });
    expect(registry.toGatewayInfo((await registry.get("gw-sms-1"))!)).toEqual({
      nodeId: "gw-sms-1",
      kind: "gateway",
      medium: MEDIUM_SMS,
      endpoint: "gw-sms-1:50051",
      healthy: true,
      detail: "",
      inFlight: 3,
      capacity: 100,
      lastHeartbeatUnixMs: now,
      version: "0.1.0",
    });

    await registry.heartbeat("gw-sms-1", { inFlight: 0, healthy: false, detail: "SMSC bind failed" });
    const down = (await registry.get("gw-sms-1"))!;
    expect(registry.isHealthy(down, now)).toBe(false);
    expect(registry.toGatewayInfo(down)).toMatchObject({ healthy: false, detail: "SMSC bind failed" });
  });

  it("healthyNodes picks healthy nodes of the kind and medium, least loaded first, then by id", async () => {
    await registry.register(gateway("gw-im-a", MEDIUM_IM, { capacity: 100 }));
    await registry.register(gateway("gw-im-b", MEDIUM_IM, { capacity: 10 }));
    await registry.register(gateway("gw-im-c", MEDIUM_IM, { capacity: 100 }));
    await registry.register(gateway("gw-im-d", MEDIUM_IM, { capacity: 100 }));
    await registry.register(gateway("gw-sms-a", MEDIUM_SMS));
    await registry.register({ nodeId: "proc-1", kind: "processor", medium: MEDIUM_UNSPECIFIED, endpoint: "p:1", capacity: 4, version: "1" });
    await registry.heartbeat("gw-im-a", { inFlight: 50, healthy: true, detail: "" }); // load 0.5
    await registry.heartbeat("gw-im-b", { inFlight: 1, healthy: true, detail: "" }); // load 0.1
    await registry.heartbeat("gw-im-c", { inFlight: 10, healthy: true, detail: "" }); // load 0.1
    await registry.heartbeat("gw-im-d", { inFlight: 0, healthy: false, detail: "draining" });

    expect((await registry.healthyNodes("gateway", MEDIUM_IM)).map((r) => r.nodeId)).toEqual(["gw-im-b", "gw-im-c", "gw-im-a"]);
    expect((await registry.healthyNodes("gateway", MEDIUM_SMS)).map((r) => r.nodeId)).toEqual(["gw-sms-a"]);
    expect((await registry.healthyNodes("processor")).map((r) => r.nodeId)).toEqual(["proc-1"]);
    expect(await registry.healthyNodes("gateway", MEDIUM_EMAIL)).toEqual([]);

    now += 3 * INTERVAL + 1;
    expect(await registry.healthyNodes("gateway", MEDIUM_IM)).toEqual([]);
  });

  it("the snapshot is refreshed from the store at most every refreshMs, once for concurrent readers", async () => {
    let reads = 0;
    const counting = withOverrides(store, {
      sortedRangeByMember: async (key, after, limit) => {
        reads++;
        return store.sortedRangeByMember(key, after, limit);
      },
    });
    const reader = new GatewayRegistry(counting, { heartbeatIntervalMs: INTERVAL, clock: () => now, refreshMs: 500 });
    const writer = registry; // another replica sharing the store

    await writer.register(gateway("gw-im-1", MEDIUM_IM));
    const first = await Promise.all(Array.from({ length: 10 }, () => reader.snapshot()));
    expect(reads).toBe(1);
    for (const snap of first) expect(snap.map((r) => r.nodeId)).toEqual(["gw-im-1"]);

    await writer.register(gateway("gw-im-2", MEDIUM_IM));
    now += 499;
    expect((await reader.snapshot()).map((r) => r.nodeId)).toEqual(["gw-im-1"]);
    expect(reads).toBe(1);

    now += 1;
    expect((await reader.snapshot()).map((r) => r.nodeId)).toEqual(["gw-im-1", "gw-im-2"]);
    expect(reads).toBe(2);
  });

  it("a replica's own writes show in its snapshot at once", async () => {
    await registry.register(gateway("gw-im-1", MEDIUM_IM));
    expect(await registry.snapshot()).toHaveLength(1);
    await registry.register(gateway("gw-im-2", MEDIUM_IM));
    await registry.heartbeat("gw-im-1", { inFlight: 7, healthy: true, detail: "" });
    const snap = await registry.snapshot();
    expect(snap.map((r) => [r.nodeId, r.inFlight])).toEqual([
      ["gw-im-1", 7],
      ["gw-im-2", 0],
    ]);
    await registry.deregister("gw-im-2");
    expect((await registry.snapshot()).map((r) => r.nodeId)).toEqual(["gw-im-1"]);
  });

  it("deregister removes the entry", async () => {
    await registry.register(gateway("gw-im-1", MEDIUM_IM));
    expect(await registry.deregister("gw-im-1")).toBe(true);
    expect(await registry.deregister("gw-im-1")).toBe(false);
    expect(await registry.list()).toEqual([]);
    expect(await store.scanKeys("*")).toEqual([]);
  });

  it("a silent node's entry expires; its heartbeat then asks it to register again", async () => {
    // The expiry leaves a wide margin over the heartbeat gap, so that a loaded machine's late
    // timer does not expire the node that keeps beating.
    const expireAfterMs = 300;
    const shortLived = new GatewayRegistry(store, { heartbeatIntervalMs: 10, expireAfterMs });
    await shortLived.register(gateway("gw-im-1", MEDIUM_IM));
    await shortLived.register(gateway("gw-im-2", MEDIUM_IM));
    const silentSince = Date.now();
    while (Date.now() - silentSince < expireAfterMs + 150) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await shortLived.heartbeat("gw-im-2", { inFlight: 0, healthy: true, detail: "" })).toBe(true);
    }
    expect(await shortLived.heartbeat("gw-im-1", { inFlight: 0, healthy: true, detail: "" })).toBe(false);
    expect((await shortLived.list()).map((r) => r.nodeId)).toEqual(["gw-im-2"]);
    expect(await store.sortedCount("nodes")).toBe(1);
  });

  it("with the background refresh, another replica's registration shows without a read on the message's path", async () => {
    let loads = 0;
    const counted = withOverrides(store, {
      getMany: (keys: string[]) => {
        loads++;
        return store.getMany(keys);
      },
    });
    const reader = new GatewayRegistry(counted, { heartbeatIntervalMs: INTERVAL, refreshMs: 100 });
    const writer = new GatewayRegistry(store, { heartbeatIntervalMs: INTERVAL });
    const stop = reader.startRefreshing((err) => {
      throw err;
    });
    try {
      await writer.register(gateway("gw-im-9", MEDIUM_IM));
      // Nobody reads the snapshot meanwhile: the timer loads it.
      await until(() => (loads >= 2 ? true : undefined), 2_000, "two background loads");
      const before = loads;
      expect((await reader.snapshot()).map((r) => r.nodeId)).toContain("gw-im-9");
      expect(loads).toBe(before);
    } finally {
      stop();
    }
    // Stopped: no more loads.
    const after = loads;
    await new Promise((r) => setTimeout(r, 300));
    expect(loads).toBe(after);
  });

  it("refuses a heartbeat interval that is not positive", () => {
    expect(() => new GatewayRegistry(store, { heartbeatIntervalMs: 0 })).toThrow(RangeError);
  });
});
