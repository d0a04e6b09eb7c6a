import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { AdminServiceClient } from "../../gen/uims/admin/v1/admin";
import { ReportOutcome, type ReportRequest } from "../../gen/uims/broker/v1/broker";
import type { MetaInformation, Release } from "../../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState } from "../../gen/uims/common/v1/types";
import { BrokerClient } from "../../common/mesh/broker-client";
import { callUnary } from "../../common/mesh/peer";
import { RecordingGateway, brokerEnv, generateMeshSecrets, identityFor, metaFor } from "../support/mesh";
import { freePort, startRedisServer, type RedisServerHandle } from "../support/redis-server";

/**
 * Two broker processes, built from dist/, sharing one Redis: any replica takes any step of a
 * transaction, and the survivor of a crash finishes every transaction the other one started.
 */

const MAIN = join(__dirname, "..", "..", "dist", "broker", "main.js");
const READY_TIMEOUT_MS = 15_000;

interface HealthClient extends grpc.Client {
  check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}

const healthPackage = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as {
  grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } };
};

interface BrokerProcess {
  nodeId: string;
  endpoint: string;
  child: ChildProcess;
  output: string[];
  admin: AdminServiceClient;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitUntilServing(proc: BrokerProcess): Promise<void> {
  const health = new healthPackage.grpc.health.v1.Health(proc.endpoint, grpc.credentials.createInsecure());
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (;;) {
      if (exited(proc.child)) throw new Error(`${proc.nodeId} exited during start-up:\n${proc.output.join("")}`);
      const status = await new Promise<string>((resolve) => {
        health.check({ service: "uims.broker.v1.BrokerService" }, { deadline: Date.now() + 1_000 }, (err, res) => resolve(err ? "" : (res?.status ?? "")));
      });
      if (status === "SERVING") return;
      if (Date.now() > deadline) throw new Error(`${proc.nodeId} not serving after ${READY_TIMEOUT_MS} ms:\n${proc.output.join("")}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    health.close();
  }
}

describe("two broker replicas on one Redis", () => {
  const secrets = generateMeshSecrets();
  const adminMetadata = new grpc.Metadata();
  adminMetadata.set("authorization", `Bearer ${secrets.UIMS_ADMIN_TOKEN}`);
  let redis: RedisServerHandle | undefined;
  const brokers: BrokerProcess[] = [];
  let b0: BrokerProcess;
  let b1: BrokerProcess;
  // Each gateway talks to broker-0 through its RecordingGateway and to broker-1 through a second client.
  let gwA: RecordingGateway;
  let gwB: RecordingGateway;
  let gwA1: BrokerClient;
  let gwB1: BrokerClient;

  async function spawnBroker(nodeId: string): Promise<BrokerProcess> {
    const port = await freePort();
    const env = { ...process.env, ...brokerEnv(secrets, { NODE_ID: nodeId, GRPC_PORT: String(port), REDIS_URL: redis!.url, LOG_LEVEL: "warn", RECEIPT_TIMEOUT_MS: "1s" }) };
    const child = spawn(process.execPath, [MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
    const endpoint = `127.0.0.1:${port}`;
    const proc: BrokerProcess = { nodeId, endpoint, child, output: [], admin: new AdminServiceClient(endpoint, grpc.credentials.createInsecure()) };
    brokers.push(proc);
    child.stdout?.on("data", (chunk: Buffer) => proc.output.push(chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => proc.output.push(chunk.toString()));
    await waitUntilServing(proc);
    return proc;
  }

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error("dist/broker/main.js is missing: run `make build` first (make test builds before it runs jest)");
    // A Redis of its own: the broker processes use the default key prefix.
    redis = await startRedisServer();
    [b0, b1] = await Promise.all([spawnBroker("broker-0"), spawnBroker("broker-1")]);
    gwA = new RecordingGateway("gw-im-a", Medium.MEDIUM_IM, secrets, b0.endpoint);
    gwB = new RecordingGateway("gw-im-b", Medium.MEDIUM_IM, secrets, b0.endpoint);
    await Promise.all([gwA.start(), gwB.start()]);
    gwA1 = new BrokerClient(b1.endpoint, identityFor("gw-im-a", secrets));
    gwB1 = new BrokerClient(b1.endpoint, identityFor("gw-im-b", secrets));
    const profile = (clientId: string) => ({ clientId, displayName: "", addresses: [{ medium: Medium.MEDIUM_IM, address: clientId }], preferredMedia: [], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0 });
    // Profiles made through one replica are seen by the other.
    await callUnary(b0.admin.createProfile.bind(b0.admin), { profile: profile("alice") }, 5_000, adminMetadata);
    await callUnary(b1.admin.createProfile.bind(b1.admin), { profile: profile("bob") }, 5_000, adminMetadata);
    await callUnary(b0.admin.createProfile.bind(b0.admin), { profile: profile("carol") }, 5_000, adminMetadata);
    await gwB1.reportPresence({ gatewayId: "gw-im-b", clientId: "bob", online: true });
  }, 30_000);

  afterAll(async () => {
    gwA1?.close();
    gwB1?.close();
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    await Promise.all(
      brokers.map(async (proc) => {
        proc.admin.close();
        if (exited(proc.child)) return;
        const gone = new Promise((resolve) => proc.child.once("exit", resolve));
        proc.child.kill("SIGKILL");
        await gone;
      }),
    );
    await redis?.stop();
  });

  const transaction = (proc: BrokerProcess, messageId: string) => callUnary(proc.admin.getTransaction.bind(proc.admin), { messageId }, 5_000, adminMetadata);
  const noticesFor = (messageId: string) => gwA.notices.filter((n) => n.request.messageId === messageId);

  async function waitFor(what: string, done: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await gwA.waitForNotices(gwA.notices.length + 1, Math.max(1, Math.min(200, deadline - Date.now()))).catch(() => undefined);
    }
  }

  function report(meta: MetaInformation, release: Release, outcome: ReportOutcome): Omit<ReportRequest, "auth"> {
    return { messageId: meta.messageId, releaseId: release.releaseId, attempt: release.meta!.attempt, outcome, failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED, reason: "", segments: 0, deliveredBytes: 11, atUnixMs: Date.now() };
  }

  test("one transaction with its phases alternating between the replicas", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "bob" });
    const release = await gwA.client.submit(meta);
    expect(release.meta).toMatchObject({ destinationGatewayId: "gw-im-b", destinationEndpoint: gwB.endpoint });
    expect(await gwA1.confirm({ messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 })).toEqual({ state: MessageState.MESSAGE_STATE_ROUTED });
    expect((await gwB.client.report(report(meta, release, ReportOutcome.REPORT_OUTCOME_DELIVERED))).state).toBe(MessageState.MESSAGE_STATE_DELIVERED);
    expect((await gwB1.report(report(meta, release, ReportOutcome.REPORT_OUTCOME_READ))).state).toBe(MessageState.MESSAGE_STATE_READ);

    await waitFor("the delivered and read notices", () => noticesFor(meta.messageId).length >= 2);
    // Each notice comes from the replica that took the report. Two replicas send independently,
    // so the notices may arrive in either order; the event states say which came first.
    const notices = noticesFor(meta.messageId).map((n) => [n.request.event!.state, n.request.auth?.nodeId] as const);
    expect([...notices].sort((a, b) => a[0] - b[0])).toEqual([
      [MessageState.MESSAGE_STATE_DELIVERED, "broker-0"],
      [MessageState.MESSAGE_STATE_READ, "broker-1"],
    ]);

    const [seen0, seen1] = await Promise.all([transaction(b0, meta.messageId), transaction(b1, meta.messageId)]);
    expect(seen0).toEqual(seen1);
    expect(seen1.status?.events.map((e) => e.state)).toEqual([
      MessageState.MESSAGE_STATE_ACCEPTED,
      MessageState.MESSAGE_STATE_ROUTED,
      MessageState.MESSAGE_STATE_DELIVERED,
      MessageState.MESSAGE_STATE_READ,
    ]);
  });

  test("broker-0 killed in the middle of a stream of submissions: broker-1 continues every transaction", async () => {
    // Messages for an offline client: their expiry falls after the crash, so only the survivor can expire them.
    const expiring = await Promise.all(
      [0, 1, 2].map(async () => {
        const meta = metaFor("gw-im-a", { sender: "alice", recipient: "carol", expiresAtUnixMs: Date.now() + 2_500 });
        await gwA.client.submit(meta);
        return meta;
      }),
    );

    const metas = Array.from({ length: 30 }, () => metaFor("gw-im-a", { sender: "alice", recipient: "bob" }));
    let releasedBeforeCrash = 0;
    const first = await Promise.allSettled(
      metas.map(async (meta, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 5));
        const release = await gwA.client.submit(meta);
        if (++releasedBeforeCrash === 10) b0.child.kill("SIGKILL");
        return release;
      }),
    );
    await new Promise((resolve) => b0.child.exitCode !== null || b0.child.signalCode !== null ? resolve(undefined) : b0.child.once("exit", resolve));
    const failed = first.filter((r) => r.status === "rejected");
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: grpc.status.UNAVAILABLE });

    // The originator retries what it did not get an answer for on the survivor: a message broker-0
    // had already stored is released again, one it had not is released afresh.
    const releases = await Promise.all(metas.map((meta, i) => (first[i]!.status === "fulfilled" ? (first[i] as PromiseFulfilledResult<Release>).value : gwA1.submit(meta))));
    for (const [i, release] of releases.entries()) {
      expect(release.meta).toMatchObject({ messageId: metas[i]!.messageId, destinationGatewayId: "gw-im-b", attempt: 1 });
    }

    // Confirmations and reports of every transaction are accepted by broker-1.
    await Promise.all(metas.map((meta, i) => gwA1.confirm({ messageId: meta.messageId, releaseId: releases[i]!.releaseId, attempt: 1 })));
    const reported = await Promise.all(metas.map((meta, i) => gwB1.report(report(meta, releases[i]!, ReportOutcome.REPORT_OUTCOME_DELIVERED))));
    expect(reported.every((r) => r.state === MessageState.MESSAGE_STATE_DELIVERED)).toBe(true);
    await waitFor("a delivered notice for each message", () => metas.every((m) => noticesFor(m.messageId).length >= 1));
    for (const meta of metas) {
      expect(noticesFor(meta.messageId).map((n) => [n.request.event?.state, n.request.auth?.nodeId])).toEqual([[MessageState.MESSAGE_STATE_DELIVERED, "broker-1"]]);
    }

    // broker-1's deadline sweeper expires the messages broker-0 released, and tells the originator.
    await waitFor("expiry notices from the survivor", () => expiring.every((m) => noticesFor(m.messageId).length >= 1), 6_000);
    for (const meta of expiring) {
      expect(noticesFor(meta.messageId).map((n) => [n.request.event?.state, n.request.auth?.nodeId])).toEqual([[MessageState.MESSAGE_STATE_EXPIRED, "broker-1"]]);
      expect((await transaction(b1, meta.messageId)).status?.state).toBe(MessageState.MESSAGE_STATE_EXPIRED);
    }
    const states = await Promise.all(metas.map(async (m) => (await transaction(b1, m.messageId)).status?.state));
    expect(new Set(states)).toEqual(new Set([MessageState.MESSAGE_STATE_DELIVERED]));
  }, 20_000);
});
