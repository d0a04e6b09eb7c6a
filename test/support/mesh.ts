import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { AdminServiceClient, type Profile } from "../../gen/uims/admin/v1/admin";
import { GatewayServiceService, type GatewayServiceServer, type NotifyRequest } from "../../gen/uims/gateway/v1/gateway";
import type { MetaInformation } from "../../gen/uims/common/v1/message";
import { Medium, Priority } from "../../gen/uims/common/v1/types";
import { loadBrokerConfig, type BrokerConfig } from "../../broker/config";
import { createBrokerServer, type BrokerServer } from "../../broker/server";
import { EnvReader } from "../../common/config";
import { notifyFields } from "../../common/crypto/call-fields";
import { verifyKeyFromRaw, type VerifyKeys } from "../../common/crypto/keys";
import { Label } from "../../common/crypto/labels";
import { generateMeshSecrets, type MeshSecrets } from "../../common/crypto/secrets";
import { TscsAuthority } from "../../common/crypto/tscs";
import { createLogger, type Logger } from "../../common/logger";
import { BrokerClient } from "../../common/mesh/broker-client";
import { multiplexed, unary } from "../../common/mesh/multiplex";
import { callUnary, type MeshIdentity } from "../../common/mesh/peer";
import { bindServer } from "../../common/grpc-server";
import { createStore, type Store } from "../../common/store";

/** Test scaffolding for a mesh on loopback: keys, a broker, stand-in peers. */

export { STORE_KINDS, redisUrl, testStore, type StoreKind } from "./store";

/** A logger whose JSON lines are kept for assertions. */
export function captureLogger(service = "test"): { logger: Logger; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ service, nodeId: "test", level: "debug", destination });
  const text = () => chunks.join("");
  return { logger, text, lines: () => text().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export function brokerEnv(secrets: MeshSecrets, extra: Record<string, string> = {}): Record<string, string> {
  return { NODE_ID: "broker-0", GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", LOG_LEVEL: "warn", ...secrets, ...extra };
}

export function verifyKeysFrom(secrets: MeshSecrets): VerifyKeys {
  const r = new EnvReader({ K: secrets.UIMS_RELEASE_VERIFY_KEYS });
  const ring = r.keyring("K");
  r.finish();
  return new Map([...ring.all].map(([id, raw]) => [id, verifyKeyFromRaw(raw)]));
}

export interface RunningBroker {
  config: BrokerConfig;
  broker: BrokerServer;
  port: number;
  endpoint: string;
  store: Store;
  admin: AdminServiceClient;
  adminMetadata: grpc.Metadata;
  stop(): Promise<void>;
}

export async function startBroker(secrets: MeshSecrets, store: Store, opts: { logger?: Logger; env?: Record<string, string>; clock?: () => number } = {}): Promise<RunningBroker> {
  const config = loadBrokerConfig(brokerEnv(secrets, opts.env));
  const logger = opts.logger ?? createLogger({ service: "broker", nodeId: config.nodeId, level: "silent" });
  const broker = createBrokerServer(config, store, logger, opts.clock);
  const port = await broker.start();
  const endpoint = `127.0.0.1:${port}`;
  const admin = new AdminServiceClient(endpoint, grpc.credentials.createInsecure());
  const adminMetadata = new grpc.Metadata();
  adminMetadata.set("authorization", `Bearer ${secrets.UIMS_ADMIN_TOKEN}`);
  return {
    config,
    broker,
    port,
    endpoint,
    store,
    admin,
    adminMetadata,
    async stop() {
      admin.close();
      broker.stopBackground();
      broker.server.forceShutdown();
    },
  };
}

export function identityFor(nodeId: string, secrets: MeshSecrets, clock?: () => number): MeshIdentity {
  const r = new EnvReader({ K: secrets.UIMS_K1_KEYS });
  const k1 = r.keyring("K");
  r.finish();
  return {
    nodeId,
    k1,
    credentials: grpc.credentials.createInsecure(),
    channelOptions: {},
    callTimeoutMs: 5_000,
    keyBatch: 16,
    ...(clock ? { clock } : {}),
  };
}

export function createProfile(running: RunningBroker, profile: Partial<Profile> & { clientId: string }): Promise<{ profile?: Profile; clientToken: string }> {
  const full: Profile = { displayName: "", addresses: [], preferredMedia: [], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0, ...profile };
  return callUnary(running.admin.createProfile.bind(running.admin), { profile: full }, 5_000, running.adminMetadata);
}

/**
 * A stand-in gateway for broker tests: it answers set-ups and records the broker's notices
 * (with the session key each came with, to check re-route digests). It carries no content.
 */
export class RecordingGateway {
  readonly notices: Array<{ request: NotifyRequest; sessionKey: Buffer }> = [];
  readonly client: BrokerClient;
  private server: grpc.Server | null = null;
  endpoint = "";
  private waiters: Array<() => void> = [];

  constructor(
    readonly nodeId: string,
    readonly medium: Medium,
    private readonly secrets: MeshSecrets,
    brokerEndpoint: string,
  ) {
    this.client = new BrokerClient(brokerEndpoint, identityFor(nodeId, secrets));
  }

  async start(): Promise<void> {
    const identity = identityFor(this.nodeId, this.secrets);
    const tscs = new TscsAuthority({ audience: this.nodeId, k1: identity.k1, store: createStore(), windowMs: 30_000, sessionKeyTtlMs: 30_000 });
    const notify = async (req: NotifyRequest) => {
      await tscs.authenticate(req.auth, Label.callNotify, notifyFields(req));
      this.notices.push({ request: req, sessionKey: Buffer.from(req.auth!.sessionKey) });
      for (const w of this.waiters.splice(0)) w();
      return {};
    };
    const refuse = async () => {
      throw Object.assign(new Error("not served by this stand-in"), { name: "FailedPreconditionError" });
    };
    const service: GatewayServiceServer = {
      setUp: unary(async (req) => ({ grant: await tscs.setUp(req.login) })),
      transmit: unary(refuse),
      transmitStream: multiplexed(refuse),
      notify: unary(notify),
      notifyStream: multiplexed(notify),
    };
    this.server = new grpc.Server();
    this.server.addService(GatewayServiceService, service);
    const port = await bindServer(this.server, "127.0.0.1", 0, grpc.ServerCredentials.createInsecure());
    this.endpoint = `127.0.0.1:${port}`;
    await this.client.register({ nodeId: this.nodeId, kind: 1, medium: this.medium, endpoint: this.endpoint, capacity: 100, version: "test" });
  }

  /** Resolves once `count` notices have arrived (or rejects after timeoutMs). */
  async waitForNotices(count: number, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.notices.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} notices, got ${this.notices.length}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  async stop(): Promise<void> {
    this.client.close();
    this.server?.forceShutdown();
  }
}

/** A submission's meta information as an originating gateway builds it. */
export function metaFor(origin: string, fields: Partial<MetaInformation> & { recipient: string }): MetaInformation {
  const now = Date.now();
  return {
    messageId: randomUUID(),
    idempotencyKey: "",
    sender: "",
    senderAddress: "",
    sourceMedium: Medium.MEDIUM_IM,
    originGatewayId: origin,
    contentType: "text/plain; charset=utf-8",
    contentSize: 11,
    contentDigest: Buffer.alloc(32, 7),
    attachmentCount: 0,
    priority: Priority.PRIORITY_NORMAL,
    subject: "",
    trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "" },
    createdAtUnixMs: now,
    expiresAtUnixMs: now + 3_600_000,
    targetMedium: Medium.MEDIUM_UNSPECIFIED,
    targetAddress: "",
    destinationGatewayId: "",
    destinationEndpoint: "",
    processorId: "",
    processorEndpoint: "",
    attempt: 0,
    recipientId: "",
    releasedAtUnixMs: 0,
    ...fields,
  };
}

export { generateMeshSecrets };

// ---------------------------------------------------------------------------------------------
// im gateways in this process, for integration tests (end-to-end tests run separate processes).

import { ClientServiceClient } from "../../gen/uims/client/v1/client";
import { loadImGatewayConfig } from "../../gateways/im/config";
import { createImGateway, type ImGateway } from "../../gateways/im/server";

export interface RunningImGateway {
  im: ImGateway;
  nodeId: string;
  clientEndpoint: string;
  meshPort: number;
  store: Store;
  clientFor(token: string): { client: ClientServiceClient; metadata: grpc.Metadata };
  stop(): Promise<void>;
}

export async function startImGateway(
  secrets: MeshSecrets,
  brokerEndpoint: string,
  nodeId: string,
  store: Store,
  opts: { logger?: Logger; env?: Record<string, string> } = {},
): Promise<RunningImGateway> {
  const config = loadImGatewayConfig({
    NODE_ID: nodeId,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    CLIENT_HOST: "127.0.0.1",
    CLIENT_PORT: "0",
    BROKER_ADDR: brokerEndpoint,
    UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
    UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
    ...opts.env,
  });
  const logger = opts.logger ?? createLogger({ service: "gw", nodeId, level: process.env.UIMS_TEST_LOG_LEVEL === "debug" ? "debug" : "silent" });
  const im = createImGateway(config, store, logger);
  const { meshPort, clientPort } = await im.start();
  const clientEndpoint = `127.0.0.1:${clientPort}`;
  const clients: ClientServiceClient[] = [];
  return {
    im,
    nodeId,
    clientEndpoint,
    meshPort,
    store,
    clientFor(token: string) {
      const client = new ClientServiceClient(clientEndpoint, grpc.credentials.createInsecure());
      clients.push(client);
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      return { client, metadata };
    },
    async stop() {
      for (const c of clients) c.close();
      im.client.server.forceShutdown();
      im.gateway.mesh.server.forceShutdown();
      await im.gateway.close();
    },
  };
}
