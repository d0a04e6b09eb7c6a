import { randomInt } from "node:crypto";
import { encodeSmsContent, SMS_CONTENT_TYPE } from "../../common/content/sms";
import type { Attachment } from "../../gen/uims/common/v1/types";
import { decodeText } from "./content-type";
import { readMail, tidyText } from "./mail-to-text";
import { encodeSms } from "./sms-encoding";
import { ConversionError, type Conversion, type ConversionResult } from "./types";

/** Attachments named in the note, the rest counted. */
const NOTE_MAX_NAMES = 5;

/** "512 B", "12 KB", "1.5 MB" (binary multiples). */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1).replace(/\.0$/, "") : Math.round(value)} ${units[unit]}`;
}

/**
 * SMS cannot carry files: they are named, not sent. "[attachments: a.pdf (12 KB), b.png (3 KB)]",
 * at most five names, then "and N more"; "" without attachments.
 */
export function attachmentNote(attachments: readonly Attachment[]): string {
  if (attachments.length === 0) return "";
  const named = attachments.slice(0, NOTE_MAX_NAMES).map((a) => `${a.filename} (${formatSize(a.data.length)})`);
  const more = attachments.length - named.length;
  return `[attachments: ${named.join(", ")}${more > 0 ? ` and ${more} more` : ""}]`;
}

/** The text an SMS carries for a message: the subject, the body, then the attachment note, one per line. */
export function smsText(subject: string, body: string, attachments: readonly Attachment[]): string {
  // GSM 03.38 has neither tab nor no-break space: as plain spaces they keep a text 7-bit.
  const words = [subject, body].map((s) => tidyText(s.replace(/[\t\u00a0]/g, " ")).trim()).filter((s) => s !== "");
  if (words.length === 0) {
    const what = attachments.length > 0 ? `only attachments (${attachments.map((a) => a.filename).join(", ")})` : "no text";
    throw new ConversionError(`nothing to send as SMS: the message has ${what}`);
  }
  const note = attachmentNote(attachments);
  return [...words, ...(note ? [note] : [])].join("\n");
}

function smsResult(text: string, maxSegments: number): ConversionResult {
  const content = encodeSms(text, { reference: randomInt(256), maxSegments });
  return {
    payload: { contentType: SMS_CONTENT_TYPE, body: encodeSmsContent(content), attachments: [], subject: "" },
    segments: content.segments.length,
  };
}

/** text/plain (any charset) → application/vnd.uims.sms. */
export const textToSms: Conversion = async (payload, _meta, plan) =>
  smsResult(smsText(payload.subject, decodeText(payload.body, payload.contentType), payload.attachments), plan.maxSegments);

/** message/rfc822 → application/vnd.uims.sms: subject, text part, attachment note. */
export const mailToSms: Conversion = async (payload, _meta, plan) => {
  const mail = await readMail(payload.body);
  return smsResult(smsText(mail.subject || payload.subject, mail.text, mail.attachments), plan.maxSegments);
};
