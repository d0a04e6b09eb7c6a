/**
 * The GSM 03.38 (3GPP TS 23.038) default alphabet with its extension table, and UCS-2, as SMPP
 * carries them: one septet per octet ("unpacked", data_coding 0) and UTF-16BE (data_coding 8).
 * The processor encodes with it; the sms gateway decodes what an SMSC delivers.
 */

/** Escape to the extension table: the next septet is read from GSM7_EXTENSION. */
export const GSM7_ESCAPE = 0x1b;

/** The default alphabet, indexed by septet. 0x1B is the escape and maps to no character. */
const BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/** The extension table: septet after the escape → character. */
const EXTENSION: ReadonlyArray<[number, string]> = [
  [0x0a, "\f"],
  [0x14, "^"],
  [0x28, "{"],
  [0x29, "}"],
  [0x2f, "\\"],
  [0x3c, "["],
  [0x3d, "~"],
  [0x3e, "]"],
  [0x40, "|"],
  [0x65, "€"],
];

const BASIC_CODES = new Map<string, number>();
[...BASIC].forEach((char, code) => {
  if (code !== GSM7_ESCAPE) BASIC_CODES.set(char, code);
});
const EXTENSION_CODES = new Map<string, number>(EXTENSION.map(([code, char]) => [char, code]));
const EXTENSION_CHARS = new Map<number, string>(EXTENSION);

/**
 * The septets of one character (a code point): one for the default alphabet, the escape and a
 * second septet for the extension table, undefined when GSM 03.38 cannot represent it.
 */
export function gsm7Septets(char: string): number[] | undefined {
  const basic = BASIC_CODES.get(char);
  if (basic !== undefined) return [basic];
  const extension = EXTENSION_CODES.get(char);
  return extension === undefined ? undefined : [GSM7_ESCAPE, extension];
}

/** Whether every character of `text` is in the default alphabet or its extension table. */
export function isGsm7(text: string): boolean {
  for (const char of text) if (gsm7Septets(char) === undefined) return false;
  return true;
}

/** The text as unpacked septets (one per octet), or undefined when a character is not representable. */
export function encodeGsm7(text: string): Buffer | undefined {
  const out: number[] = [];
  for (const char of text) {
    const septets = gsm7Septets(char);
    if (!septets) return undefined;
    out.push(...septets);
  }
  return Buffer.from(out);
}

/**
 * Unpacked septets to text. An escape followed by a septet the extension table does not define
 * reads as that septet of the default alphabet, as 3GPP TS 23.038 asks of receivers; a lone
 * escape at the end is dropped.
 */
export function decodeGsm7(septets: Uint8Array): string {
  let out = "";
  for (let i = 0; i < septets.length; i++) {
    const code = septets[i]! & 0x7f;
    if (code === GSM7_ESCAPE) {
      const next = septets[i + 1];
      if (next === undefined) break;
      i++;
      out += EXTENSION_CHARS.get(next & 0x7f) ?? BASIC[next & 0x7f] ?? "";
      continue;
    }
    out += BASIC[code] ?? "";
  }
  return out;
}

/** Text as UCS-2 the way handsets use it: UTF-16BE, characters outside the BMP as surrogate pairs. */
export function encodeUcs2(text: string): Buffer {
  const out = Buffer.alloc(text.length * 2);
  for (let i = 0; i < text.length; i++) out.writeUInt16BE(text.charCodeAt(i), i * 2);
  return out;
}

/** UTF-16BE bytes to text; an odd trailing byte is ignored. */
export function decodeUcs2(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
  return out;
}
