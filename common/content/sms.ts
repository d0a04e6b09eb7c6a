/**
 * The SMS content the processor produces and the sms gateway submits: the text already encoded
 * for the SMSC and split into the short_message of each submit_sm (UDH included), so the gateway
 * only moves bytes and the processor owns every encoding decision.
 * Carried as JSON in a payload of content type SMS_CONTENT_TYPE.
 */
export const SMS_CONTENT_TYPE = "application/vnd.uims.sms";

export interface SmsContent {
  /** GSM 03.38 default alphabet (with the extension table) or UCS-2. */
  encoding: "gsm7" | "ucs2";
  /** SMPP data_coding: 0 (SMSC default alphabet) for gsm7, 8 for UCS-2. */
  dataCoding: number;
  /** True when the segments start with a user data header (concatenation): esm_class UDHI. */
  udhi: boolean;
  /** The text the segments carry, for logs-free display and for SMS to mail/im conversions. */
  text: string;
  /** short_message of each submit_sm, base64, in order. */
  segments: string[];
}

export function encodeSmsContent(content: SmsContent): Buffer {
  return Buffer.from(JSON.stringify(content));
}

/** Parses and checks SMS content; throws a readable error for anything malformed. */
export function decodeSmsContent(body: Uint8Array): SmsContent {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new Error("SMS content is not JSON");
  }
  const c = value as Partial<SmsContent>;
  if (c.encoding !== "gsm7" && c.encoding !== "ucs2") throw new Error("SMS content: encoding must be gsm7 or ucs2");
  if (typeof c.dataCoding !== "number" || typeof c.udhi !== "boolean" || typeof c.text !== "string") throw new Error("SMS content: dataCoding, udhi and text are required");
  if (!Array.isArray(c.segments) || c.segments.length === 0 || !c.segments.every((s) => typeof s === "string")) throw new Error("SMS content: segments must be a non-empty list of base64 strings");
  return c as SmsContent;
}
