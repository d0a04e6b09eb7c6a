import { EnvReader, type Env } from "../../common/config";
import { readMemberConfig, type MemberConfig } from "../../common/member-config";

export interface GatewayConfig extends MemberConfig {
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
  return {
    ...readMemberConfig(r),
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
