import { SMS_CONTENT_TYPE } from "../../common/content/sms";
import { baseType } from "./content-type";
import { smsToMail, smsToText } from "./from-sms";
import { mailToText } from "./mail-to-text";
import { MAIL_CONTENT_TYPE, textToMail } from "./text-to-mail";
import { mailToSms, textToSms } from "./to-sms";
import { ConversionError, type Conversion, type ConversionOptions } from "./types";

export { ConversionError, type Conversion, type ConversionOptions, type ConversionResult } from "./types";

type Kind = "text" | "mail" | "sms";

const KINDS: ReadonlyMap<string, Kind> = new Map([
  ["text/plain", "text"],
  [MAIL_CONTENT_TYPE, "mail"],
  [SMS_CONTENT_TYPE, "sms"],
]);

/** Every conversion the processor does, by (source kind, target kind). */
function table(options: ConversionOptions): ReadonlyMap<string, Conversion> {
  return new Map([
    ["mail>text", mailToText],
    ["text>mail", textToMail(options)],
    ["text>sms", textToSms],
    ["mail>sms", mailToSms],
    ["sms>text", smsToText],
    ["sms>mail", smsToMail(options)],
  ]);
}

/**
 * Picks conversions by base content type (parameters such as charset do not matter). Voice
 * (audio/wav) and fax (image/tiff) targets have none yet.
 */
export class Conversions {
  private readonly byKinds: ReadonlyMap<string, Conversion>;

  constructor(options: ConversionOptions) {
    this.byKinds = table(options);
  }

  /** The conversion from `source` to `target`; throws a ConversionError when there is none. */
  select(source: string, target: string): Conversion {
    const from = KINDS.get(baseType(source));
    const to = KINDS.get(baseType(target));
    const conversion = from && to ? this.byKinds.get(`${from}>${to}`) : undefined;
    if (!conversion) throw new ConversionError(`no conversion from ${baseType(source) || "(no content type)"} to ${baseType(target) || "(no content type)"}`);
    return conversion;
  }
}
