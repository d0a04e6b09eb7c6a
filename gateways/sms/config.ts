import { EnvReader, type Env } from "../../common/config";
import { readGatewayConfig, type GatewayConfig } from "../core/config";

export interface SmppAddress {
  ton: number;
  npi: number;
  addr: string;
}

export interface SmsGatewayConfig extends GatewayConfig {
  /** The SMSC, `smpp://host:port` (or `ssmpp://` for TLS). */
  smppUrl: string;
  systemId: string;
  /** Never logged: SMPP_PASSWORD is read as a secret. */
  password: string;
  systemType: string;
  /** The sender of mobile-terminated messages (a number or a short code) with its TON/NPI. */
  source: SmppAddress;
  /** Most submit_sm awaiting their response at once. */
  window: number;
  submitsPerSecond: number;
  enquireLinkMs: number;
  /** How long a response (bind, submit_sm, enquire_link) may take before the link counts as broken. */
  responseTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Our numbers on the SMSC (digits, no "+") → the profile a message to that number is for. */
  inboundNumbers: ReadonlyMap<string, string>;
  /** How long the parts of a concatenated incoming SMS are collected before the rest is given up. */
  reassemblyTimeoutMs: number;
  /** Send a short non-delivery SMS back to a phone whose message could not be delivered. */
  ndrSms: boolean;
}

/** Digits of a phone number as SMPP carries it: no "+", no international "00" prefix. */
export function phoneDigits(number: string): string {
  const digits = number.trim().replace(/^\+/, "").replace(/[\s-]/g, "");
  return digits.startsWith("00") ? digits.slice(2) : digits;
}

/**
 * TON/NPI for an address: "+<digits>" is international E.164 (1/1); digits alone a national
 * number or short code (0 unknown / 1 ISDN); anything else an alphanumeric sender (5/0).
 */
export function smppAddress(value: string): SmppAddress {
  if (/^\+[0-9]+$/.test(value)) return { ton: 1, npi: 1, addr: value.slice(1) };
  if (/^[0-9]+$/.test(value)) return { ton: 0, npi: 1, addr: value };
  return { ton: 5, npi: 0, addr: value };
}

const INBOUND_ITEM = /^\+?[0-9]{3,15}:[a-z0-9][a-z0-9._-]{0,63}$/;

export function readSmsConfig(r: EnvReader): Omit<SmsGatewayConfig, keyof GatewayConfig> {
  const smppUrl = r.url("SMPP_URL", ["smpp:", "ssmpp:"]);
  const sourceValue = r.string("SMPP_SOURCE_ADDR", {
    pattern: /^(\+?[0-9]{3,15}|[A-Za-z0-9 ]{1,11})$/,
    expected: 'a number ("+4915550000"), a short code ("12345") or an alphanumeric sender of at most 11 characters',
  });
  const derived = smppAddress(sourceValue);
  const source: SmppAddress = {
    addr: derived.addr,
    ton: r.int("SMPP_SOURCE_TON", { default: derived.ton, min: 0, max: 6 }),
    npi: r.int("SMPP_SOURCE_NPI", { default: derived.npi, min: 0, max: 18 }),
  };
  const inboundNumbers = new Map<string, string>();
  for (const item of r.list("SMS_INBOUND_NUMBERS", { pattern: INBOUND_ITEM, expected: '"+<number>:<profile id>"' })) {
    const [number, profile] = item.split(":") as [string, string];
    const digits = phoneDigits(number);
    if (inboundNumbers.has(digits)) r.problem("SMS_INBOUND_NUMBERS", `number ${number} appears twice`);
    inboundNumbers.set(digits, profile);
  }
  const reconnectMinMs = r.durationMs("SMPP_RECONNECT_MIN_MS", 1_000, { min: 10, max: 600_000 });
  const reconnectMaxMs = r.durationMs("SMPP_RECONNECT_MAX_MS", 60_000, { min: 10, max: 3_600_000 });
  if (reconnectMaxMs < reconnectMinMs) r.problem("SMPP_RECONNECT_MAX_MS", "must not be smaller than SMPP_RECONNECT_MIN_MS");
  return {
    smppUrl,
    systemId: r.string("SMPP_SYSTEM_ID", { pattern: /^[\x21-\x7e]{1,15}$/, expected: "1 to 15 printable ASCII characters (SMPP system_id)" }),
    password: r.string("SMPP_PASSWORD", { secret: true, pattern: /^[\x20-\x7e]{1,64}$/, expected: "1 to 64 printable ASCII characters" }),
    systemType: r.string("SMPP_SYSTEM_TYPE", { default: "", pattern: /^[\x21-\x7e]{0,12}$/, expected: "at most 12 printable ASCII characters" }),
    source,
    window: r.int("SMPP_WINDOW", { default: 10, min: 1, max: 1_000 }),
    submitsPerSecond: r.int("SMPP_SUBMITS_PER_SECOND", { default: 50, min: 1, max: 100_000 }),
    enquireLinkMs: r.durationMs("SMPP_ENQUIRE_LINK_MS", 30_000, { min: 100, max: 3_600_000 }),
    responseTimeoutMs: r.durationMs("SMPP_RESPONSE_TIMEOUT_MS", 10_000, { min: 100, max: 300_000 }),
    reconnectMinMs,
    reconnectMaxMs,
    inboundNumbers,
    reassemblyTimeoutMs: r.durationMs("SMS_REASSEMBLY_TIMEOUT_MS", 600_000, { min: 100, max: 86_400_000 }),
    ndrSms: r.bool("SMS_NDR", true),
  };
}

export function loadSmsGatewayConfig(env: Env = process.env): SmsGatewayConfig {
  const r = new EnvReader(env);
  const gateway = readGatewayConfig(r);
  const config: SmsGatewayConfig = { ...gateway, ...readSmsConfig(r) };
  r.finish();
  return config;
}
