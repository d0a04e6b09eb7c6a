import { simpleParser, type ParsedMail } from "mailparser";
import type { Attachment } from "../../gen/uims/common/v1/types";
import { TEXT_UTF8 } from "./content-type";
import { ConversionError, type Conversion } from "./types";

/** What a MIME mail says, read by mailparser: its subject, its text and its files. */
export interface MailContent {
  subject: string;
  /** The text part, or the HTML part as readable text when there is no text part; "" when neither. */
  text: string;
  attachments: Attachment[];
}

/**
 * Lines end in LF; blank lines before the text and whitespace after it are dropped (a MIME body
 * ends with a line break). Trailing blanks inside stay: "-- " opens a signature.
 */
export function tidyText(text: string): string {
  return text.replace(/\r\n?/g, "\n").replace(/^(?:[ \t]*\n)+/, "").trimEnd();
}

/** A file name without any path or control characters; a made-up one when nothing is left. */
export function safeFilename(name: string | undefined, index: number): string {
  const base = (name ?? "").split(/[/\\]/).pop()!.replace(/\p{Cc}/gu, "").trim();
  return base === "" || base === "." || base === ".." ? `attachment-${index + 1}` : base;
}

const PARSER_OPTIONS = { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true, keepCidLinks: true, checksumAlgo: false } as const;

async function parse(raw: Buffer): Promise<ParsedMail> {
  try {
    return await simpleParser(raw, PARSER_OPTIONS);
  } catch (err) {
    throw new ConversionError(`the mail cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * mailparser turns HTML into text only for a mail without any text/plain alternative outside a
 * multipart/alternative; a multipart/alternative that holds only HTML comes back without text.
 * Its HTML is then converted the same way, as a single text/html part.
 */
async function htmlAsText(html: string): Promise<string> {
  const single = await parse(Buffer.concat([Buffer.from("Content-Type: text/html; charset=utf-8\r\n\r\n"), Buffer.from(html, "utf8")]));
  return single.text ?? "";
}

/** Parses a MIME mail (RFC 5322 with MIME parts, any transfer encoding and charset). */
export async function readMail(raw: Uint8Array): Promise<MailContent> {
  if (raw.length === 0) throw new ConversionError("the mail is empty");
  const mail = await parse(Buffer.from(raw));
  let text = tidyText(mail.text ?? "");
  if (text === "" && typeof mail.html === "string" && mail.html.trim() !== "") text = tidyText(await htmlAsText(mail.html));
  return {
    subject: (mail.subject ?? "").trim(),
    text,
    attachments: mail.attachments.map((a, i) => ({
      filename: safeFilename(a.filename, i),
      contentType: a.contentType || "application/octet-stream",
      data: a.content,
    })),
  };
}

/**
 * message/rfc822 → text/plain; charset=utf-8: the text part (HTML as readable text when the
 * mail has only HTML), the Subject in payload.subject, every attachment (inline images too) as a
 * payload attachment.
 */
export const mailToText: Conversion = async (payload) => {
  const mail = await readMail(payload.body);
  if (mail.text === "" && mail.attachments.length === 0) throw new ConversionError("the mail has neither text nor attachments");
  return {
    payload: { contentType: TEXT_UTF8, body: Buffer.from(mail.text, "utf8"), attachments: mail.attachments, subject: mail.subject || payload.subject },
    segments: 0,
  };
};
