import { EnvReader, readCommonConfig, type CommonConfig, type Env } from "../../common/config";
import { verifyKeyFromRaw, type VerifyKeys } from "../../common/crypto/keys";

export interface GatewayConfig extends CommonConfig {
  /** The broker's gRPC target; one that resolves to several replicas spreads calls over them. */
  brokerAddr: string;
  /** Where other mesh members reach this gateway (host:port). */
  advertiseAddr: string;
  verifyKeys: VerifyKeys;
  maxPayloadBytes: number;
  defaultTtlMs: number;
  sessionKeyTtlMs: number;
  unreachableAfterMs: number;
  deliveryGiveUpMs: number;
  retentionMs: number;
  capacity: number;
}

/** Reads what every gateway needs; a medium's loader reads its own variables with the same reader. */
export function readGatewayConfig(r: EnvReader): GatewayConfig {
  const common = readCommonConfig(r);
  const ring = r.keyring("UIMS_RELEASE_VERIFY_KEYS");
  const verifyKeys: VerifyKeys = new Map();
  for (const [id, raw] of ring.all) {
    if (raw.length !== 32) r.problem("UIMS_RELEASE_VERIFY_KEYS", `key "${id}" is not a 32-byte Ed25519 public key`);
    else verifyKeys.set(id, verifyKeyFromRaw(raw));
  }
  const advertised = r.optionalHostPort("ADVERTISE_ADDR");
  const host = common.grpcHost === "0.0.0.0" || common.grpcHost === "::" ? "127.0.0.1" : common.grpcHost;
  return {
    ...common,
    brokerAddr: r.grpcTarget("BROKER_ADDR"),
    advertiseAddr: advertised?.address ?? `${host}:${common.grpcPort}`,
    verifyKeys,
    maxPayloadBytes: r.int("MAX_PAYLOAD_BYTES", { default: 8 * 1024 * 1024, min: 1024, max: 64 * 1024 * 1024 }),
    defaultTtlMs: r.durationMs("DEFAULT_TTL_MS", 7 * 86_400_000, { min: 1_000 }),
    sessionKeyTtlMs: r.durationMs("SESSION_KEY_TTL_MS", 30_000, { min: 1_000, max: 300_000 }),
    unreachableAfterMs: r.durationMs("UNREACHABLE_AFTER_MS", 30_000, { min: 100 }),
    deliveryGiveUpMs: r.durationMs("DELIVERY_GIVE_UP_MS", 300_000, { min: 100 }),
    retentionMs: r.durationMs("RETENTION_MS", 7 * 86_400_000, { min: 60_000 }),
    capacity: r.int("CAPACITY", { default: 10_000, min: 1 }),
  };
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const r = new EnvReader(env);
  const config = readGatewayConfig(r);
  r.finish();
  return config;
}
