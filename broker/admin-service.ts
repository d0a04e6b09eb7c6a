import * as grpc from "@grpc/grpc-js";
import type pino from "pino";
import {
  type AdminServiceServer,
  type ExplainRouteRequest,
  type ExplainRouteResponse,
  type GetTransactionResponse,
} from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { CLIENT_ID_PATTERN, isKnownMedium, parseRecipient } from "../common/addresses";
import { InvalidArgumentError, NotFoundError, toServiceError } from "../common/errors";
import type { Accounting } from "./accounting";
import { requireAdmin } from "./admin-auth";
import type { ProfileDirectory } from "./profiles";
import type { GatewayRegistry } from "./registry";

const MAX_MESSAGE_ID = 256;

export interface AdminServiceDeps {
  profiles: ProfileDirectory;
  registry: GatewayRegistry;
  accounting: Accounting;
  /** SHA-256 of the admin bearer token. */
  adminTokenSha256: Buffer;
  explainRoute: (req: ExplainRouteRequest) => Promise<ExplainRouteResponse>;
  getTransaction: (messageId: string) => Promise<GetTransactionResponse>;
  logger: pino.Logger;
  clock?: () => number;
}

function clientId(field: string, value: string): string {
  if (!value) throw new InvalidArgumentError(field, "must not be empty");
  if (!CLIENT_ID_PATTERN.test(value)) throw new InvalidArgumentError(field, "must be 1 to 64 of [a-z0-9._-], starting with a letter or digit");
  return value;
}

function required<T>(field: string, value: T | undefined): T {
  if (value === undefined) throw new InvalidArgumentError(field, "is required");
  return value;
}

function optionalMedium(field: string, medium: Medium): Medium | undefined {
  if (medium === Medium.MEDIUM_UNSPECIFIED) return undefined;
  if (!isKnownMedium(medium)) throw new InvalidArgumentError(field, `unknown medium ${medium}`);
  return medium;
}

/** The operators' API: every call is authenticated with the admin token, refusals are logged. */
export function createAdminService(deps: AdminServiceDeps): AdminServiceServer {
  const log = deps.logger.child({ component: "admin" });
  const clock = deps.clock ?? Date.now;

  function unary<Req, Res>(rpc: string, handle: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const run = async (): Promise<{ ok: true; res: Res } | { ok: false; err: unknown }> => {
        try {
          requireAdmin(call.metadata, deps.adminTokenSha256);
          return { ok: true, res: await handle(call.request) };
        } catch (err) {
          return { ok: false, err };
        }
      };
      // The callback is called exactly once, outside the try, so that a failure inside it
      // cannot lead to a second answer.
      void run().then((outcome) => {
        if (outcome.ok) {
          callback(null, outcome.res);
          return;
        }
        const status = toServiceError(outcome.err, log);
        log.warn({ rpc, code: grpc.status[status.code], reason: status.details, peer: call.getPeer() }, "admin call refused");
        callback(status);
      }).catch((err: unknown) => log.error({ rpc, err }, "admin answer failed"));
    };
  }

  return {
    createProfile: unary("CreateProfile", async (req) => {
      const created = await deps.profiles.create(required("profile", req.profile));
      log.info({ rpc: "CreateProfile", clientId: created.profile.clientId }, "profile created");
      return { profile: created.profile, clientToken: created.clientToken };
    }),

    getProfile: unary("GetProfile", async (req) => ({ profile: await deps.profiles.require(clientId("client_id", req.clientId)) })),

    updateProfile: unary("UpdateProfile", async (req) => {
      const profile = required("profile", req.profile);
      clientId("profile.client_id", profile.clientId);
      const updated = await deps.profiles.update(profile, req.updateMask ?? []);
      log.info({ rpc: "UpdateProfile", clientId: updated.clientId, fields: req.updateMask ?? [] }, "profile updated");
      return { profile: updated };
    }),

    deleteProfile: unary("DeleteProfile", async (req) => {
      await deps.profiles.delete(clientId("client_id", req.clientId));
      log.info({ rpc: "DeleteProfile", clientId: req.clientId }, "profile deleted");
      return {};
    }),

    listProfiles: unary("ListProfiles", async (req) => deps.profiles.list(req.pageSize, req.pageToken)),

    rotateClientToken: unary("RotateClientToken", async (req) => {
      const clientToken = await deps.profiles.rotateToken(clientId("client_id", req.clientId));
      log.info({ rpc: "RotateClientToken", clientId: req.clientId }, "client token rotated");
      return { clientToken };
    }),

    listGateways: unary("ListGateways", async (req) => {
      const records = await deps.registry.list(optionalMedium("medium", req.medium));
      const now = clock();
      return { gateways: records.map((r) => deps.registry.toGatewayInfo(r, now)) };
    }),

    getGatewayHealth: unary("GetGatewayHealth", async (req) => {
      if (!req.nodeId) throw new InvalidArgumentError("node_id", "must not be empty");
      const record = await deps.registry.get(req.nodeId);
      if (!record) throw new NotFoundError(`node "${req.nodeId}" not found`);
      return { gateway: deps.registry.toGatewayInfo(record, clock()) };
    }),

    getUsage: unary("GetUsage", async (req) => ({ rows: await deps.accounting.usage(req) })),

    explainRoute: unary("ExplainRoute", async (req) => {
      // No sender: the route for a message from outside the mesh (e.g. a mail from the internet).
      if (req.sender) clientId("sender", req.sender);
      const recipient = parseRecipient(req.recipient);
      if ("error" in recipient) throw new InvalidArgumentError("recipient", recipient.error);
      optionalMedium("source_medium", req.sourceMedium);
      return deps.explainRoute(req);
    }),

    getTransaction: unary("GetTransaction", async (req) => {
      if (!req.messageId) throw new InvalidArgumentError("message_id", "must not be empty");
      if (req.messageId.length > MAX_MESSAGE_ID) throw new InvalidArgumentError("message_id", `must be at most ${MAX_MESSAGE_ID} characters`);
      return deps.getTransaction(req.messageId);
    }),
  };
}
