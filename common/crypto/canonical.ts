import { createHash, createHmac } from "node:crypto";

/**
 * A value that goes into a MAC, digest or signature. Every value is written with a type tag and
 * a length prefix, so that no two different field lists share an encoding (no bare
 * concatenation), and protobuf bytes are never hashed directly (they are not canonical across
 * languages).
 */
export type CanonicalField = string | Buffer | Uint8Array | number | boolean;

const TAG_STRING = 0x01;
const TAG_BYTES = 0x02;
const TAG_INT = 0x03;
const TAG_BOOL = 0x04;

/** Anything that takes bytes: a Hash, an Hmac, or a collector. */
interface Sink {
  update(data: Uint8Array): unknown;
}

function writeField(sink: Sink, field: CanonicalField): void {
  const head = Buffer.allocUnsafe(5);
  if (typeof field === "string") {
    const bytes = Buffer.from(field, "utf8");
    head[0] = TAG_STRING;
    head.writeUInt32BE(bytes.length, 1);
    sink.update(head);
    sink.update(bytes);
  } else if (typeof field === "number") {
    if (!Number.isSafeInteger(field)) throw new RangeError(`canonical integers must be safe integers, got ${field}`);
    const body = Buffer.allocUnsafe(8);
    body.writeBigInt64BE(BigInt(field));
    head[0] = TAG_INT;
    head.writeUInt32BE(8, 1);
    sink.update(head);
    sink.update(body);
  } else if (typeof field === "boolean") {
    head[0] = TAG_BOOL;
    head.writeUInt32BE(1, 1);
    sink.update(head);
    sink.update(Buffer.of(field ? 1 : 0));
  } else {
    head[0] = TAG_BYTES;
    head.writeUInt32BE(field.length, 1);
    sink.update(head);
    sink.update(field);
  }
}

/** Feeds a label and fields into a hash or HMAC in canonical form. */
export function writeCanonical(sink: Sink, label: string, fields: readonly CanonicalField[]): void {
  writeField(sink, label);
  writeField(sink, fields.length);
  for (const field of fields) writeField(sink, field);
}

/** The canonical bytes of a label and fields (for signatures, which need the whole input). */
export function canonicalBytes(label: string, fields: readonly CanonicalField[]): Buffer {
  const parts: Buffer[] = [];
  writeCanonical({ update: (chunk: Uint8Array) => parts.push(Buffer.from(chunk)) }, label, fields);
  return Buffer.concat(parts);
}

export function hmacSha256(key: Buffer, label: string, fields: readonly CanonicalField[]): Buffer {
  const hmac = createHmac("sha256", key);
  writeCanonical(hmac, label, fields);
  return hmac.digest();
}

export function sha256Canonical(label: string, fields: readonly CanonicalField[]): Buffer {
  const hash = createHash("sha256");
  writeCanonical(hash, label, fields);
  return hash.digest();
}
