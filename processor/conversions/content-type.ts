import { TextDecoder } from "node:util";
import { ConversionError } from "./types";

/** The media type without parameters, lower case: "text/plain" for "Text/Plain; charset=UTF-8". */
export function baseType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** The charset parameter of a content type, lower case, or undefined when there is none. */
export function charsetOf(contentType: string): string | undefined {
  for (const param of contentType.split(";").slice(1)) {
    const eq = param.indexOf("=");
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    const value = param.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1").trim();
    return value === "" ? undefined : value.toLowerCase();
  }
  return undefined;
}

export const TEXT_UTF8 = "text/plain; charset=utf-8";

/** A text body as a string, decoded from its declared charset (UTF-8 when none is declared). */
export function decodeText(body: Uint8Array, contentType: string): string {
  const charset = charsetOf(contentType) ?? "utf-8";
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset);
  } catch {
    throw new ConversionError(`the text's charset "${charset}" is not supported`);
  }
  return decoder.decode(body);
}
