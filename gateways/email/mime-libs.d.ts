// The parts of three libraries of the nodemailer family (mailparser's own MIME splitter, header
// decoder and quoted-printable decoder) that the gateway uses; none ships type declarations.

declare module "@zone-eu/mailsplit" {
  import { Transform } from "node:stream";

  /** One MIME node of the message, as the splitter meets it. */
  export interface MimeNode {
    type: "node";
    contentType: string | false;
    /** Transfer encoding, lower case ("base64", "quoted-printable", "7bit", ...). */
    encoding: string | false;
    multipart: string | false;
  }

  /** Content of the current node (`body`) or bytes between nodes (`data`). */
  export interface MimeChunk {
    type: "body" | "data";
    value: Buffer;
  }

  /** A Transform that turns a raw message into nodes and their bodies. */
  export class Splitter extends Transform {
    constructor(options?: { ignoreEmbedded?: boolean; maxHeadSize?: number });
    on(event: "data", listener: (item: MimeNode | MimeChunk) => void): this;
    on(event: "end", listener: () => void): this;
    on(event: "error", listener: (err: Error) => void): this;
  }
}

declare module "libmime" {
  /** The module is one object whose methods use `this`: call them on it. */
  const libmime: {
    /** Parses a header block ("Name: value" lines with folding) into lower-case names and their values. */
    decodeHeaders(headers: string): Record<string, string[]>;
  };
  export default libmime;
}

declare module "libqp" {
  /** Decodes quoted-printable text to its bytes. */
  export function decode(text: string): Buffer;
}
