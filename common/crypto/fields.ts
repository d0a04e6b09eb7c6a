import type { MetaInformation, Payload } from "../../gen/uims/common/v1/message";
import type { StatusEvent } from "../../gen/uims/common/v1/types";
import { sha256Canonical, type CanonicalField } from "./canonical";
import { Label } from "./labels";

/**
 * Every field of the meta information, in a fixed order. A change to any of them (a flipped
 * bit anywhere) changes the release's inner ID, outer digest and signature.
 */
export function metaFields(meta: MetaInformation): CanonicalField[] {
  const conversion = meta.conversion;
  return [
    meta.messageId,
    meta.idempotencyKey,
    meta.sender,
    meta.senderAddress,
    meta.recipient,
    meta.sourceMedium,
    meta.originGatewayId,
    meta.contentType,
    meta.contentSize,
    meta.contentDigest,
    meta.attachmentCount,
    meta.priority,
    meta.subject,
    meta.trace?.traceparent ?? "",
    meta.trace?.tracestate ?? "",
    meta.createdAtUnixMs,
    meta.expiresAtUnixMs,
    meta.targetMedium,
    meta.targetAddress,
    meta.destinationGatewayId,
    meta.destinationEndpoint,
    conversion !== undefined,
    conversion?.sourceContentType ?? "",
    conversion?.targetMedium ?? 0,
    conversion?.targetContentType ?? "",
    conversion?.maxSegments ?? 0,
    meta.processorId,
    meta.processorEndpoint,
    meta.attempt,
    meta.recipientId,
    meta.releasedAtUnixMs,
  ];
}

/** SHA-256 over the whole payload: body, subject, content type and every attachment. */
export function payloadDigest(payload: Payload): Buffer {
  const fields: CanonicalField[] = [payload.contentType, payload.subject, payload.body, payload.attachments.length];
  for (const a of payload.attachments) fields.push(a.filename, a.contentType, a.data);
  return sha256Canonical(Label.payload, fields);
}

/** Size of a payload as accounted: body plus attachment bytes. */
export function payloadSize(payload: Payload): number {
  return payload.body.length + payload.attachments.reduce((n, a) => n + a.data.length, 0);
}

export function statusEventFields(event: StatusEvent | undefined): CanonicalField[] {
  if (!event) return [false];
  return [true, event.state, event.medium, event.atUnixMs, event.failureKind, event.reason, event.attempt, event.gatewayId];
}
