import { EnvReader, type Env } from "../../common/config";
import { readGatewayConfig, type GatewayConfig } from "../core/config";

export interface ImGatewayConfig extends GatewayConfig {
  /** The public client API listens here, apart from the mesh port, so that only it is exposed. */
  clientHost: string;
  clientPort: number;
  tokenCacheMs: number;
  /** Messages per second each client may send through this gateway (0: no limit), and its burst. */
  sendRatePerSecond: number;
  sendBurst: number;
  /** Messages kept per client inbox (the newest), and how long an unread inbox lives. */
  inboxMaxEntries: number;
  inboxRetentionMs: number;
}

export function loadImGatewayConfig(env: Env = process.env): ImGatewayConfig {
  const r = new EnvReader(env);
  const gateway = readGatewayConfig(r);
  const config: ImGatewayConfig = {
    ...gateway,
    clientHost: r.string("CLIENT_HOST", { default: "0.0.0.0" }),
    clientPort: r.port("CLIENT_PORT", 50061, { allowZero: true }),
    tokenCacheMs: r.durationMs("TOKEN_CACHE_MS", 30_000, { min: 0, max: 3_600_000 }),
    sendRatePerSecond: r.int("CLIENT_SEND_RATE", { default: 100, min: 0 }),
    sendBurst: r.int("CLIENT_SEND_BURST", { default: 200, min: 1 }),
    inboxMaxEntries: r.int("INBOX_MAX_ENTRIES", { default: 1_000, min: 10 }),
    inboxRetentionMs: r.durationMs("INBOX_RETENTION_MS", 7 * 86_400_000, { min: 60_000 }),
  };
  r.finish();
  return config;
}
