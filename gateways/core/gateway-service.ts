import type { Logger } from "pino";
import type { GatewayServiceServer, NotifyRequest, TransmitRequest, TransmitResponse } from "../../gen/uims/gateway/v1/gateway";
import { notifyFields, transmitFields } from "../../common/crypto/call-fields";
import { payloadDigest } from "../../common/crypto/fields";
import type { Keyring } from "../../common/crypto/keys";
import { Label } from "../../common/crypto/labels";
import type { TscsAuthority } from "../../common/crypto/tscs";
import { status as grpcStatus } from "@grpc/grpc-js";
import { InvalidArgumentError, PermissionDeniedError, toCallError } from "../../common/errors";
import { refusals } from "../../common/metrics";
import { transmitAckMac } from "../../common/mesh/ack";
import { BROKER_AUDIENCE } from "../../common/mesh/broker-client";
import { InFlight, multiplexed, unary } from "../../common/mesh/multiplex";
import type { Destination } from "./destination";
import type { Originator } from "./origin";

/** The gateway's mesh-internal gRPC service (phase 3 in, the broker's notices in). */
export function createGatewayService(deps: {
  nodeId: string;
  k1: Keyring;
  tscs: TscsAuthority;
  origin: Originator;
  destination: Destination;
  logger: Logger;
  inFlight: InFlight;
  /** Node ids allowed to send notices: the broker replicas. */
  isBroker: (nodeId: string) => boolean;
}): GatewayServiceServer {
  const { tscs, inFlight } = deps;
  const refused = (rpc: string) => (err: unknown) => {
    refusals.inc({ rpc, code: grpcStatus[toCallError(err).code] ?? "UNKNOWN" });
    deps.logger.warn({ rpc, reason: (err as Error).message }, "call refused");
  };

  const transmit = async (req: TransmitRequest): Promise<TransmitResponse> => {
    const message = req.message;
    if (!message?.payload) throw new InvalidArgumentError("message.payload", "is required");
    const digest = payloadDigest(message.payload);
    const caller = await tscs.authenticate(req.auth, Label.callTransmit, transmitFields(message, digest));
    const fresh = await deps.destination.receive(caller, message, digest);
    const messageId = message.release?.meta?.messageId ?? "";
    const releaseId = message.release?.releaseId ?? Buffer.alloc(0);
    return { messageId, nodeId: deps.nodeId, ackMac: transmitAckMac(deps.k1, { messageId, releaseId, nodeId: deps.nodeId, payloadDigest: digest }), duplicate: !fresh };
  };

  const notify = async (req: NotifyRequest) => {
    const caller = await tscs.authenticate(req.auth, Label.callNotify, notifyFields(req));
    if (!deps.isBroker(caller)) throw new PermissionDeniedError(`only the broker sends notices, not "${caller}"`);
    await deps.origin.notify(req, Buffer.from(req.auth!.sessionKey));
    return {};
  };

  return {
    setUp: unary(async (req) => ({ grant: await tscs.setUp(req.login) }), inFlight, refused("SetUp")),
    transmit: unary(transmit, inFlight, refused("Transmit")),
    transmitStream: multiplexed(transmit, inFlight, refused("Transmit")),
    notify: unary(notify, inFlight, refused("Notify")),
    notifyStream: multiplexed(notify, inFlight, refused("Notify")),
  };
}

/** Broker replicas identify as "broker" or "broker-<n>". */
export function isBrokerNode(nodeId: string): boolean {
  return nodeId === BROKER_AUDIENCE || nodeId.startsWith(`${BROKER_AUDIENCE}-`);
}
