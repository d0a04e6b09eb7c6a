import libmime from "libmime";
import { decode as decodeQuotedPrintable } from "libqp";
import { Splitter, type MimeChunk, type MimeNode } from "@zone-eu/mailsplit";

/**
 * Delivery status notifications (RFC 3464): what a mail system reports about each recipient of
 * a message it could not deliver, read from the `message/delivery-status` part of a
 * `multipart/report`. The MIME structure is split by mailparser's own splitter, the part's
 * transfer encoding undone by libqp or Buffer, and the status fields read by libmime's header
 * parser.
 */
export interface RecipientStatus {
  /** failed, delayed, delivered, relayed or expanded. */
  action: string;
  /** Final-Recipient without its address type, e.g. "bob@example.org". */
  recipient: string;
  /** The enhanced status code, e.g. "5.1.1". */
  status: string;
  /** Diagnostic-Code without its type, e.g. "550 5.1.1 user unknown"; may be empty. */
  diagnostic: string;
}

/** The per-recipient statuses of a report; null when the mail is not a delivery status notification. */
export async function readDeliveryStatus(raw: Buffer): Promise<RecipientStatus[] | null> {
  const part = await deliveryStatusPart(raw);
  if (part === null) return null;
  // Blocks of fields separated by empty lines: the first is about the message, each further
  // block about one recipient.
  const blocks = part.replace(/\r\n/g, "\n").split(/\n[ \t]*\n/).filter((b) => b.trim() !== "");
  const statuses: RecipientStatus[] = [];
  for (const block of blocks.slice(1)) {
    const fields = libmime.decodeHeaders(block);
    const first = (name: string) => (fields[name]?.[0] ?? "").trim();
    const action = first("action").toLowerCase();
    if (!action) continue;
    statuses.push({ action, recipient: withoutType(first("final-recipient") || first("original-recipient")), status: first("status"), diagnostic: withoutType(first("diagnostic-code")) });
  }
  return statuses;
}

/** "rfc822; bob@example.org" → "bob@example.org". */
function withoutType(value: string): string {
  const semicolon = value.indexOf(";");
  return (semicolon >= 0 ? value.slice(semicolon + 1) : value).trim();
}

function deliveryStatusPart(raw: Buffer): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const splitter = new Splitter();
    let inside: MimeNode | null = null;
    let found: MimeNode | null = null;
    const body: Buffer[] = [];
    splitter.on("data", (item: MimeNode | MimeChunk) => {
      if (item.type === "node") {
        inside = item;
        if (!found && item.contentType === "message/delivery-status") found = item;
      } else if (item.type === "body" && inside !== null && inside === found) {
        body.push(item.value);
      }
    });
    splitter.on("error", reject);
    splitter.on("end", () => {
      if (!found) return resolve(null);
      const bytes = Buffer.concat(body);
      const encoding = (found as MimeNode).encoding;
      if (encoding === "base64") return resolve(Buffer.from(bytes.toString("latin1"), "base64").toString("utf8"));
      if (encoding === "quoted-printable") return resolve(decodeQuotedPrintable(bytes.toString("latin1")).toString("utf8"));
      resolve(bytes.toString("utf8"));
    });
    splitter.end(raw);
  });
}
