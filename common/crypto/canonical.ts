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
const HEAD = 5;

/** Anything that takes bytes: a Hash, an Hmac, or a collector. */
interface Sink {
  update(data: Uint8Array): unknown;
}

function fieldLength(field: CanonicalField): number {
  if (typeof field === "string") return HEAD + Buffer.byteLength(field, "utf8");
  if (typeof field === "number") return HEAD + 8;
  if (typeof field === "boolean") return HEAD + 1;
  return HEAD + field.length;
}

function writeField(out: Buffer, at: number, field: CanonicalField): number {
  if (typeof field === "string") {
    out[at] = TAG_STRING;
    const written = out.write(field, at + HEAD, "utf8");
    out.writeUInt32BE(written, at + 1);
    return at + HEAD + written;
  }
  if (typeof field === "number") {
    if (!Number.isSafeInteger(field)) throw new RangeError(`canonical integers must be safe integers, got ${field}`);
    out[at] = TAG_INT;
    out.writeUInt32BE(8, at + 1);
    out.writeBigInt64BE(BigInt(field), at + HEAD);
    return at + HEAD + 8;
  }
  if (typeof field === "boolean") {
    out[at] = TAG_BOOL;
    out.writeUInt32BE(1, at + 1);
    out[at + HEAD] = field ? 1 : 0;
    return at + HEAD + 1;
  }
  out[at] = TAG_BYTES;
  out.writeUInt32BE(field.length, at + 1);
  out.set(field, at + HEAD);
  return at + HEAD + field.length;
}

/** The canonical bytes of a label and fields (for signatures, which need the whole input). */
export function canonicalBytes(label: string, fields: readonly CanonicalField[]): Buffer {
  // Built in one buffer: one native call per MAC instead of two per field.
  let length = fieldLength(label) + fieldLength(fields.length);
  for (const field of fields) length += fieldLength(field);
  const out = Buffer.allocUnsafe(length);
  let at = writeField(out, 0, label);
  at = writeField(out, at, fields.length);
  for (const field of fields) at = writeField(out, at, field);
  return out;
}

/** Above this, large byte fields are fed to the hash as they are instead of being copied. */
const COPY_LIMIT = 64 * 1024;

/** Feeds a label and fields into a hash or HMAC in canonical form. */
export function writeCanonical(sink: Sink, label: string, fields: readonly CanonicalField[]): void {
  let length = 0;
  for (const field of fields) length += fieldLength(field);
  if (length <= COPY_LIMIT) {
    sink.update(canonicalBytes(label, fields));
    return;
  }
  // Same bytes, without copying a large payload: small fields together, large ones by reference.
  const head = Buffer.allocUnsafe(fieldLength(label) + fieldLength(fields.length));
  writeField(head, writeField(head, 0, label), fields.length);
  sink.update(head);
  for (const field of fields) {
    if (typeof field === "object" && field.length > 1024) {
      const prefix = Buffer.allocUnsafe(HEAD);
      prefix[0] = TAG_BYTES;
      prefix.writeUInt32BE(field.length, 1);
      sink.update(prefix);
      sink.update(field);
    } else {
      const part = Buffer.allocUnsafe(fieldLength(field));
      writeField(part, 0, field);
      sink.update(part);
    }
  }
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
