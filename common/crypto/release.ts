import type { MetaInformation, Release } from "../../gen/uims/common/v1/message";
import { canonicalBytes, hmacSha256 } from "./canonical";
import { metaFields } from "./fields";
import { equalConstantTime, signBytes, verifyMacWith, verifySignature, type Keyring, type SigningKey, type VerifyKeys } from "./keys";
import { Label } from "./labels";

/** What the broker needs to release a message. */
export interface ReleaseKeys {
  k1: Keyring;
  k2: Keyring;
  signing: SigningKey;
}

/**
 * Phase 2 of the protocol (patent 0038-0040): inner digest ID = HMAC(K2, IMI' + C_ack), outer
 * digest = HMAC(K1, IMI' + C_ack + ID), and beyond the patent an Ed25519 signature over
 * IMI' + ID that any member can verify but only the broker can make.
 */
export function makeRelease(keys: ReleaseKeys, meta: MetaInformation, sessionKey: Buffer): Release {
  const fields = metaFields(meta);
  const releaseId = hmacSha256(keys.k2.current.key, Label.releaseInner, [...fields, sessionKey]);
  const outerDigest = hmacSha256(keys.k1.current.key, Label.releaseOuter, [...fields, sessionKey, releaseId]);
  const signature = signBytes(keys.signing, canonicalBytes(Label.releaseSignature, [...fields, releaseId]));
  return { meta, releaseId, outerDigest, signature, signingKeyId: keys.signing.id, k2KeyId: keys.k2.current.id };
}

/**
 * The broker's own check of an ID it issued: recomputes HMAC(K2, IMI' + C_ack). Used when the
 * broker stored only the session key and meta, and for the comparison in phase 4.
 */
export function releaseIdMatches(k2: Keyring, keyId: string, meta: MetaInformation, sessionKey: Buffer, releaseId: Uint8Array): boolean {
  return verifyMacWith(k2, keyId, Label.releaseInner, [...metaFields(meta), sessionKey], releaseId);
}

/**
 * The originating gateway's check of the outer digest (it knows C_ack, which it sent). The outer
 * digest is made with the broker's current K1 key; the originator accepts any key in its ring.
 */
export function outerDigestValid(k1: Keyring, release: Release, sessionKey: Buffer): boolean {
  if (!release.meta) return false;
  const fields = [...metaFields(release.meta), sessionKey, release.releaseId];
  for (const key of k1.all.values()) {
    if (equalConstantTime(hmacSha256(key, Label.releaseOuter, fields), release.outerDigest)) return true;
  }
  return false;
}

/** Any member's check that a release really comes from the broker (K1 cannot forge this). */
export function releaseSignatureValid(verifyKeys: VerifyKeys, release: Release): boolean {
  if (!release.meta || release.releaseId.length !== 32) return false;
  const data = canonicalBytes(Label.releaseSignature, [...metaFields(release.meta), release.releaseId]);
  return verifySignature(verifyKeys, release.signingKeyId, data, release.signature);
}
