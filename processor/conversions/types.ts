import type { ConversionPlan, MetaInformation, Payload } from "../../gen/uims/common/v1/message";

/** What a conversion produces: the converted payload and the SMS segments (or fax pages) it makes. */
export interface ConversionResult {
  payload: Payload;
  /** 0 when the target medium does not count segments. */
  segments: number;
}

/** One conversion from a source content type to a target content type. Pure: no I/O, no clock. */
export type Conversion = (payload: Payload, meta: MetaInformation, plan: ConversionPlan) => Promise<ConversionResult>;

/**
 * The content cannot be converted, and trying again will not change that. The message is the
 * reason the sender reads in the message's status.
 */
export class ConversionError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "ConversionError";
  }
}

export interface ConversionOptions {
  /** Domain of the mail addresses made for senders without one (im:alice → alice@<domain>). */
  mailDomain: string;
}
