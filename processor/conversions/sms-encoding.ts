import { encodeUcs2, gsm7Septets } from "../../common/content/gsm7";
import type { SmsContent } from "../../common/content/sms";
import { ConversionError } from "./types";

/** Septets in a single GSM 7-bit SMS, and per segment of a concatenated one (after the 6-octet UDH). */
export const GSM7_SINGLE = 160;
export const GSM7_SEGMENT = 153;
/** UCS-2 characters (UTF-16 code units) in a single SMS, and per segment of a concatenated one. */
export const UCS2_SINGLE = 70;
export const UCS2_SEGMENT = 67;
/** The concatenation header counts segments in one octet. */
export const MAX_SEGMENTS = 255;

/** The user data header of segment `seq` (1-based) of `total`: concatenated SMS, 8-bit reference. */
export function concatenationHeader(reference: number, total: number, seq: number): Buffer {
  return Buffer.from([0x05, 0x00, 0x03, reference & 0xff, total, seq]);
}

/**
 * Units that must stay together in one segment, with their size: a GSM character (an escaped one
 * is two septets), or a UCS-2 character (a character outside the BMP is a surrogate pair).
 */
interface Unit {
  bytes: Buffer;
  size: number;
}

function gsm7Units(text: string): Unit[] | undefined {
  const units: Unit[] = [];
  for (const char of text) {
    const septets = gsm7Septets(char);
    if (!septets) return undefined;
    units.push({ bytes: Buffer.from(septets), size: septets.length });
  }
  return units;
}

function ucs2Units(text: string): Unit[] {
  // Iterating a string yields code points, so a surrogate pair stays one unit.
  return Array.from(text, (char) => ({ bytes: encodeUcs2(char), size: char.length }));
}

function split(units: Unit[], single: number, perSegment: number): Buffer[] {
  const total = units.reduce((n, u) => n + u.size, 0);
  if (total <= single) return [Buffer.concat(units.map((u) => u.bytes))];
  const segments: Buffer[] = [];
  let current: Buffer[] = [];
  let size = 0;
  for (const unit of units) {
    if (size + unit.size > perSegment) {
      segments.push(Buffer.concat(current));
      current = [];
      size = 0;
    }
    current.push(unit.bytes);
    size += unit.size;
  }
  if (current.length > 0) segments.push(Buffer.concat(current));
  return segments;
}

export interface SmsEncodeOptions {
  /** Concatenation reference, one octet: random per message so that handsets do not mix two messages. */
  reference: number;
  /** Most segments allowed; 0 for no limit (other than the 255 of the header). */
  maxSegments: number;
}

/**
 * Encodes text for SMPP: GSM 03.38 unpacked septets (data_coding 0) when every character is in
 * the default alphabet or its extension table, UCS-2 (data_coding 8) otherwise; concatenated with
 * a UDH when it does not fit one SMS. An escape pair or a surrogate pair is never split.
 */
export function encodeSms(text: string, opts: SmsEncodeOptions): SmsContent {
  if (text === "") throw new ConversionError("there is no text to send as SMS");
  const gsm = gsm7Units(text);
  const segments = gsm ? split(gsm, GSM7_SINGLE, GSM7_SEGMENT) : split(ucs2Units(text), UCS2_SINGLE, UCS2_SEGMENT);
  const total = segments.length;
  if (opts.maxSegments > 0 && total > opts.maxSegments) throw new ConversionError(`needs ${total} segments, the recipient allows ${opts.maxSegments}`);
  if (total > MAX_SEGMENTS) throw new ConversionError(`needs ${total} segments, a concatenated SMS has at most ${MAX_SEGMENTS}`);
  const udhi = total > 1;
  return {
    encoding: gsm ? "gsm7" : "ucs2",
    dataCoding: gsm ? 0 : 8,
    udhi,
    text,
    segments: segments.map((s, i) => (udhi ? Buffer.concat([concatenationHeader(opts.reference, total, i + 1), s]) : s).toString("base64")),
  };
}
