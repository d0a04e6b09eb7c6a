import { MetaInformation, type ConversionPlan, type Payload } from "../../gen/uims/common/v1/message";
import { Medium } from "../../gen/uims/common/v1/types";

/** Sample messages for the conversion tests. */

export const ACCEPTED_AT = Date.UTC(2024, 4, 17, 9, 30, 0);

export function sampleMeta(fields: Partial<MetaInformation> = {}): MetaInformation {
  return MetaInformation.fromPartial({
    messageId: "0b9c5a86-4f0e-4d55-9d1f-2f7f3b6c1a10",
    sender: "alice",
    senderAddress: "im:alice",
    recipient: "bob",
    sourceMedium: Medium.MEDIUM_IM,
    targetMedium: Medium.MEDIUM_EMAIL,
    targetAddress: "bob@example.org",
    createdAtUnixMs: ACCEPTED_AT,
    ...fields,
  });
}

export function samplePlan(sourceContentType: string, targetContentType: string, maxSegments = 0): ConversionPlan {
  return { sourceContentType, targetMedium: Medium.MEDIUM_UNSPECIFIED, targetContentType, maxSegments };
}

export function textPayload(text: string | Buffer, fields: Partial<Payload> = {}): Payload {
  return { contentType: "text/plain; charset=utf-8", body: Buffer.isBuffer(text) ? text : Buffer.from(text), attachments: [], subject: "", ...fields };
}

export function mailPayload(raw: string | Buffer): Payload {
  return { contentType: "message/rfc822", body: Buffer.isBuffer(raw) ? raw : Buffer.from(raw.replace(/\r?\n/g, "\r\n"), "latin1"), attachments: [], subject: "" };
}
