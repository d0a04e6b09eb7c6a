import { decodeSmsContent } from "../../common/content/sms";
import type { Payload } from "../../gen/uims/common/v1/message";
import { TEXT_UTF8 } from "./content-type";
import { composeMail, defaultSubject, MAIL_CONTENT_TYPE } from "./text-to-mail";
import { ConversionError, type Conversion, type ConversionOptions } from "./types";

function smsTextOf(payload: Payload): string {
  let text: string;
  try {
    text = decodeSmsContent(payload.body).text;
  } catch (err) {
    throw new ConversionError(`the SMS content is malformed: ${(err as Error).message}`, { cause: err });
  }
  if (text.trim() === "") throw new ConversionError("the SMS carries no text");
  return text;
}

/** application/vnd.uims.sms → text/plain; charset=utf-8. */
export const smsToText: Conversion = async (payload) => ({
  payload: { contentType: TEXT_UTF8, body: Buffer.from(smsTextOf(payload), "utf8"), attachments: [], subject: payload.subject },
  segments: 0,
});

/** application/vnd.uims.sms → message/rfc822, as text → mail. */
export function smsToMail(options: ConversionOptions): Conversion {
  return async (payload, meta) => {
    const subject = payload.subject || meta.subject || defaultSubject(meta);
    const body = await composeMail({ text: smsTextOf(payload), subject, attachments: [] }, meta, options);
    return { payload: { contentType: MAIL_CONTENT_TYPE, body, attachments: [], subject }, segments: 0 };
  };
}
