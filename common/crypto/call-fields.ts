import type {
  ConfirmReleaseRequest,
  HeartbeatRequest,
  RegisterRequest,
  ReportPresenceRequest,
  ReportRequest,
  ResolveClientTokenRequest,
} from "../../gen/uims/broker/v1/broker";
import type { NotifyRequest } from "../../gen/uims/gateway/v1/gateway";
import type { InstantMessage, MetaInformation } from "../../gen/uims/common/v1/message";
import type { CanonicalField } from "./canonical";
import { metaFields, statusEventFields } from "./fields";

/**
 * The fields each call's MAC covers, shared by caller and callee so that both sides build the
 * same list. Every field of the request but `auth` is covered.
 */

export const submitFields = (meta: MetaInformation): CanonicalField[] => metaFields(meta);

export const confirmFields = (r: Omit<ConfirmReleaseRequest, "auth">): CanonicalField[] => [r.messageId, r.releaseId, r.attempt];

export const reportFields = (r: Omit<ReportRequest, "auth">): CanonicalField[] => [
  r.messageId,
  r.releaseId,
  r.attempt,
  r.outcome,
  r.failureKind,
  r.reason,
  r.segments,
  r.deliveredBytes,
  r.atUnixMs,
  r.trace?.traceparent ?? "",
  r.trace?.tracestate ?? "",
];

export const registerFields = (r: Omit<RegisterRequest, "auth">): CanonicalField[] => [r.nodeId, r.kind, r.medium, r.endpoint, r.capacity, r.version];

export const heartbeatFields = (r: Omit<HeartbeatRequest, "auth">): CanonicalField[] => [r.nodeId, r.inFlight, r.healthy, r.detail];

export const presenceFields = (r: Omit<ReportPresenceRequest, "auth">): CanonicalField[] => [r.gatewayId, r.clientId, r.online];

export const resolveTokenFields = (r: Omit<ResolveClientTokenRequest, "auth">): CanonicalField[] => [r.tokenSha256];

/**
 * A transmission's MAC covers the release id (which the broker's signature binds to the whole
 * IMI'), the payload digest, and the conversion result. `digest` is payloadDigest(payload),
 * computed once by the caller.
 */
export const transmitFields = (m: InstantMessage, digest: Buffer): CanonicalField[] => [
  m.release?.releaseId ?? Buffer.alloc(0),
  m.release?.meta?.messageId ?? "",
  m.release?.meta?.attempt ?? 0,
  digest,
  m.convertedBy,
  m.segments,
];

export const notifyFields = (r: Omit<NotifyRequest, "auth">): CanonicalField[] => [
  r.messageId,
  ...statusEventFields(r.event),
  r.reroute?.releaseId ?? Buffer.alloc(0),
  r.segments,
];
