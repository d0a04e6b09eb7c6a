import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { AdminServiceClient } from "../../gen/uims/admin/v1/admin";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { LocalMesh, type RunningComponent } from "../../cli/local-mesh";
import { ConfigError } from "../../common/config";
import { callUnary } from "../../common/mesh/peer";
import { loadImGatewayConfig } from "../../gateways/im/config";
import { addProfile, connectClient, followInbox, requireBuild, until, type ClientHandle, type E2EMesh } from "../support/e2e";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server";

/**
 * Scale-out as Kubernetes runs it, on one machine: two broker replicas and two im gateways, each
 * its own process, on one Redis. The gateways reach the brokers through one BROKER_ADDR that
 * resolves to both (in a cluster, the broker's headless Service; here a grpc-js `ipv4:` target
 * listing both), and their round_robin channels spread calls over the replicas.
 *
 * Which replica worked is measured from the outside, as CPU time each broker process spent
 * (utime + stime in /proc/<pid>/stat) during the load compared with the same time idle: it needs
 * no cooperation from the code, and it cannot be satisfied by connections or heartbeats alone.
 */

const SENDERS = ["s0", "s1", "s2", "s3"];
const RECIPIENTS = ["r0", "r1", "r2", "r3"];
const BALANCE_MESSAGES = 150;
const FAILOVER_MESSAGES = 150;
const KILL_AFTER = 40;
const WORKERS = 8;
/**
 * Each replica must have done at least this share of the brokers' extra CPU time under load.
 * Mesh calls ride long-lived streams and round_robin places each stream, not each call, on a
 * replica, so the split is uneven: 50/50 or 25/75 over 35 runs on this machine, never below 21%.
 */
const MIN_SHARE = 0.15;
/** Failures a client retries, with the same idempotency key: the broker it was talking to went away. */
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED, grpc.status.CANCELLED]);

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5), counted after the command name: utime and stime in clock ticks (100 Hz).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function environOf(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("scale: two brokers behind one BROKER_ADDR, two im gateways, one Redis", () => {
  let redis: RedisServerHandle | undefined;
  let mesh: LocalMesh | undefined;
  let e: E2EMesh;
  let brokers: RunningComponent[] = [];
  const clients = new Map<string, ClientHandle>();
  const inboxes = new Map<string, ReturnType<typeof followInbox>>();
  /** Gateway (client endpoint) of each participant: senders and recipients on both gateways. */
  const home = new Map<string, string>();
  /** messageId → [sender, body] for every accepted message. */
  const accepted = new Map<string, [string, string]>();
  let retries = 0;

  async function send(n: number): Promise<void> {
    const sender = SENDERS[n % SENDERS.length]!;
    const recipient = RECIPIENTS[Math.floor(n / SENDERS.length) % RECIPIENTS.length]!;
    const h = clients.get(sender)!;
    const body = `scale-${n}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await callUnary(
          h.client.send.bind(h.client),
          { recipient, payload: { contentType: "text/plain; charset=utf-8", body: Buffer.from(body), attachments: [], subject: "" }, idempotencyKey: `k-${n}`, priority: 0, ttlSeconds: 0 },
          5_000,
          h.metadata,
        );
        accepted.set(res.messageId, [sender, body]);
        return;
      } catch (err) {
        const code = (err as { code?: number }).code;
        if (code === undefined || !RETRYABLE.has(code) || attempt >= 40) throw err;
        retries++;
        await sleep(100);
      }
    }
  }

  /** Sends messages first..last-1 with WORKERS in parallel; `onSent` sees the running count. */
  async function load(first: number, last: number, onSent?: (sent: number) => Promise<void> | void): Promise<void> {
    let next = first;
    let sent = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (next < last) {
          const n = next++;
          await send(n);
          sent++;
          await onSent?.(sent);
        }
      }),
    );
  }

  beforeAll(async () => {
    requireBuild();
    redis = await startRedisServer();
    mesh = new LocalMesh({ components: [], redisUrl: redis.url, logDir: mkdtempSync(join(tmpdir(), "uims-scale-")), env: { LOG_LEVEL: "info", UNREACHABLE_AFTER_MS: "60s" } });
    brokers = [await mesh.startComponent({ nodeId: "broker-0", kind: "broker" }), await mesh.startComponent({ nodeId: "broker-1", kind: "broker" })];

    // One target naming both replicas, as a headless Service's DNS name does in a cluster.
    const target = `ipv4:${brokers.map((b) => b.endpoint).join(",")}`;
    try {
      loadImGatewayConfig({ ...mesh.secrets, NODE_ID: "gw-im-1", BROKER_ADDR: target });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      throw new Error(
        `BROKER_ADDR="${target}" is refused by the gateway's config loader, so a gateway cannot balance over two brokers ` +
          `outside DNS. BROKER_ADDR must accept a grpc-js target (host:port, dns:///host:port, ipv4:a:p,b:p), not only host:port.\n${err.message}`,
      );
    }
    const gateways = [
      await mesh.startComponent({ nodeId: "gw-im-1", kind: "im", env: { BROKER_ADDR: target } }),
      await mesh.startComponent({ nodeId: "gw-im-2", kind: "im", env: { BROKER_ADDR: target } }),
    ];
    for (const gw of gateways) {
      const given = environOf(gw.process.pid!).BROKER_ADDR;
      if (given !== target) throw new Error(`LocalMesh started ${gw.spec.nodeId} with BROKER_ADDR=${given}, not the ${target} its spec asked for`);
    }

    const admin = new AdminServiceClient(brokers[0]!.endpoint, grpc.credentials.createInsecure());
    const adminMetadata = new grpc.Metadata();
    adminMetadata.set("authorization", `Bearer ${mesh.secrets.UIMS_ADMIN_TOKEN}`);
    e = { mesh, redis, admin, adminMetadata, stop: async () => undefined };
    [...SENDERS, ...RECIPIENTS].forEach((id, i) => home.set(id, gateways[i % 2]!.clientEndpoint!));
    for (const id of [...SENDERS, ...RECIPIENTS]) {
      const token = await addProfile(e, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] });
      clients.set(id, connectClient(home.get(id)!, token));
    }
    for (const id of RECIPIENTS) inboxes.set(id, followInbox(clients.get(id)!));
    const { createClient } = await import("redis");
    const r = createClient({ url: redis.url });
    await r.connect();
    try {
      await until(async () => {
        const online = await Promise.all(RECIPIENTS.map(async (id) => ((await r.get(`uims:presence:${id}`)) ?? "").includes('"online":true')));
        return online.every(Boolean) ? true : undefined;
      }, 10_000, "every recipient online");
    } finally {
      await r.close();
    }
  }, 60_000);

  afterAll(async () => {
    for (const inbox of inboxes.values()) inbox.cancel();
    for (const c of clients.values()) c.close();
    e?.admin.close();
    await mesh?.stop("SIGKILL");
    await redis?.stop();
  });

  test("the gateways spread the work over both broker replicas", async () => {
    const idleStart = brokers.map((b) => cpuMs(b.process.pid!));
    const idleFrom = Date.now();
    await sleep(1_000);
    const idle = brokers.map((b, i) => cpuMs(b.process.pid!) - idleStart[i]!);
    const idleMs = Date.now() - idleFrom;

    const before = brokers.map((b) => cpuMs(b.process.pid!));
    const started = Date.now();
    await load(0, BALANCE_MESSAGES);
    await until(() => (RECIPIENTS.every((id) => inboxes.get(id)!.received.length > 0) && arrivedCount() >= BALANCE_MESSAGES ? true : undefined), 20_000, "every message of the first batch arrived");
    const elapsed = Date.now() - started;
    const used = brokers.map((b, i) => cpuMs(b.process.pid!) - before[i]!);

    // What each replica did beyond idling for as long.
    const extra = used.map((u, i) => Math.max(0, u - (idle[i]! * elapsed) / idleMs));
    const total = extra.reduce((a, b) => a + b, 0);
    const shares = extra.map((x) => x / total);
    const report = brokers.map((b, i) => `${b.spec.nodeId}: ${used[i]} ms under load (${idle[i]} ms idle in ${idleMs} ms), share ${(shares[i]! * 100).toFixed(0)}%`).join("; ");
    console.info(report);
    expect(total).toBeGreaterThan(0);
    for (const share of shares) expect([report, share >= MIN_SHARE]).toEqual([report, true]);
  }, 40_000);

  test("one broker killed mid-load: nothing lost, nothing delivered twice", async () => {
    let killed = false;
    await load(BALANCE_MESSAGES, BALANCE_MESSAGES + FAILOVER_MESSAGES, async (sent) => {
      if (sent >= KILL_AFTER && !killed) {
        killed = true;
        await mesh!.stopComponent("broker-1", "SIGKILL");
      }
    });
    expect(killed).toBe(true);
    expect(accepted.size).toBe(BALANCE_MESSAGES + FAILOVER_MESSAGES);

    // Every message ends DELIVERED at its sender's GetStatus.
    const statuses = async () =>
      Promise.all(
        [...accepted].map(async ([messageId, [sender]]) => {
          const h = clients.get(sender)!;
          return (await callUnary(h.client.getStatus.bind(h.client), { messageId }, 5_000, h.metadata)).status!;
        }),
      );
    try {
      await until(async () => ((await statuses()).every((s) => s.state === MessageState.MESSAGE_STATE_DELIVERED) ? true : undefined), 30_000, "every message DELIVERED");
    } catch (err) {
      const pending = (await statuses()).filter((s) => s.state !== MessageState.MESSAGE_STATE_DELIVERED);
      const shown = pending
        .slice(0, 5)
        .map((s) => `${s.messageId}: ${s.events.map((ev) => `${MessageState[ev.state]}${ev.reason ? ` (${ev.reason})` : ""}`).join(" > ")}`);
      throw new Error(`${(err as Error).message}: ${pending.length} of ${accepted.size} not DELIVERED, e.g.\n${shown.join("\n")}`);
    }

    // Each recipient has each message id once, and each body (one per logical send, retries included) once.
    await sleep(500);
    const ids: string[] = [];
    const bodies: string[] = [];
    for (const id of RECIPIENTS) {
      const received = inboxes.get(id)!.received.filter((r) => r.message);
      const own = received.map((r) => r.message!.messageId);
      expect([id, own.length]).toEqual([id, new Set(own).size]);
      ids.push(...own);
      bodies.push(...received.map((r) => Buffer.from(r.message!.payload!.body).toString()));
    }
    expect(ids.sort()).toEqual([...accepted.keys()].sort());
    expect(bodies.sort()).toEqual([...accepted.values()].map(([, body]) => body).sort());
    console.info(`failover: ${accepted.size} messages, ${retries} sends retried after broker-1 was killed`);
  }, 60_000);

  function arrivedCount(): number {
    return [...inboxes.values()].reduce((n, inbox) => n + inbox.received.filter((r) => r.message).length, 0);
  }
});
