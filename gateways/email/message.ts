import { simpleParser, type ParsedMail, type StructuredHeader } from "mailparser";
import { Priority } from "../../gen/uims/common/v1/types";

/**
 * What the inbound side checks and keeps of a mail before the gateway core accepts it.
 *
 * mailparser is deliberately forgiving: it parses anything, random bytes included, into some
 * message. "Malformed" is therefore defined on top of its result: a header section that does
 * not parse into header fields (no header/body separation means the first body line is taken
 * for a header and fails this), or a multipart message whose boundary is missing or never
 * occurs in the body (the parts cannot be found).
 */

export interface InspectedMail {
  /** Decoded Subject, "" when there is none. */
  subject: string;
  /** The Message-ID header, angle brackets included; "" when there is none. */
  messageId: string;
  /** The header section as received (capped), for a non-delivery report's text/rfc822-headers part. */
  headerSection: string;
  priority: Priority;
  /** Received headers: each relay adds one, so a high count is a loop. */
  hops: number;
}

export type Inspection = { ok: true; mail: InspectedMail } | { ok: false; reason: string };

/** RFC 5322 field name: printable US-ASCII except the colon. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const MAX_HEADER_SECTION = 16 * 1024;

const PARSER_OPTIONS = { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, keepCidLinks: true } as const;

function priorityOf(parsed: ParsedMail): Priority {
  switch (parsed.headers.get("priority")) {
    case "high":
      return Priority.PRIORITY_HIGH;
    case "low":
      return Priority.PRIORITY_LOW;
    default:
      return Priority.PRIORITY_NORMAL;
  }
}

function printable(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e\t\r\n]/g, "?");
  return clean.length > max ? clean.slice(0, max) : clean;
}

/** The reason the message is malformed, or undefined. */
function structuralProblem(raw: Buffer, parsed: ParsedMail): string | undefined {
  const lines = parsed.headerLines;
  if (lines.length === 0 || (lines.length === 1 && lines[0]!.key === "" && lines[0]!.line === "")) return "the message has no header fields";
  for (let i = 0; i < lines.length; i++) {
    const { key, line } = lines[i]!;
    if (!FIELD_NAME.test(key)) {
      return `header line ${i + 1} is not a "Name: value" field (${JSON.stringify(printable(line.split(/\r?\n/)[0] ?? "", 60))}); is the blank line between header and body missing?`;
    }
  }
  const type = parsed.headers.get("content-type") as StructuredHeader | undefined;
  if (type && typeof type.value === "string" && type.value.toLowerCase().startsWith("multipart/")) {
    const boundary = type.params?.boundary;
    if (!boundary) return `${type.value} content without a boundary parameter`;
    // A delimiter line starts with "--boundary" right after a line break; the header's
    // boundary="..." parameter never does.
    if (raw.indexOf(`\n--${boundary}`) < 0) return `the multipart boundary "${printable(boundary, 70)}" never occurs in the body`;
  }
  return undefined;
}

export async function inspectMessage(raw: Buffer): Promise<Inspection> {
  if (raw.length === 0) return { ok: false, reason: "the message is empty" };
  let parsed: ParsedMail;
  try {
    parsed = await simpleParser(raw, PARSER_OPTIONS);
  } catch (err) {
    return { ok: false, reason: `it cannot be parsed (${(err as Error).message})` };
  }
  const problem = structuralProblem(raw, parsed);
  if (problem) return { ok: false, reason: problem };
  const messageId = typeof parsed.messageId === "string" ? parsed.messageId.trim() : "";
  const received = parsed.headers.get("received");
  return {
    ok: true,
    mail: {
      subject: (parsed.subject ?? "").replace(/[\r\n]+/g, " "),
      messageId,
      headerSection: printable(parsed.headerLines.map((l) => l.line).join("\r\n"), MAX_HEADER_SECTION),
      priority: priorityOf(parsed),
      hops: Array.isArray(received) ? received.length : received === undefined ? 0 : 1,
    },
  };
}
