import { createHash } from "node:crypto";
import { EnvReader, readCommonConfig, type CommonConfig, type Env, type Keyring } from "../common/config";
import { signingKeyFromSeed, type SigningKey } from "../common/crypto/keys";

export interface BrokerConfig extends CommonConfig {
  /** K2: the broker's own key for the inner release ID; shared only among broker replicas. */
  k2: Keyring;
  /** The Ed25519 key that signs releases; gateways hold its public half. */
  signingKey: SigningKey;
  /** SHA-256 of the operators' admin token. */
  adminTokenSha256: Buffer;
  sessionKeyTtlMs: number;
  receiptTimeoutMs: number;
  maxContentBytes: number;
  heartbeatIntervalMs: number;
  transactionRetentionMs: number;
  /** How long undeliverable notices to an originating gateway are retried. */
  noticeRetryMs: number;
  /** Largest gRPC message the broker accepts: it only ever sees meta information. */
  maxMessageBytes: number;
  /** How often routing looks whether any profile changed (admin changes take effect within this). */
  profileCacheMs: number;
  /**
   * Connections older than this are asked to go away (HTTP/2 GOAWAY), so that clients resolve
   * the broker's address again and find replicas added since; 0 keeps connections for good.
   */
  maxConnectionAgeMs: number;
}

const SIGNING_KEY = /^[A-Za-z0-9_.-]{1,32}:[A-Za-z0-9+/=_-]{43,44}$/;

export function readSigningKey(r: EnvReader, name: string): SigningKey {
  const value = r.string(name, { secret: true, pattern: SIGNING_KEY, expected: "ID:BASE64 of a 32-byte Ed25519 seed (uims keys makes one)" });
  const [id, seed] = value.split(":") as [string, string];
  if (!seed) return signingKeyFromSeed("unset", Buffer.alloc(32));
  const raw = Buffer.from(seed, "base64");
  if (raw.length !== 32) {
    r.problem(name, "the seed must decode to 32 bytes");
    return signingKeyFromSeed("unset", Buffer.alloc(32));
  }
  return signingKeyFromSeed(id, raw);
}

export function loadBrokerConfig(env: Env = process.env): BrokerConfig {
  const r = new EnvReader(env);
  const common = readCommonConfig(r);
  const k2 = r.keyring("UIMS_K2_KEYS");
  const signingKey = readSigningKey(r, "UIMS_RELEASE_SIGNING_KEY");
  const adminToken = r.string("UIMS_ADMIN_TOKEN", { secret: true, pattern: /^.{16,}$/, expected: "at least 16 characters" });
  const config: BrokerConfig = {
    ...common,
    k2,
    signingKey,
    adminTokenSha256: createHash("sha256").update(adminToken).digest(),
    sessionKeyTtlMs: r.durationMs("SESSION_KEY_TTL_MS", 30_000, { min: 1_000, max: 300_000 }),
    receiptTimeoutMs: r.durationMs("RECEIPT_TIMEOUT_MS", 600_000, { min: 1_000 }),
    maxContentBytes: r.int("MAX_CONTENT_BYTES", { default: 8 * 1024 * 1024, min: 1 }),
    heartbeatIntervalMs: r.durationMs("HEARTBEAT_INTERVAL_MS", 5_000, { min: 100, max: 600_000 }),
    transactionRetentionMs: r.durationMs("TRANSACTION_RETENTION_MS", 7 * 86_400_000, { min: 60_000 }),
    noticeRetryMs: r.durationMs("NOTICE_RETRY_MS", 86_400_000, { min: 1_000 }),
    maxMessageBytes: r.int("BROKER_MAX_MESSAGE_BYTES", { default: 256 * 1024, min: 16 * 1024 }),
    profileCacheMs: r.durationMs("PROFILE_CACHE_MS", 1_000, { min: 0, max: 60_000 }),
    maxConnectionAgeMs: r.durationMs("BROKER_MAX_CONNECTION_AGE_MS", 300_000, { min: 0 }),
  };
  r.finish();
  return config;
}
