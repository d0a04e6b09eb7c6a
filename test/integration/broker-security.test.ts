import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  BrokerServiceClient,
  NodeKind,
  ReportOutcome,
  type ConfirmReleaseRequest,
  type HeartbeatRequest,
  type RegisterRequest,
  type ReportPresenceRequest,
  type ReportRequest,
  type ResolveClientTokenRequest,
  type SubmitRequest,
} from "../../gen/uims/broker/v1/broker";
import type { Login } from "../../gen/uims/common/v1/auth";
import type { MetaInformation, Release } from "../../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState } from "../../gen/uims/common/v1/types";
import {
  confirmFields,
  heartbeatFields,
  presenceFields,
  registerFields,
  reportFields,
  resolveTokenFields,
  submitFields,
} from "../../common/crypto/call-fields";
import type { CanonicalField } from "../../common/crypto/canonical";
import { randomKeyring } from "../../common/crypto/keys";
import { Label } from "../../common/crypto/labels";
import { createLogin, signCall } from "../../common/crypto/tscs";
import { BROKER_AUDIENCE, BrokerClient } from "../../common/mesh/broker-client";
import { callUnary } from "../../common/mesh/peer";
import {
  STORE_KINDS,
  RecordingGateway,
  captureLogger,
  createProfile,
  generateMeshSecrets,
  identityFor,
  metaFor,
  startBroker,
  testStore,
  type RunningBroker,
} from "../support/mesh";

const { UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, INTERNAL } = grpc.status;
const TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Every field of a request type, read from the .proto, so that a field added later is covered
// by the bit-flip tests without anyone editing them.

const descriptors = protoLoader.loadSync("uims/broker/v1/broker.proto", { includeDirs: [join(__dirname, "..", "..", "proto")] });

interface FieldDescriptor {
  name: string;
  type: string;
  typeName: string;
  label: string;
}

function resolveType(scope: string, typeName: string): string {
  const parts = scope.split(".").slice(0, -1);
  for (let i = parts.length; i >= 0; i--) {
    const candidate = [...parts.slice(0, i), typeName].join(".");
    if (descriptors[candidate]) return candidate;
  }
  throw new Error(`cannot resolve ${typeName} from ${scope}`);
}

function fieldsOf(fullName: string): FieldDescriptor[] {
  const def = descriptors[fullName] as { type?: { field: FieldDescriptor[] } } | undefined;
  if (!def?.type) throw new Error(`no message ${fullName}`);
  return def.type.field;
}

function leafPaths(fullName: string, prefix: string[] = []): string[][] {
  return fieldsOf(fullName).flatMap((f) => {
    if (f.label === "LABEL_REPEATED") throw new Error(`${fullName}.${f.name}: repeated fields need their own flip rule`);
    return f.type === "TYPE_MESSAGE" ? leafPaths(resolveType(fullName, f.typeName), [...prefix, f.name]) : [[...prefix, f.name]];
  });
}

/** Paths of every field a call's MAC must cover: the whole request but `auth`. */
function signedPaths(requestType: string): string[][] {
  return leafPaths(`uims.broker.v1.${requestType}`).filter((p) => p[0] !== "auth");
}

type Leaf = string | number | boolean | Uint8Array | undefined;

/** The smallest change to a value: one flipped bit, or one added character/byte when it is empty. */
function flipOneBit(value: Leaf): Leaf {
  if (typeof value === "string") return value.length === 0 ? "\u0001" : String.fromCharCode(value.charCodeAt(0) ^ 1) + value.slice(1);
  if (typeof value === "number") return value % 2 === 0 ? value + 1 : value - 1;
  if (typeof value === "boolean") return !value;
  if (value === undefined || value.length === 0) return Buffer.of(1);
  const copy = Buffer.from(value);
  copy[0] = copy[0]! ^ 1;
  return copy;
}

/** A message of `fullName` with every field at its proto3 default, as the generated code builds it. */
function emptyMessage(fullName: string): Record<string, unknown> {
  const defaults: Record<string, unknown> = { TYPE_STRING: "", TYPE_BOOL: false, TYPE_MESSAGE: undefined };
  return Object.fromEntries(fieldsOf(fullName).map((f) => [f.name, f.type === "TYPE_BYTES" ? Buffer.alloc(0) : f.type in defaults ? defaults[f.type] : 0]));
}

/**
 * A deep copy of `obj` (a `requestType`) with the field at `path` changed by one bit; an absent
 * nested message is created with default fields, then changed.
 */
function flipped<T>(obj: T, path: readonly string[], requestType = "uims.broker.v1.SubmitRequest"): T {
  const copy = structuredCloneWithBuffers(obj) as Record<string, unknown>;
  let at = copy;
  let type = requestType;
  for (const key of path.slice(0, -1)) {
    const field = fieldsOf(type).find((f) => f.name === key);
    if (!field) throw new Error(`${type} has no field ${key}`);
    type = resolveType(type, field.typeName);
    at[key] ??= emptyMessage(type);
    at = at[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  at[last] = flipOneBit(at[last] as Leaf);
  return copy as T;
}

function structuredCloneWithBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(structuredCloneWithBuffers);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, structuredCloneWithBuffers(v)]));
  return value;
}

// ---------------------------------------------------------------------------------------------

type UnaryRpc = "setUp" | "submit" | "confirmRelease" | "report" | "register" | "heartbeat" | "reportPresence" | "resolveClientToken";

const RPC_NAMES: Record<UnaryRpc, string> = {
  setUp: "SetUp",
  submit: "Submit",
  confirmRelease: "ConfirmRelease",
  report: "Report",
  register: "Register",
  heartbeat: "Heartbeat",
  reportPresence: "ReportPresence",
  resolveClientToken: "ResolveClientToken",
};

interface Refusal {
  code: grpc.status;
  details: string | RegExp;
}

describe.each(STORE_KINDS)("broker security (%s store)", (kind) => {
  const secrets = generateMeshSecrets();
  const k1 = identityFor("any", secrets).k1;
  const log = captureLogger("broker");
  let running: RunningBroker;
  let raw: BrokerServiceClient;
  let gwA: RecordingGateway;
  let gwB: RecordingGateway;
  let gwSms: RecordingGateway;
  let processor: BrokerClient;
  let aliceToken = "";

  beforeAll(async () => {
    running = await startBroker(secrets, testStore(kind), { logger: log.logger });
    raw = new BrokerServiceClient(running.endpoint, grpc.credentials.createInsecure());
    gwA = new RecordingGateway("gw-im-a", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwB = new RecordingGateway("gw-im-b", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwSms = new RecordingGateway("gw-sms-1", Medium.MEDIUM_SMS, secrets, running.endpoint);
    await Promise.all([gwA.start(), gwB.start(), gwSms.start()]);
    processor = new BrokerClient(running.endpoint, identityFor("proc-1", secrets));
    await processor.register({ nodeId: "proc-1", kind: NodeKind.NODE_KIND_PROCESSOR, medium: Medium.MEDIUM_UNSPECIFIED, endpoint: "127.0.0.1:1", capacity: 10, version: "test" });
    aliceToken = (await createProfile(running, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }] })).clientToken;
    await createProfile(running, {
      clientId: "bob",
      addresses: [
        { medium: Medium.MEDIUM_IM, address: "bob" },
        { medium: Medium.MEDIUM_SMS, address: "+491701234567" },
      ],
      preferredMedia: [Medium.MEDIUM_IM, Medium.MEDIUM_SMS],
    });
    await gwB.client.reportPresence({ gatewayId: "gw-im-b", clientId: "bob", online: true });
  });

  afterAll(async () => {
    raw.close();
    processor.close();
    await Promise.all([gwA.stop(), gwB.stop(), gwSms.stop()]);
    await running.stop();
    await running.store.close();
  });

  // Raw calls, so that tests can send what a well-behaved client never would.
  function call<Req, Res>(rpc: UnaryRpc, request: Req): Promise<Res> {
    const method = (raw[rpc] as unknown as (...args: unknown[]) => grpc.ClientUnaryCall).bind(raw);
    return callUnary(method as never, request, TIMEOUT_MS) as Promise<Res>;
  }

  async function sessionKeys(nodeId: string, count: number): Promise<Buffer[]> {
    const { grant } = await call<{ login: Login }, { grant?: { keys: Array<{ key: Uint8Array }> } }>("setUp", { login: createLogin(k1, nodeId, BROKER_AUDIENCE, count, Date.now()) });
    return grant!.keys.map((k) => Buffer.from(k.key));
  }

  async function sessionKey(nodeId: string): Promise<Buffer> {
    return (await sessionKeys(nodeId, 1))[0]!;
  }

  /** Expects the exact code and reason, and a "call refused" log line for the RPC with that reason. */
  async function expectRefused(rpc: UnaryRpc, send: () => Promise<unknown>, expected: Refusal): Promise<void> {
    const mark = log.lines().length;
    const err = await send().then(
      () => {
        throw new Error(`${RPC_NAMES[rpc]} was accepted; expected ${grpc.status[expected.code]}`);
      },
      (e: unknown) => e as grpc.ServiceError,
    );
    expect({ code: grpc.status[err.code], details: err.details }).toEqual({
      code: grpc.status[expected.code],
      details: typeof expected.details === "string" ? expected.details : expect.stringMatching(expected.details),
    });
    expect(log.lines().slice(mark)).toContainEqual(expect.objectContaining({ level: "warn", msg: "call refused", rpc: RPC_NAMES[rpc], reason: err.details }));
  }

  function signed<R extends object>(nodeId: string, key: Buffer, label: string, fields: (r: R) => CanonicalField[], body: R, signedBody: R = body): R & { auth: ReturnType<typeof signCall> } {
    return { ...body, auth: signCall(k1, nodeId, key, label, fields(signedBody)) };
  }

  const bobMeta = (extra: Partial<MetaInformation> = {}) => metaFor("gw-im-a", { sender: "alice", senderAddress: "im:alice", recipient: "bob", ...extra });

  /** A message released to gw-im-b (bob is online there). */
  async function released(): Promise<{ meta: MetaInformation; release: Release }> {
    const meta = bobMeta();
    const release = await gwA.client.submit(meta);
    expect(release.meta?.destinationGatewayId).toBe("gw-im-b");
    return { meta, release };
  }

  function reportBody(messageId: string, releaseId: Buffer, extra: Partial<ReportRequest> = {}): Omit<ReportRequest, "auth"> {
    return {
      messageId,
      releaseId,
      attempt: 1,
      outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED,
      failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED,
      reason: "ok",
      segments: 1,
      deliveredBytes: 11,
      atUnixMs: Date.now(),
      trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "v=1" },
      ...extra,
    };
  }

  describe("TSCS set-up and session keys", () => {
    test("a replayed login key is refused", async () => {
      const login = createLogin(k1, "gw-im-a", BROKER_AUDIENCE, 1, Date.now());
      await call("setUp", { login });
      await expectRefused("setUp", () => call("setUp", { login }), { code: UNAUTHENTICATED, details: "login nonce was already used (replayed login key)" });
    });

    test("a reused session key is refused, on every RPC it is tried on", async () => {
      const [k, s] = await sessionKeys("gw-im-a", 2);
      const heartbeat = signed<Omit<HeartbeatRequest, "auth">>("gw-im-a", k!, Label.callHeartbeat, heartbeatFields, { nodeId: "gw-im-a", inFlight: 0, healthy: true, detail: "" });
      expect(await call("heartbeat", heartbeat)).toEqual({ known: true });
      await expectRefused("heartbeat", () => call("heartbeat", heartbeat), { code: UNAUTHENTICATED, details: "session key is unknown, expired or already used" });

      const meta = bobMeta();
      const submit = signed("gw-im-a", s!, Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      await call("submit", submit);
      // The same call again is a replay, not a retried submission.
      await expectRefused("submit", () => call("submit", submit), { code: UNAUTHENTICATED, details: "session key is unknown, expired or already used" });
    });

    test("logins outside the time window are refused, stale or from the future", async () => {
      const at = (shiftMs: number) => ({ login: createLogin(k1, "gw-im-a", BROKER_AUDIENCE, 1, Date.now() + shiftMs) });
      await expectRefused("setUp", () => call("setUp", at(-31_000)), { code: UNAUTHENTICATED, details: /^login timestamp is stale by \d+ ms \(window 30000 ms\)$/ });
      await expectRefused("setUp", () => call("setUp", at(+31_000)), { code: UNAUTHENTICATED, details: /^login timestamp is in the future by \d+ ms \(window 30000 ms\)$/ });
      await expectRefused("setUp", () => call("setUp", at(-10 * 60_000)), { code: UNAUTHENTICATED, details: /stale/ });
      // Inside the window on both sides: accepted.
      await expect(call("setUp", at(-20_000))).resolves.toMatchObject({ grant: { nodeId: BROKER_AUDIENCE } });
      await expect(call("setUp", at(+20_000))).resolves.toMatchObject({ grant: { nodeId: BROKER_AUDIENCE } });
    });

    test("a flipped bit in any login field is refused, and does not use up the nonce", async () => {
      const login = createLogin(k1, "gw-im-a", BROKER_AUDIENCE, 1, Date.now());
      const paths = [...leafPaths("uims.common.v1.LoginKey", ["key"]), ["mac"]];
      expect(paths.map((p) => p.join("."))).toEqual(["key.nodeId", "key.timestampUnixMs", "key.nonce", "key.keyId", "key.audience", "mac"]);
      for (const path of paths) {
        const field = path.join(".");
        const details = field === "key.audience" ? 'login is meant for "croker", not "broker"' : field === "key.keyId" ? /^unknown mesh key id "/ : "login MAC does not verify";
        await expectRefused("setUp", () => call("setUp", { login: flipped(login, path, "uims.common.v1.Login") }), { code: UNAUTHENTICATED, details });
      }
      await expect(call("setUp", { login })).resolves.toMatchObject({ grant: { nodeId: BROKER_AUDIENCE } });
    });

    test("an unknown key id is refused, at set-up and on a call", async () => {
      const foreign = randomKeyring("k-unknown");
      await expectRefused("setUp", () => call("setUp", { login: createLogin(foreign, "gw-im-a", BROKER_AUDIENCE, 1, Date.now()) }), {
        code: UNAUTHENTICATED,
        details: 'unknown mesh key id "k-unknown"',
      });
      // The right key id with the wrong key.
      const wrongKey = randomKeyring(k1.current.id);
      await expectRefused("setUp", () => call("setUp", { login: createLogin(wrongKey, "gw-im-a", BROKER_AUDIENCE, 1, Date.now()) }), {
        code: UNAUTHENTICATED,
        details: "login MAC does not verify",
      });
      const key = await sessionKey("gw-im-a");
      const body = { nodeId: "gw-im-a", inFlight: 0, healthy: true, detail: "" };
      await expectRefused("heartbeat", () => call("heartbeat", { ...body, auth: signCall(foreign, "gw-im-a", key, Label.callHeartbeat, heartbeatFields(body)) }), {
        code: UNAUTHENTICATED,
        details: 'unknown mesh key id "k-unknown"',
      });
      await expectRefused("heartbeat", () => call("heartbeat", { ...body, auth: signCall(wrongKey, "gw-im-a", key, Label.callHeartbeat, heartbeatFields(body)) }), {
        code: UNAUTHENTICATED,
        details: "call MAC does not verify",
      });
      // Neither forgery used up the key.
      expect(await call("heartbeat", signed("gw-im-a", key, Label.callHeartbeat, heartbeatFields, body))).toEqual({ known: true });
    });

    test("a login for another audience (a gateway's) is refused by the broker", async () => {
      await expectRefused("setUp", () => call("setUp", { login: createLogin(k1, "gw-im-a", "gw-im-b", 1, Date.now()) }), {
        code: UNAUTHENTICATED,
        details: 'login is meant for "gw-im-b", not "broker"',
      });
    });
  });

  describe("a flipped bit in any MAC-covered field is refused and does not burn the session key", () => {
    test("Submit: every MetaInformation field and every auth field", async () => {
      const meta = bobMeta({ idempotencyKey: "idem-1", subject: "hi", attachmentCount: 1, trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "v=1" } });
      const key = await sessionKey("gw-im-a");
      const genuine = signed("gw-im-a", key, Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      const paths = signedPaths("SubmitRequest");
      expect(paths.length).toBeGreaterThanOrEqual(30);
      for (const path of paths) {
        await expectRefused("submit", () => call("submit", flipped(genuine, path)), { code: UNAUTHENTICATED, details: "call MAC does not verify" });
      }
      for (const field of ["nodeId", "sessionKey", "mac"]) {
        await expectRefused("submit", () => call("submit", flipped(genuine, ["auth", field])), { code: UNAUTHENTICATED, details: "call MAC does not verify" });
      }
      await expectRefused("submit", () => call("submit", flipped(genuine, ["auth", "keyId"])), { code: UNAUTHENTICATED, details: /^unknown mesh key id/ });
      const res = await call<SubmitRequest, { release?: Release }>("submit", genuine);
      expect(res.release?.meta).toMatchObject({ messageId: meta.messageId, destinationGatewayId: "gw-im-b" });
    });

    test("Report: every field", async () => {
      const { meta, release } = await released();
      const key = await sessionKey("gw-im-b");
      const genuine = signed("gw-im-b", key, Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId));
      const paths = signedPaths("ReportRequest");
      expect(paths.map((p) => p.join("."))).toContain("trace.tracestate");
      for (const path of paths) {
        await expectRefused("report", () => call("report", flipped(genuine, path, "uims.broker.v1.ReportRequest")), { code: UNAUTHENTICATED, details: "call MAC does not verify" });
      }
      expect(await call("report", genuine)).toEqual({ state: MessageState.MESSAGE_STATE_DELIVERED, rerouted: false });
    });

    test.each([
      ["ConfirmReleaseRequest", "confirmRelease"],
      ["RegisterRequest", "register"],
      ["HeartbeatRequest", "heartbeat"],
      ["ReportPresenceRequest", "reportPresence"],
      ["ResolveClientTokenRequest", "resolveClientToken"],
    ] as const)("%s: every field", async (type, rpc) => {
      const { meta, release } = await released();
      type Case = { nodeId: string; label: string; fields: (r: never) => CanonicalField[]; body: object };
      const cases: Record<typeof rpc, () => Case> = {
        confirmRelease: () => ({ nodeId: "gw-im-a", label: Label.callConfirm, fields: confirmFields, body: { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 } satisfies Omit<ConfirmReleaseRequest, "auth"> }),
        register: () => ({ nodeId: "gw-im-a", label: Label.callRegister, fields: registerFields, body: { nodeId: "gw-im-a", kind: NodeKind.NODE_KIND_GATEWAY, medium: Medium.MEDIUM_IM, endpoint: gwA.endpoint, capacity: 100, version: "test" } satisfies Omit<RegisterRequest, "auth"> }),
        heartbeat: () => ({ nodeId: "gw-im-a", label: Label.callHeartbeat, fields: heartbeatFields, body: { nodeId: "gw-im-a", inFlight: 3, healthy: true, detail: "ok" } satisfies Omit<HeartbeatRequest, "auth"> }),
        reportPresence: () => ({ nodeId: "gw-im-b", label: Label.callPresence, fields: presenceFields, body: { gatewayId: "gw-im-b", clientId: "bob", online: true } satisfies Omit<ReportPresenceRequest, "auth"> }),
        resolveClientToken: () => ({ nodeId: "gw-im-a", label: Label.callResolveToken, fields: resolveTokenFields, body: { tokenSha256: createHash("sha256").update(aliceToken).digest() } satisfies Omit<ResolveClientTokenRequest, "auth"> }),
      };
      const { nodeId, label, fields, body } = cases[rpc]();
      const key = await sessionKey(nodeId);
      const genuine = signed(nodeId, key, label, fields as (r: object) => CanonicalField[], body as object);
      for (const path of signedPaths(type)) {
        await expectRefused(rpc, () => call(rpc, flipped(genuine, path, `uims.broker.v1.${type}`)), { code: UNAUTHENTICATED, details: "call MAC does not verify" });
      }
      await expect(call(rpc, genuine)).resolves.toBeDefined();
    });
  });

  describe("identity: a gateway acts only as itself", () => {
    // Session keys for gw-im-a, fetched ahead in one set-up.
    let spare: Buffer[] = [];
    beforeAll(async () => {
      spare = await sessionKeys("gw-im-a", 8);
    });
    function nextKey(): Buffer {
      const key = spare.pop();
      if (!key) throw new Error("out of spare session keys");
      return key;
    }

    test("a node authenticated with K1 but never registered cannot submit", async () => {
      const key = await sessionKey("gw-ghost");
      const meta = metaFor("gw-ghost", { sender: "alice", recipient: "bob" });
      await expectRefused("submit", () => call("submit", signed("gw-ghost", key, Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta })), {
        code: FAILED_PRECONDITION,
        details: 'gateway "gw-ghost" is not registered',
      });
    });

    test("a report or confirmation with a release id the broker did not issue is refused", async () => {
      const { meta, release } = await released();
      const other = await released();
      const forgedIds = [randomBytes(32), Buffer.from(other.release.releaseId), Buffer.alloc(0)];
      for (const releaseId of forgedIds) {
        const report = signed("gw-im-b", await sessionKey("gw-im-b"), Label.callReport, reportFields, reportBody(meta.messageId, releaseId));
        await expectRefused("report", () => call("report", report), { code: PERMISSION_DENIED, details: "release id does not match the broker's" });
        const confirmBody = { messageId: meta.messageId, releaseId, attempt: 1 };
        const confirm = signed("gw-im-a", await sessionKey("gw-im-a"), Label.callConfirm, confirmFields, confirmBody);
        await expectRefused("confirmRelease", () => call("confirmRelease", confirm), { code: PERMISSION_DENIED, details: "release id does not match the broker's" });
      }
      // The genuine report still goes through.
      const report = signed("gw-im-b", await sessionKey("gw-im-b"), Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId));
      expect(await call("report", report)).toMatchObject({ state: MessageState.MESSAGE_STATE_DELIVERED });
    });

    test("submitting as another gateway is refused", async () => {
      const meta = metaFor("gw-im-b", { sender: "alice", recipient: "bob" });
      const req = signed("gw-im-a", await sessionKey("gw-im-a"), Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      await expectRefused("submit", () => call("submit", req), { code: PERMISSION_DENIED, details: 'gateway "gw-im-a" may not submit as "gw-im-b"' });
    });

    test("a report by a gateway that is not the destination is refused", async () => {
      const { meta, release } = await released();
      const req = signed("gw-sms-1", await sessionKey("gw-sms-1"), Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId));
      await expectRefused("report", () => call("report", req), { code: PERMISSION_DENIED, details: `gateway "gw-sms-1" is not the destination of message "${meta.messageId}"` });
    });

    test("confirming another gateway's release is refused", async () => {
      const { meta, release } = await released();
      const body = { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 };
      const req = signed("gw-im-b", await sessionKey("gw-im-b"), Label.callConfirm, confirmFields, body);
      await expectRefused("confirmRelease", () => call("confirmRelease", req), { code: PERMISSION_DENIED, details: `gateway "gw-im-b" did not submit message "${meta.messageId}"` });
    });

    test("register, heartbeat and presence for another node are refused", async () => {
      const register = { nodeId: "gw-im-b", kind: NodeKind.NODE_KIND_GATEWAY, medium: Medium.MEDIUM_IM, endpoint: "127.0.0.1:9", capacity: 1, version: "rogue" };
      await expectRefused("register", () => call("register", signed("gw-im-a", nextKey(), Label.callRegister, registerFields, register)), {
        code: PERMISSION_DENIED,
        details: 'node "gw-im-a" may not register as "gw-im-b"',
      });
      const heartbeat = { nodeId: "gw-im-b", inFlight: 0, healthy: false, detail: "rogue" };
      await expectRefused("heartbeat", () => call("heartbeat", signed("gw-im-a", nextKey(), Label.callHeartbeat, heartbeatFields, heartbeat)), {
        code: PERMISSION_DENIED,
        details: 'node "gw-im-a" may not send heartbeats for "gw-im-b"',
      });
      const presence = { gatewayId: "gw-im-b", clientId: "bob", online: false };
      await expectRefused("reportPresence", () => call("reportPresence", signed("gw-im-a", nextKey(), Label.callPresence, presenceFields, presence)), {
        code: PERMISSION_DENIED,
        details: 'gateway "gw-im-a" may not report presence for "gw-im-b"',
      });
      // Only im gateways report presence, even for themselves.
      const smsKey = await sessionKey("gw-sms-1");
      await expectRefused("reportPresence", () => call("reportPresence", signed("gw-sms-1", smsKey, Label.callPresence, presenceFields, { gatewayId: "gw-sms-1", clientId: "bob", online: true })), {
        code: PERMISSION_DENIED,
        details: "only registered im gateways report presence",
      });
      // gw-im-b's registration is untouched.
      const info = await callUnary(running.admin.getGatewayHealth.bind(running.admin), { nodeId: "gw-im-b" }, TIMEOUT_MS, running.adminMetadata);
      expect(info.gateway).toMatchObject({ endpoint: gwB.endpoint, healthy: true });
    });

    test("a session key issued to one node is refused for another", async () => {
      const keyOfA = await sessionKey("gw-im-a");
      const body = { nodeId: "gw-im-b", inFlight: 0, healthy: true, detail: "" };
      await expectRefused("heartbeat", () => call("heartbeat", signed("gw-im-b", keyOfA, Label.callHeartbeat, heartbeatFields, body)), {
        code: UNAUTHENTICATED,
        details: 'session key was issued to "gw-im-a", not "gw-im-b"',
      });
    });

    test("an im gateway submitting a message of another medium is refused", async () => {
      const meta = metaFor("gw-im-a", { sourceMedium: Medium.MEDIUM_SMS, sender: "", senderAddress: "sms:+441234567890", recipient: "bob" });
      const req = signed("gw-im-a", await sessionKey("gw-im-a"), Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      await expectRefused("submit", () => call("submit", req), { code: PERMISSION_DENIED, details: 'gateway "gw-im-a" serves im, not sms' });
    });
  });

  describe("malformed input: a clean refusal naming the field, and the broker keeps serving", () => {
    const badMeta: Array<[string, Partial<MetaInformation>, string]> = [
      ["an empty message id", { messageId: "" }, "meta.message_id: must be 8 to 64 of [A-Za-z0-9_-]"],
      ["a garbage recipient", { recipient: "sms:123" }, 'meta.recipient: "sms:123": a phone number in E.164 form is expected, e.g. +491701234567'],
      ["an unknown scheme", { recipient: "xmpp:bob@example.org" }, 'meta.recipient: unknown address scheme "xmpp" (use im:, sms:, mailto:, voice: or fax:)'],
      ["an unknown medium value", { sourceMedium: 99 as Medium }, "meta.source_medium: unknown medium"],
      ["a routing block in a submission", { targetMedium: Medium.MEDIUM_SMS }, "meta.target_medium: the routing block is set by the broker and must be empty in a submission"],
      ["a destination in a submission", { destinationGatewayId: "gw-im-b" }, "meta.target_medium: the routing block is set by the broker and must be empty in a submission"],
      ["an attempt in a submission", { attempt: 1 }, "meta.target_medium: the routing block is set by the broker and must be empty in a submission"],
      ["a digest of the wrong length", { contentDigest: Buffer.alloc(31) }, "meta.content_digest: must be a 32-byte SHA-256"],
      ["a subject that is too long", { subject: "x".repeat(300) }, "meta.subject: must be at most 256 characters"],
      ["an expiry in the past", { expiresAtUnixMs: Date.now() - 1 }, "meta.expires_at_unix_ms: is in the past"],
      ["no creation time", { createdAtUnixMs: 0 }, "meta.created_at_unix_ms: must be a current Unix time in milliseconds"],
      ["an im message without a sender", { sender: "" }, "meta.sender: an im message needs a sending profile"],
    ];

    test.each(badMeta)("Submit with %s", async (_what, change, details) => {
      const meta = { ...bobMeta(), ...change };
      const req = signed("gw-im-a", await sessionKey("gw-im-a"), Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      await expectRefused("submit", () => call("submit", req), { code: INVALID_ARGUMENT, details });
    });

    test("every RPC without auth is UNAUTHENTICATED; Submit without meta is INVALID_ARGUMENT", async () => {
      const meta = bobMeta();
      await expectRefused("submit", () => call("submit", { meta }), { code: UNAUTHENTICATED, details: "call authentication is required" });
      await expectRefused("submit", () => call("submit", {}), { code: INVALID_ARGUMENT, details: "meta: is required" });
      const unauthenticated: Array<[UnaryRpc, object]> = [
        ["confirmRelease", { messageId: meta.messageId, releaseId: Buffer.alloc(32), attempt: 1 }],
        ["report", reportBody(meta.messageId, Buffer.alloc(32))],
        ["register", { nodeId: "gw-im-a", kind: NodeKind.NODE_KIND_GATEWAY, medium: Medium.MEDIUM_IM, endpoint: "127.0.0.1:1", capacity: 1, version: "" }],
        ["heartbeat", { nodeId: "gw-im-a", inFlight: 0, healthy: true, detail: "" }],
        ["reportPresence", { gatewayId: "gw-im-a", clientId: "bob", online: true }],
        ["resolveClientToken", { tokenSha256: Buffer.alloc(32) }],
      ];
      for (const [rpc, body] of unauthenticated) {
        await expectRefused(rpc, () => call(rpc, body), { code: UNAUTHENTICATED, details: "call authentication is required" });
      }
      const short = { nodeId: "gw-im-a", keyId: k1.current.id, sessionKey: Buffer.alloc(16), mac: Buffer.alloc(32) };
      await expectRefused("heartbeat", () => call("heartbeat", { nodeId: "gw-im-a", inFlight: 0, healthy: true, detail: "", auth: short }), {
        code: UNAUTHENTICATED,
        details: "auth.session_key must be 32 bytes",
      });
      await expectRefused("heartbeat", () => call("heartbeat", { nodeId: "", inFlight: 0, healthy: true, detail: "", auth: { ...short, nodeId: "" } }), {
        code: UNAUTHENTICATED,
        details: "auth.node_id must not be empty",
      });
    });

    test("SetUp: missing login, empty node id, short nonce, key counts out of range", async () => {
      const good = createLogin(k1, "gw-im-a", BROKER_AUDIENCE, 1, Date.now());
      await expectRefused("setUp", () => call("setUp", {}), { code: INVALID_ARGUMENT, details: "login: login key is required" });
      await expectRefused("setUp", () => call("setUp", { login: { ...good, key: undefined } }), { code: INVALID_ARGUMENT, details: "login: login key is required" });
      await expectRefused("setUp", () => call("setUp", { login: { ...good, key: { ...good.key!, nodeId: "" } } }), { code: INVALID_ARGUMENT, details: "login.key.node_id: must not be empty" });
      await expectRefused("setUp", () => call("setUp", { login: { ...good, key: { ...good.key!, nonce: Buffer.alloc(4) } } }), { code: INVALID_ARGUMENT, details: "login.key.nonce: must be 16 to 64 bytes" });
      await expectRefused("setUp", () => call("setUp", { login: { ...good, keyCount: 0 } }), { code: INVALID_ARGUMENT, details: "login.key_count: must be 1 to 256" });
      await expectRefused("setUp", () => call("setUp", { login: { ...good, keyCount: 100_000 } }), { code: INVALID_ARGUMENT, details: "login.key_count: must be 1 to 256" });
    });

    test("ConfirmRelease, Report, Register, ReportPresence, ResolveClientToken: bad fields", async () => {
      const keys = await sessionKeys("gw-im-a", 12);
      const keysB = await sessionKeys("gw-im-b", 4);
      const k = () => keys.pop()!;
      const kb = () => keysB.pop()!;
      const confirm = { messageId: "", releaseId: Buffer.alloc(32), attempt: 1 };
      await expectRefused("confirmRelease", () => call("confirmRelease", signed("gw-im-a", k(), Label.callConfirm, confirmFields, confirm)), { code: INVALID_ARGUMENT, details: "message_id: must not be empty" });
      const report = reportBody("", Buffer.alloc(32));
      await expectRefused("report", () => call("report", signed("gw-im-b", kb(), Label.callReport, reportFields, report)), { code: INVALID_ARGUMENT, details: "message_id: must not be empty" });
      for (const outcome of [ReportOutcome.REPORT_OUTCOME_UNSPECIFIED, 99 as ReportOutcome]) {
        const body = reportBody("msg-00000001", Buffer.alloc(32), { outcome });
        await expectRefused("report", () => call("report", signed("gw-im-b", kb(), Label.callReport, reportFields, body)), { code: INVALID_ARGUMENT, details: "outcome: must be DELIVERED, READ or NOT_DELIVERED" });
      }
      const register = (r: Omit<RegisterRequest, "auth">) => call("register", signed("gw-im-a", k(), Label.callRegister, registerFields, r));
      const base = { nodeId: "gw-im-a", kind: NodeKind.NODE_KIND_GATEWAY, medium: Medium.MEDIUM_IM, endpoint: gwA.endpoint, capacity: 100, version: "test" };
      await expectRefused("register", () => register({ ...base, endpoint: "not an endpoint" }), { code: INVALID_ARGUMENT, details: 'endpoint: "not an endpoint" is not host:port' });
      await expectRefused("register", () => register({ ...base, endpoint: "" }), { code: INVALID_ARGUMENT, details: 'endpoint: "" is not host:port' });
      await expectRefused("register", () => register({ ...base, kind: NodeKind.NODE_KIND_UNSPECIFIED }), { code: INVALID_ARGUMENT, details: "kind: must be GATEWAY or PROCESSOR" });
      await expectRefused("register", () => register({ ...base, medium: 99 as Medium }), { code: INVALID_ARGUMENT, details: "medium: a gateway must name its medium" });
      const presence = { gatewayId: "gw-im-a", clientId: "", online: true };
      await expectRefused("reportPresence", () => call("reportPresence", signed("gw-im-a", k(), Label.callPresence, presenceFields, presence)), { code: INVALID_ARGUMENT, details: "client_id: must not be empty" });
      for (const length of [0, 31, 33]) {
        const token = { tokenSha256: Buffer.alloc(length, 1) };
        await expectRefused("resolveClientToken", () => call("resolveClientToken", signed("gw-im-a", k(), Label.callResolveToken, resolveTokenFields, token)), { code: INVALID_ARGUMENT, details: "token_sha256: must be 32 bytes" });
      }
      // gw-im-a's registration survived the refused ones.
      const info = await callUnary(running.admin.getGatewayHealth.bind(running.admin), { nodeId: "gw-im-a" }, TIMEOUT_MS, running.adminMetadata);
      expect(info.gateway).toMatchObject({ endpoint: gwA.endpoint, healthy: true });
    });

    test("bytes that are not protobuf get INVALID_ARGUMENT, with the reason, on every unary RPC", async () => {
      const generic = new grpc.Client(running.endpoint, grpc.credentials.createInsecure());
      try {
        for (const name of Object.values(RPC_NAMES)) {
          const err = await new Promise<grpc.ServiceError | null>((resolve) => {
            generic.makeUnaryRequest(
              `/uims.broker.v1.BrokerService/${name}`,
              (b: Buffer) => b,
              (b: Buffer) => b,
              Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07]),
              { deadline: Date.now() + TIMEOUT_MS },
              (e) => resolve(e),
            );
          });
          expect({ name, code: err?.code }).toEqual({ name, code: INVALID_ARGUMENT });
          expect(err?.details).toMatch(new RegExp(`^the request to /uims\\.broker\\.v1\\.BrokerService/${name} is not its protobuf message: .+`));
        }
      } finally {
        generic.close();
      }
    });

    afterAll(async () => {
      // After everything above, the broker still serves a normal message end to end.
      const { meta, release } = await released();
      await gwA.client.confirm({ messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 });
      const res = await gwB.client.report(reportBody(meta.messageId, release.releaseId));
      expect(res.state).toBe(MessageState.MESSAGE_STATE_DELIVERED);
    });
  });

  describe("multiplexed streams: a refused item gets the same status, the stream keeps working", () => {
    interface Reply {
      correlationId: number;
      result?: { $case: "response"; value: unknown } | { $case: "error"; value: { code: number; message: string } };
    }

    function exchange(stream: grpc.ClientDuplexStream<{ correlationId: number; request?: unknown }, Reply>, items: Array<{ correlationId: number; request?: unknown }>): Promise<Map<number, Reply>> {
      const replies = new Map<number, Reply>();
      return new Promise((resolve, reject) => {
        stream.on("data", (reply: Reply) => {
          replies.set(reply.correlationId, reply);
          if (replies.size === items.length) {
            stream.end();
            resolve(replies);
          }
        });
        stream.on("error", reject);
        for (const item of items) stream.write(item);
      });
    }

    const errorOf = (reply: Reply | undefined) => (reply?.result?.$case === "error" ? { code: grpc.status[reply.result.value.code], message: reply.result.value.message } : reply?.result);

    test("SubmitStream: forged MAC, missing request, missing meta and a reused key are refused; the genuine item with the same key succeeds", async () => {
      const [key, used] = await sessionKeys("gw-im-a", 2);
      const meta = bobMeta();
      const genuine = signed("gw-im-a", key!, Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta });
      const reusedMeta = bobMeta();
      const reused = signed("gw-im-a", used!, Label.callSubmit, (r: SubmitRequest) => submitFields(r.meta!), { meta: reusedMeta });
      await call("submit", reused);

      const mark = log.lines().length;
      const replies = await exchange(raw.submitStream() as never, [
        { correlationId: 1, request: flipped(genuine, ["meta", "subject"]) },
        { correlationId: 2 },
        { correlationId: 3, request: { auth: genuine.auth } },
        { correlationId: 4, request: reused },
        { correlationId: 5, request: genuine },
      ]);
      expect(errorOf(replies.get(1))).toEqual({ code: "UNAUTHENTICATED", message: "call MAC does not verify" });
      expect(errorOf(replies.get(2))).toEqual({ code: "INVALID_ARGUMENT", message: "request: is required" });
      expect(errorOf(replies.get(3))).toEqual({ code: "INVALID_ARGUMENT", message: "meta: is required" });
      expect(errorOf(replies.get(4))).toEqual({ code: "UNAUTHENTICATED", message: "session key is unknown, expired or already used" });
      const ok = replies.get(5)?.result;
      expect(ok?.$case).toBe("response");
      expect((ok?.value as { release?: Release }).release?.meta?.messageId).toBe(meta.messageId);
      const refusals = log.lines().slice(mark).filter((l) => l.msg === "call refused" && l.rpc === "Submit").map((l) => l.reason);
      expect(refusals.sort()).toEqual(["call MAC does not verify", "meta: is required", "request: is required", "session key is unknown, expired or already used"].sort());
    });

    test("ReportStream and ConfirmReleaseStream: a refused item, then the genuine one on the same stream", async () => {
      const { meta, release } = await released();
      const confirmBody = { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 };
      const confirms = await exchange(raw.confirmReleaseStream() as never, [
        { correlationId: 1, request: signed("gw-im-b", await sessionKey("gw-im-b"), Label.callConfirm, confirmFields, confirmBody) },
        { correlationId: 2, request: signed("gw-im-a", await sessionKey("gw-im-a"), Label.callConfirm, confirmFields, { ...confirmBody, releaseId: randomBytes(32) }) },
        { correlationId: 3, request: signed("gw-im-a", await sessionKey("gw-im-a"), Label.callConfirm, confirmFields, confirmBody) },
      ]);
      expect(errorOf(confirms.get(1))).toEqual({ code: "PERMISSION_DENIED", message: `gateway "gw-im-b" did not submit message "${meta.messageId}"` });
      expect(errorOf(confirms.get(2))).toEqual({ code: "PERMISSION_DENIED", message: "release id does not match the broker's" });
      expect(confirms.get(3)?.result).toEqual({ $case: "response", value: { state: MessageState.MESSAGE_STATE_ROUTED } });

      const reports = await exchange(raw.reportStream() as never, [
        { correlationId: 7, request: signed("gw-sms-1", await sessionKey("gw-sms-1"), Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId)) },
        { correlationId: 8, request: signed("gw-im-b", await sessionKey("gw-im-b"), Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId, { attempt: 2 })) },
        { correlationId: 9, request: signed("gw-im-b", await sessionKey("gw-im-b"), Label.callReport, reportFields, reportBody(meta.messageId, release.releaseId)) },
      ]);
      expect(errorOf(reports.get(7))).toEqual({ code: "PERMISSION_DENIED", message: `gateway "gw-sms-1" is not the destination of message "${meta.messageId}"` });
      expect(errorOf(reports.get(8))).toEqual({ code: "FAILED_PRECONDITION", message: "attempt 2 is not current (the message is on attempt 1)" });
      expect(reports.get(9)?.result).toEqual({ $case: "response", value: { state: MessageState.MESSAGE_STATE_DELIVERED, rerouted: false } });
    });

    test("BrokerClient over its streams: a refusal rejects with the unary code and details, the next call works", async () => {
      const { meta, release } = await released();
      await expect(gwB.client.report(reportBody(meta.messageId, randomBytes(32)))).rejects.toMatchObject({
        code: PERMISSION_DENIED,
        details: "release id does not match the broker's",
      });
      await expect(gwA.client.submit({ ...bobMeta(), recipient: "sms:123" })).rejects.toMatchObject({ code: INVALID_ARGUMENT, details: expect.stringMatching(/^meta\.recipient: /) });
      await expect(gwA.client.confirm({ messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 })).resolves.toEqual({ state: MessageState.MESSAGE_STATE_ROUTED });
      await expect(gwB.client.report(reportBody(meta.messageId, release.releaseId))).resolves.toEqual({ state: MessageState.MESSAGE_STATE_DELIVERED, rerouted: false });
    });
  });
});
