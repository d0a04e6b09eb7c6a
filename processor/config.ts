import { EnvReader, type Env } from "../common/config";
import { readMemberConfig, type MemberConfig } from "../common/member-config";

export const DEFAULT_MAIL_DOMAIN = "uims.local";
export const DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;

const DOMAIN_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ProcessorConfig extends MemberConfig {
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
  const config: ProcessorConfig = {
    ...readMemberConfig(r),
    maxPayloadBytes: r.int("MAX_PAYLOAD_BYTES", { default: DEFAULT_MAX_PAYLOAD_BYTES, min: 1024, max: 64 * 1024 * 1024 }),
    sessionKeyTtlMs: r.durationMs("SESSION_KEY_TTL_MS", 30_000, { min: 1_000, max: 300_000 }),
    capacity: r.int("CAPACITY", { default: 10_000, min: 1 }),
    mailDomain: r.string("MAIL_DOMAIN", { default: DEFAULT_MAIL_DOMAIN, pattern: DOMAIN_PATTERN, expected: 'a domain name such as "uims.local"' }).toLowerCase(),
  };
  r.finish();
  return config;
}
