import * as grpc from "@grpc/grpc-js";
import {
  AdminServiceClient,
  AdminServiceService,
  CreateProfileRequest,
  DeleteProfileRequest,
  ExplainRouteRequest,
  ExplainRouteResponse,
  GetGatewayHealthRequest,
  GetProfileRequest,
  GetTransactionRequest,
  GetTransactionResponse,
  GetUsageRequest,
  ListGatewaysRequest,
  ListProfilesRequest,
  Profile,
  RotateClientTokenRequest,
  UpdateProfileRequest,
} from "../gen/uims/admin/v1/admin";
import { Medium, MessageState } from "../gen/uims/common/v1/types";
import { createLogger } from "../common/logger";
import type { Store } from "../common/store";
import { Accounting } from "./accounting";
import { createAdminService } from "./admin-service";
import { hashToken, ProfileDirectory } from "./profiles";
import { GatewayRegistry } from "./registry";
import { testStore } from "../test/support/store";

const ADMIN_TOKEN = "admin-secret-token-for-tests";
const NOW = Date.UTC(2024, 2, 10, 12);

type Def<Req, Res> = {
  path: string;
  requestSerialize: (req: Req) => Buffer;
  responseDeserialize: (buf: Buffer) => Res;
};


function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

const alice = Profile.fromPartial({
  clientId: "alice",
  displayName: "Alice",
  addresses: [
    { medium: Medium.MEDIUM_IM, address: "alice" },
    { medium: Medium.MEDIUM_SMS, address: "+491701234567" },
  ],
  preferredMedia: [Medium.MEDIUM_IM, Medium.MEDIUM_SMS],
});

describe.each(["memory", "redis"] as const)("AdminService over gRPC (%s store)", (kind) => {
  let store: Store;
  let server: grpc.Server;
  let client: AdminServiceClient;
  let logLines: string[];
  let registry: GatewayRegistry;
  let accounting: Accounting;
  let explainRoute: jest.Mock<Promise<ExplainRouteResponse>, [ExplainRouteRequest]>;
  let getTransaction: jest.Mock<Promise<GetTransactionResponse>, [string]>;

  function call<Req, Res>(def: Def<Req, Res>, request: Req, metadata: grpc.Metadata = bearer(ADMIN_TOKEN)): Promise<Res> {
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request, metadata, { deadline: Date.now() + 5000 }, (err, res) =>
        err ? reject(err) : resolve(res as Res),
      );
    });
  }

  async function status(promise: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
    try {
      await promise;
    } catch (err) {
      const { code, details } = err as grpc.ServiceError;
      return { code, details };
    }
    throw new Error("expected the call to fail");
  }

  beforeEach(async () => {
    store = testStore(kind);
    logLines = [];
    const logger = createLogger({ service: "broker", nodeId: "broker-test", level: "info", destination: { write: (line: string) => void logLines.push(line) } });
    registry = new GatewayRegistry(store, { heartbeatIntervalMs: 1000, clock: () => NOW });
    accounting = new Accounting(store, () => NOW);
    explainRoute = jest.fn(async (req: ExplainRouteRequest) =>
      ExplainRouteResponse.fromPartial({ refusal: `no route to ${req.recipient}`, candidates: [] }),
    );
    getTransaction = jest.fn(async (messageId: string) =>
      GetTransactionResponse.fromPartial({ status: { messageId, state: MessageState.MESSAGE_STATE_ROUTED }, sender: "alice" }),
    );
    server = new grpc.Server();
    server.addService(
      AdminServiceService,
      createAdminService({
        profiles: new ProfileDirectory(store, () => NOW),
        registry,
        accounting,
        adminTokenSha256: hashToken(ADMIN_TOKEN),
        explainRoute,
        getTransaction,
        logger,
        clock: () => NOW,
      }),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new AdminServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterEach(async () => {
    client.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await store.close();
  });

  describe("authentication", () => {
    const methods = Object.entries(AdminServiceService);
    // The empty message is a valid encoding of every request type.
    const raw = (x: Buffer) => x;

    function callRaw(path: string, metadata: grpc.Metadata): Promise<unknown> {
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(path, raw, raw, Buffer.alloc(0), metadata, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    }

    it("refuses every RPC without a token as UNAUTHENTICATED, and logs why without the token", async () => {
      expect(methods).toHaveLength(11);
      for (const [, def] of methods) {
        for (const md of [new grpc.Metadata(), bearer("")]) {
          expect(await status(callRaw(def.path, md))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "missing admin token" });
        }
      }
      const wrong = "not-the-admin-token";
      const malformed = new grpc.Metadata();
      malformed.set("authorization", ADMIN_TOKEN); // no scheme
      const basic = new grpc.Metadata();
      basic.set("authorization", `Basic ${ADMIN_TOKEN}`);
      for (const [, def] of methods) {
        for (const md of [bearer(wrong), malformed, basic]) {
          expect(await status(callRaw(def.path, md))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "admin token is not valid" });
        }
      }
      expect(await store.scanKeys("*")).toEqual([]);
      expect(explainRoute).not.toHaveBeenCalled();
      expect(getTransaction).not.toHaveBeenCalled();

      const refusals = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "admin call refused");
      expect(refusals).toHaveLength(11 * 5);
      expect(refusals[0]).toMatchObject({ level: "warn", code: "UNAUTHENTICATED", reason: "missing admin token", rpc: "CreateProfile" });
      for (const line of logLines) {
        expect(line).not.toContain(ADMIN_TOKEN);
        expect(line).not.toContain(wrong);
      }
    });

    it("accepts the scheme in any case and the generated client's typed calls", async () => {
      const md = new grpc.Metadata();
      md.set("authorization", `bearer ${ADMIN_TOKEN}`);
      const res = await new Promise<unknown>((resolve, reject) =>
        client.listProfiles(ListProfilesRequest.fromPartial({}), md, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(res).toEqual({ profiles: [], nextPageToken: "" });
    });
  });

  describe("bad input", () => {
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ["CreateProfile without a profile", () => call(AdminServiceService.createProfile, CreateProfileRequest.fromPartial({})), "profile: is required"],
      ["CreateProfile without a client id", () => call(AdminServiceService.createProfile, { profile: { ...alice, clientId: "" } }), "profile.client_id: "],
      ["CreateProfile with a bad id", () => call(AdminServiceService.createProfile, { profile: { ...alice, clientId: "Alice!" } }), "profile.client_id: "],
      [
        "CreateProfile with a bad address",
        () => call(AdminServiceService.createProfile, { profile: { ...alice, addresses: [alice.addresses[0]!, { medium: Medium.MEDIUM_SMS, address: "12" }] } }),
        "profile.addresses[1].address: ",
      ],
      [
        "CreateProfile with an unknown medium",
        () => call(AdminServiceService.createProfile, { profile: { ...alice, sendMedia: [23 as Medium] } }),
        "profile.send_media[0]: ",
      ],
      [
        "CreateProfile with a bad time zone",
        () => call(AdminServiceService.createProfile, { profile: { ...alice, quietHours: { startMinute: 0, endMinute: 60, timeZone: "Nowhere/City", media: [] } } }),
        "profile.quiet_hours.time_zone: ",
      ],
      ["GetProfile without an id", () => call(AdminServiceService.getProfile, GetProfileRequest.fromPartial({})), "client_id: must not be empty"],
      ["GetProfile with a bad id", () => call(AdminServiceService.getProfile, { clientId: "A B" }), "client_id: "],
      ["UpdateProfile without a profile", () => call(AdminServiceService.updateProfile, UpdateProfileRequest.fromPartial({ updateMask: [] })), "profile: is required"],
      [
        "UpdateProfile without a client id",
        () => call(AdminServiceService.updateProfile, { profile: Profile.fromPartial({ displayName: "x" }), updateMask: ["display_name"] }),
        "profile.client_id: must not be empty",
      ],
      [
        "UpdateProfile with an unknown mask path",
        () => call(AdminServiceService.updateProfile, { profile: Profile.fromPartial({ clientId: "alice" }), updateMask: ["colour"] }),
        "update_mask: ",
      ],
      ["DeleteProfile without an id", () => call(AdminServiceService.deleteProfile, DeleteProfileRequest.fromPartial({})), "client_id: must not be empty"],
      ["ListProfiles with page size 1001", () => call(AdminServiceService.listProfiles, { pageSize: 1001, pageToken: "" }), "page_size: "],
      ["ListProfiles with a foreign page token", () => call(AdminServiceService.listProfiles, { pageSize: 0, pageToken: "%%%" }), "page_token: "],
      ["RotateClientToken without an id", () => call(AdminServiceService.rotateClientToken, RotateClientTokenRequest.fromPartial({})), "client_id: must not be empty"],
      ["ListGateways with an unknown medium", () => call(AdminServiceService.listGateways, { medium: 42 as Medium }), "medium: "],
      ["GetGatewayHealth without an id", () => call(AdminServiceService.getGatewayHealth, GetGatewayHealthRequest.fromPartial({})), "node_id: must not be empty"],
      ["GetUsage with a bad from_day", () => call(AdminServiceService.getUsage, GetUsageRequest.fromPartial({ fromDay: "2024-02-30" })), "from_day: "],
      [
        "GetUsage with to_day before from_day",
        () => call(AdminServiceService.getUsage, GetUsageRequest.fromPartial({ fromDay: "2024-03-10", toDay: "2024-03-01" })),
        "to_day: ",
      ],
      ["GetUsage with a range over 366 days", () => call(AdminServiceService.getUsage, GetUsageRequest.fromPartial({ fromDay: "2020-01-01", toDay: "2024-01-01" })), "to_day: "],
      ["GetUsage with an unknown medium", () => call(AdminServiceService.getUsage, GetUsageRequest.fromPartial({ medium: 8 as Medium })), "medium: "],
      ["ExplainRoute with a bad sender", () => call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "A!", recipient: "bob" })), "sender: "],
      ["ExplainRoute without a recipient", () => call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice" })), "recipient: must not be empty"],
      [
        "ExplainRoute with an unknown scheme",
        () => call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice", recipient: "pager:123" })),
        "recipient: ",
      ],
      [
        "ExplainRoute with a malformed number",
        () => call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice", recipient: "sms:0170" })),
        "recipient: ",
      ],
      [
        "ExplainRoute with an unknown source medium",
        () => call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice", recipient: "bob", sourceMedium: 30 as Medium })),
        "source_medium: ",
      ],
      ["GetTransaction without a message id", () => call(AdminServiceService.getTransaction, GetTransactionRequest.fromPartial({})), "message_id: must not be empty"],
      ["GetTransaction with a huge message id", () => call(AdminServiceService.getTransaction, { messageId: "m".repeat(300) }), "message_id: "],
    ];

    it.each(cases)("%s is INVALID_ARGUMENT naming the field, and nothing is written", async (_name, run, details) => {
      const { code, details: got } = await status(run());
      expect(code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(got.startsWith(details)).toBe(true);
      expect(await store.scanKeys("*")).toEqual([]);
      expect(explainRoute).not.toHaveBeenCalled();
      expect(getTransaction).not.toHaveBeenCalled();
      const refusal = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "admin call refused");
      expect(refusal).toMatchObject({ level: "warn", code: "INVALID_ARGUMENT", reason: got });
    });

    it("covers every RPC", () => {
      const covered = new Set(cases.map(([name]) => name.split(" ")[0]));
      expect([...covered].sort()).toEqual(
        Object.values(AdminServiceService)
          .map((d) => d.path.split("/").pop())
          .sort(),
      );
    });

    it("an invalid update of an existing profile leaves it as it was", async () => {
      await call(AdminServiceService.createProfile, { profile: alice });
      const before = await store.get("profile:alice");
      const { code, details } = await status(
        call(AdminServiceService.updateProfile, { profile: Profile.fromPartial({ clientId: "alice", preferredMedia: [Medium.MEDIUM_FAX] }), updateMask: ["preferred_media"] }),
      );
      expect(code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(details).toBe("profile.preferred_media[0]: no fax address in the profile");
      expect(await store.get("profile:alice")).toBe(before);
    });
  });

  describe("not found and already exists", () => {
    it.each<[string, () => Promise<unknown>, string]>([
      ["GetProfile", () => call(AdminServiceService.getProfile, { clientId: "nobody" }), 'profile "nobody" not found'],
      [
        "UpdateProfile",
        () => call(AdminServiceService.updateProfile, { profile: Profile.fromPartial({ clientId: "nobody", displayName: "N" }), updateMask: ["display_name"] }),
        'profile "nobody" not found',
      ],
      ["DeleteProfile", () => call(AdminServiceService.deleteProfile, { clientId: "nobody" }), 'profile "nobody" not found'],
      ["RotateClientToken", () => call(AdminServiceService.rotateClientToken, { clientId: "nobody" }), 'profile "nobody" not found'],
      ["GetGatewayHealth", () => call(AdminServiceService.getGatewayHealth, { nodeId: "gw-none" }), 'node "gw-none" not found'],
    ])("%s of an unknown id is NOT_FOUND and writes nothing", async (_name, run, details) => {
      expect(await status(run())).toEqual({ code: grpc.status.NOT_FOUND, details });
      expect(await store.scanKeys("*")).toEqual([]);
    });

    it("CreateProfile of an existing id is ALREADY_EXISTS and keeps the first", async () => {
      await call(AdminServiceService.createProfile, { profile: alice });
      expect(await status(call(AdminServiceService.createProfile, { profile: { ...alice, displayName: "Impostor" } }))).toEqual({
        code: grpc.status.ALREADY_EXISTS,
        details: 'profile "alice" already exists',
      });
      const { profile } = await call(AdminServiceService.getProfile, { clientId: "alice" });
      expect(profile?.displayName).toBe("Alice");
    });
  });

  describe("happy paths", () => {
    it("creates, reads, updates, lists, rotates and deletes a profile", async () => {
      const created = await call(AdminServiceService.createProfile, { profile: { ...alice, createdAtUnixMs: 1 } });
      expect(created.profile).toEqual({ ...alice, createdAtUnixMs: NOW, updatedAtUnixMs: NOW });
      expect(created.clientToken).toMatch(/^uims_/);

      expect((await call(AdminServiceService.getProfile, { clientId: "alice" })).profile).toEqual(created.profile);

      const updated = await call(AdminServiceService.updateProfile, {
        profile: Profile.fromPartial({ clientId: "alice", displayName: "Alice Liddell", limits: { maxMessagesPerDay: 10 } }),
        updateMask: ["display_name", "limits"],
      });
      expect(updated.profile).toMatchObject({ displayName: "Alice Liddell", limits: { maxMessagesPerDay: 10, maxSmsSegments: 0, maxPayloadBytes: 0 } });
      expect(updated.profile?.addresses).toEqual(alice.addresses);

      await call(AdminServiceService.createProfile, { profile: Profile.fromPartial({ clientId: "bob" }) });
      const page1 = await call(AdminServiceService.listProfiles, { pageSize: 1, pageToken: "" });
      expect(page1.profiles.map((p) => p.clientId)).toEqual(["alice"]);
      const page2 = await call(AdminServiceService.listProfiles, { pageSize: 1, pageToken: page1.nextPageToken });
      expect(page2).toMatchObject({ profiles: [{ clientId: "bob" }], nextPageToken: "" });

      const { clientToken } = await call(AdminServiceService.rotateClientToken, { clientId: "alice" });
      expect(clientToken).toMatch(/^uims_/);
      expect(clientToken).not.toBe(created.clientToken);

      expect(await call(AdminServiceService.deleteProfile, { clientId: "alice" })).toEqual({});
      expect(await status(call(AdminServiceService.getProfile, { clientId: "alice" }))).toMatchObject({ code: grpc.status.NOT_FOUND });

      for (const line of logLines) {
        expect(line).not.toContain(created.clientToken);
        expect(line).not.toContain(clientToken);
      }
      expect(logLines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(
        expect.arrayContaining(["profile created", "profile updated", "client token rotated", "profile deleted"]),
      );
    });

    it("lists gateways with their health and answers one entry", async () => {
      await registry.register({ nodeId: "gw-sms-1", kind: "gateway", medium: Medium.MEDIUM_SMS, endpoint: "sms:50051", capacity: 10, version: "1.0.0" });
      await registry.register({ nodeId: "gw-im-1", kind: "gateway", medium: Medium.MEDIUM_IM, endpoint: "im:50051", capacity: 10, version: "1.0.0" });
      await registry.heartbeat("gw-sms-1", { inFlight: 2, healthy: false, detail: "SMSC down" });

      const all = await call(AdminServiceService.listGateways, { medium: Medium.MEDIUM_UNSPECIFIED });
      expect(all.gateways.map((g) => [g.nodeId, g.healthy, g.detail])).toEqual([
        ["gw-im-1", true, ""],
        ["gw-sms-1", false, "SMSC down"],
      ]);
      const sms = await call(AdminServiceService.listGateways, { medium: Medium.MEDIUM_SMS });
      expect(sms.gateways.map((g) => g.nodeId)).toEqual(["gw-sms-1"]);
      const one = await call(AdminServiceService.getGatewayHealth, { nodeId: "gw-im-1" });
      expect(one.gateway).toEqual({
        nodeId: "gw-im-1",
        kind: "gateway",
        medium: Medium.MEDIUM_IM,
        endpoint: "im:50051",
        healthy: true,
        detail: "",
        inFlight: 0,
        capacity: 10,
        lastHeartbeatUnixMs: NOW,
        version: "1.0.0",
      });
    });

    it("answers usage rows", async () => {
      await accounting.recordDelivery({ sender: "alice", medium: Medium.MEDIUM_SMS, bytes: 140, segments: 1, atUnixMs: NOW });
      const { rows } = await call(AdminServiceService.getUsage, GetUsageRequest.fromPartial({}));
      expect(rows).toEqual([{ sender: "alice", medium: Medium.MEDIUM_SMS, day: "2024-03-10", messages: 1, bytes: 140, segments: 1 }]);
    });

    it("passes ExplainRoute and GetTransaction to the broker's route and transaction logic", async () => {
      const explained = await call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice", recipient: "sms:+491701234567" }));
      expect(explained.refusal).toBe("no route to sms:+491701234567");
      expect(explainRoute).toHaveBeenCalledWith(expect.objectContaining({ sender: "alice", recipient: "sms:+491701234567" }));
      // A sender outside the mesh (a mail from the internet) has no profile: the sender stays empty.
      await call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ recipient: "bob" }));
      expect(explainRoute).toHaveBeenCalledWith(expect.objectContaining({ sender: "", recipient: "bob" }));
      const txn = await call(AdminServiceService.getTransaction, { messageId: "m-1" });
      expect(txn).toMatchObject({ sender: "alice", status: { messageId: "m-1", state: MessageState.MESSAGE_STATE_ROUTED } });
      expect(getTransaction).toHaveBeenCalledWith("m-1");
    });
  });

  describe("failures inside", () => {
    it("an unexpected error is INTERNAL with generic details, its cause logged", async () => {
      explainRoute.mockRejectedValueOnce(new Error("database password is hunter2"));
      const { code, details } = await status(call(AdminServiceService.explainRoute, ExplainRouteRequest.fromPartial({ sender: "alice", recipient: "bob" })));
      expect(code).toBe(grpc.status.INTERNAL);
      expect(details).toBe("internal error");
      const logged = logLines.map((l) => JSON.parse(l) as { level: string; msg: string; err?: { message: string } });
      expect(logged.find((l) => l.level === "error")?.err?.message).toBe("database password is hunter2");
    });

    it("a store outage is UNAVAILABLE", async () => {
      await store.close();
      const { code, details } = await status(call(AdminServiceService.getProfile, { clientId: "alice" }));
      expect(code).toBe(grpc.status.UNAVAILABLE);
      expect(details).toBe("store unavailable");
      store = testStore("memory"); // afterEach closes it
    });
  });
});
