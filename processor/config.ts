import { EnvReader, readCommonConfig, type CommonConfig, type Env } from "../common/config";
import { verifyKeyFromRaw, type VerifyKeys } from "../common/crypto/keys";

export const DEFAULT_MAIL_DOMAIN = "uims.local";
export const DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;

const DOMAIN_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ProcessorConfig extends CommonConfig {
  brokerAddr: string;
  /** Where gateways reach this processor (host:port), as registered with the broker. */
  advertiseAddr: string;
  /** The broker's release signature keys. */
  verifyKeys: VerifyKeys;
  /** Largest payload taken in or produced by a conversion. */
  maxPayloadBytes: number;
  sessionKeyTtlMs: number;
  capacity: number;
  /** Domain of mail addresses made for senders without one: im:alice → alice@<domain>, sms:+49… → +49…@sms.<domain>. */
  mailDomain: string;
}

/** Reads and validates the processor's environment; throws one ConfigError listing every problem. */
export function loadProcessorConfig(env: Env = process.env): ProcessorConfig {
  const r = new EnvReader(env);
  const common = readCommonConfig(r);
  const ring = r.keyring("UIMS_RELEASE_VERIFY_KEYS");
  const verifyKeys: VerifyKeys = new Map();
  for (const [id, raw] of ring.all) {
    if (raw.length !== 32) r.problem("UIMS_RELEASE_VERIFY_KEYS", `key "${id}" is not a 32-byte Ed25519 public key`);
    else verifyKeys.set(id, verifyKeyFromRaw(raw));
  }
  const advertised = r.optionalHostPort("ADVERTISE_ADDR");
  const host = common.grpcHost === "0.0.0.0" || common.grpcHost === "::" ? "127.0.0.1" : common.grpcHost;
  const config: ProcessorConfig = {
    ...common,
    brokerAddr: r.grpcTarget("BROKER_ADDR"),
    advertiseAddr: advertised?.address ?? `${host}:${common.grpcPort}`,
    verifyKeys,
    maxPayloadBytes: r.int("MAX_PAYLOAD_BYTES", { default: DEFAULT_MAX_PAYLOAD_BYTES, min: 1024, max: 64 * 1024 * 1024 }),
    sessionKeyTtlMs: r.durationMs("SESSION_KEY_TTL_MS", 30_000, { min: 1_000, max: 300_000 }),
    capacity: r.int("CAPACITY", { default: 10_000, min: 1 }),
    mailDomain: r.string("MAIL_DOMAIN", { default: DEFAULT_MAIL_DOMAIN, pattern: DOMAIN_PATTERN, expected: 'a domain name such as "uims.local"' }).toLowerCase(),
  };
  r.finish();
  return config;
}
