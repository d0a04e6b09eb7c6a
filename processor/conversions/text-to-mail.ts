import MailComposer from "nodemailer/lib/mail-composer";
import type { MetaInformation } from "../../gen/uims/common/v1/message";
import type { Attachment } from "../../gen/uims/common/v1/types";
import { decodeText } from "./content-type";
import { ConversionError, type Conversion, type ConversionOptions } from "./types";

export const MAIL_CONTENT_TYPE = "message/rfc822";

/**
 * A mail address for a mesh address: mailto:a@example.org → a@example.org, im:alice →
 * alice@<domain>, sms:+4917… → +4917…@sms.<domain> (voice: and fax: alike). A bare profile id
 * counts as im. Undefined for an empty address.
 */
export function mailAddressFor(address: string, domain: string): string | undefined {
  const colon = address.indexOf(":");
  const scheme = colon < 0 ? (address.includes("@") ? "mailto" : "im") : address.slice(0, colon).toLowerCase();
  const rest = (colon < 0 ? address : address.slice(colon + 1)).trim();
  if (rest === "") return undefined;
  if (scheme === "mailto") return rest;
  if (scheme === "im") return `${rest}@${domain}`;
  return `${rest}@${scheme}.${domain}`;
}

/** "Message from <profile id, else the sender's address without its scheme>". */
export function defaultSubject(meta: MetaInformation): string {
  const address = meta.senderAddress.slice(meta.senderAddress.indexOf(":") + 1);
  return `Message from ${meta.sender || address || "uims"}`;
}

export interface MailInput {
  text: string;
  subject: string;
  attachments: Attachment[];
}

/**
 * A well-formed MIME mail (MailComposer) for a message: From the sender's address, To the target
 * address, the subject (or "Message from <sender>"), Date the time the message was accepted,
 * Message-ID from the message id, the text as text/plain in UTF-8, attachments as MIME parts
 * (without a content type, nodemailer picks one from the file name).
 */
export async function composeMail(input: MailInput, meta: MetaInformation, options: ConversionOptions): Promise<Buffer> {
  const to = meta.targetAddress.replace(/^mailto:/i, "").trim();
  if (!/^[^\s@]+@[^\s@]+$/.test(to)) throw new ConversionError(`the target address "${meta.targetAddress}" is not a mail address`);
  const fromAddress = mailAddressFor(meta.senderAddress || meta.sender, options.mailDomain) ?? `postmaster@${options.mailDomain}`;
  const composer = new MailComposer({
    from: meta.sender ? { name: meta.sender, address: fromAddress } : fromAddress,
    to,
    subject: input.subject || defaultSubject(meta),
    date: new Date(meta.createdAtUnixMs),
    messageId: `<${meta.messageId}@${options.mailDomain}>`,
    text: input.text,
    attachments: input.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType || undefined, content: Buffer.from(a.data) })),
    newline: "win",
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  try {
    return await composer.compile().build();
  } catch (err) {
    throw new ConversionError(`the mail cannot be composed: ${(err as Error).message}`, { cause: err });
  }
}

/** text/plain (any charset) → message/rfc822. */
export function textToMail(options: ConversionOptions): Conversion {
  return async (payload, meta) => {
    const text = decodeText(payload.body, payload.contentType);
    const subject = payload.subject || meta.subject || defaultSubject(meta);
    const body = await composeMail({ text, subject, attachments: payload.attachments }, meta, options);
    return { payload: { contentType: MAIL_CONTENT_TYPE, body, attachments: [], subject }, segments: 0 };
  };
}
