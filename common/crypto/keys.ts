import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from "node:crypto";
import { hmacSha256, type CanonicalField } from "./canonical";

/**
 * A symmetric key set: `current` signs, every key in `all` (current and previous) verifies,
 * so keys rotate without downtime.
 */
export interface Keyring {
  current: { id: string; key: Buffer };
  all: Map<string, Buffer>;
}

export function keyringFromKeys(keys: Array<{ id: string; key: Buffer }>): Keyring {
  if (keys.length === 0) throw new Error("a keyring needs at least one key");
  const [current] = keys as [{ id: string; key: Buffer }];
  return { current, all: new Map(keys.map((k) => [k.id, k.key])) };
}

/** A keyring with one fresh random key, for tests and the local mesh. */
export function randomKeyring(id: string): Keyring {
  return keyringFromKeys([{ id, key: randomBytes(32) }]);
}

/** Makes a MAC with the current key. */
export function macWith(ring: Keyring, label: string, fields: readonly CanonicalField[]): { keyId: string; mac: Buffer } {
  return { keyId: ring.current.id, mac: hmacSha256(ring.current.key, label, fields) };
}

/** Constant-time check of a MAC under the named key; an unknown key id fails. */
export function verifyMacWith(ring: Keyring, keyId: string, label: string, fields: readonly CanonicalField[], mac: Uint8Array): boolean {
  const key = ring.all.get(keyId);
  if (!key) return false;
  return equalConstantTime(hmacSha256(key, label, fields), mac);
}

export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed or public key (RFC 8410), so that keys are
// configured as short base64 strings rather than PEM files.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** The broker's release-signing key (Ed25519). Only the broker holds it. */
export interface SigningKey {
  id: string;
  privateKey: KeyObject;
  publicKeyRaw: Buffer;
}

/** Public keys that verify releases; gateways and processors hold these, never the private key. */
export type VerifyKeys = Map<string, KeyObject>;

export function signingKeyFromSeed(id: string, seed: Buffer): SigningKey {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { id, privateKey, publicKeyRaw: Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length)) };
}

export function verifyKeyFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: "der", type: "spki" });
}

export function generateSigningKey(id: string): { key: SigningKey; seed: Buffer } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  const seed = Buffer.from(der.subarray(PKCS8_ED25519_PREFIX.length));
  return { key: signingKeyFromSeed(id, seed), seed };
}

export function verifyKeysOf(...keys: SigningKey[]): VerifyKeys {
  return new Map(keys.map((k) => [k.id, verifyKeyFromRaw(k.publicKeyRaw)]));
}

export function signBytes(key: SigningKey, data: Buffer): Buffer {
  return sign(null, data, key.privateKey);
}

export function verifySignature(keys: VerifyKeys, keyId: string, data: Buffer, signature: Uint8Array): boolean {
  const key = keys.get(keyId);
  if (!key || signature.length !== 64) return false;
  return verify(null, data, key, signature);
}
