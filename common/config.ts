import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { isIP } from "node:net";
import { inspect } from "node:util";

/** Environment variables as a plain map; `process.env` fits. */
export type Env = Readonly<Record<string, string | undefined>>;

/** One bad or missing variable. `message` never contains a secret value. */
export interface ConfigProblem {
  readonly name: string;
  readonly message: string;
}

/** Thrown once at startup, listing every problem found in the environment. */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(`invalid configuration (${count}):\n${problems.map((p) => `  - ${p.message}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Mesh keys with ids, so that keys rotate without downtime: `current` signs, every key in `all`
 * (current included) verifies.
 */
export type Keyring = { current: { id: string; key: Buffer }; all: Map<string, Buffer> };

export interface HostPort {
  host: string;
  port: number;
  /** `host:port`, with IPv6 hosts in brackets: usable as a gRPC target. */
  address: string;
}

/** Paths of PEM files for mTLS: our certificate chain, its private key, and the CA that signs peers. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

interface ReadOptions {
  /** Never show the value in an error message. */
  secret?: boolean;
}

const MIN_KEY_BYTES = 32;
// Ids are at most 32 characters while a 32-byte key is at least 43 in base64, so key material
// typed where an id belongs can never pass as an id and be echoed in an error message.
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+)$/;
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const SHOWN_VALUE_MAX = 80;

/**
 * Reads typed values from the environment and collects every problem instead of stopping at
 * the first one; `finish()` throws a single ConfigError listing them all.
 *
 * Empty or blank values count as unset: Kubernetes and shell scripts often set `NAME=` to mean
 * "nothing". Each reader returns a usable placeholder (the default, or a zero value) when the
 * variable is bad, so a loader can read everything before calling `finish()`.
 */
export class EnvReader {
  private readonly problems: ConfigProblem[] = [];

  constructor(private readonly env: Env = process.env) {}

  /** Records a problem that no single reader can see, e.g. variables that must come together. */
  problem(name: string, message: string): void {
    this.problems.push({ name, message: `${name}: ${message}` });
  }

  /** Throws a ConfigError when any reader found a problem. */
  finish(): void {
    if (this.problems.length > 0) throw new ConfigError([...this.problems]);
  }

  /** The raw value, or undefined when unset or blank. */
  raw(name: string): string | undefined {
    const value = this.env[name];
    if (value === undefined) return undefined;
    const trimmed = value.trim();
    return trimmed === "" ? undefined : trimmed;
  }

  /** A required string (or `opts.default`), optionally matching `opts.pattern`. */
  string(name: string, opts: ReadOptions & { default?: string; pattern?: RegExp; expected?: string } = {}): string {
    const value = this.optionalString(name, opts);
    if (value !== undefined) return value;
    if (opts.default !== undefined) return opts.default;
    if (this.raw(name) === undefined) this.missing(name, opts.expected ?? describePattern(opts.pattern));
    return "";
  }

  optionalString(name: string, opts: ReadOptions & { pattern?: RegExp; expected?: string } = {}): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (opts.pattern && !opts.pattern.test(value)) {
      this.bad(name, value, opts.expected ?? describePattern(opts.pattern), opts.secret);
      return undefined;
    }
    return value;
  }

  /** An integer in [min, max] (defaults: any safe integer). */
  int(name: string, opts: { default?: number; min?: number; max?: number } = {}): number {
    const value = this.optionalInt(name, opts);
    if (value !== undefined) return value;
    if (opts.default !== undefined) return opts.default;
    if (this.raw(name) === undefined) this.missing(name, describeRange("an integer", opts.min, opts.max));
    return opts.min ?? 0;
  }

  optionalInt(name: string, opts: { min?: number; max?: number } = {}): number | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const expected = describeRange("an integer", opts.min, opts.max);
    if (!/^[+-]?\d+$/.test(value)) {
      this.bad(name, value, expected);
      return undefined;
    }
    const n = Number(value);
    if (!Number.isSafeInteger(n) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
      this.bad(name, value, expected);
      return undefined;
    }
    return n;
  }

  /** A TCP port, 1-65535; with `allowZero`, 0 means "any free port". */
  port(name: string, defaultPort?: number, opts: { allowZero?: boolean } = {}): number {
    return this.int(name, { default: defaultPort, min: opts.allowZero ? 0 : 1, max: 65535 });
  }

  optionalPort(name: string, opts: { allowZero?: boolean } = {}): number | undefined {
    return this.optionalInt(name, { min: opts.allowZero ? 0 : 1, max: 65535 });
  }

  /** A duration in milliseconds: plain milliseconds ("1500") or with a unit ("500ms", "30s", "2m", "1h"). */
  durationMs(name: string, defaultMs?: number, opts: { min?: number; max?: number } = {}): number {
    const value = this.optionalDurationMs(name, opts);
    if (value !== undefined) return value;
    if (defaultMs !== undefined) return defaultMs;
    if (this.raw(name) === undefined) this.missing(name, describeDuration(opts.min, opts.max));
    return opts.min ?? 0;
  }

  optionalDurationMs(name: string, opts: { min?: number; max?: number } = {}): number | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const ms = parseDurationMs(value);
    if (ms === undefined || (opts.min !== undefined && ms < opts.min) || (opts.max !== undefined && ms > opts.max)) {
      this.bad(name, value, describeDuration(opts.min, opts.max));
      return undefined;
    }
    return ms;
  }

  /** "true"/"false"/"1"/"0", any case. */
  bool(name: string, defaultValue?: boolean): boolean {
    const value = this.raw(name);
    const expected = 'one of "true", "false", "1", "0"';
    if (value === undefined) {
      if (defaultValue !== undefined) return defaultValue;
      this.missing(name, expected);
      return false;
    }
    switch (value.toLowerCase()) {
      case "true":
      case "1":
        return true;
      case "false":
      case "0":
        return false;
      default:
        this.bad(name, value, expected);
        return defaultValue ?? false;
    }
  }

  /** One of `allowed` (exact match). */
  enum<T extends string>(name: string, allowed: readonly T[], defaultValue?: T): T {
    const value = this.raw(name);
    const expected = `one of ${allowed.map((a) => `"${a}"`).join(", ")}`;
    if (value === undefined) {
      if (defaultValue !== undefined) return defaultValue;
      this.missing(name, expected);
      return allowed[0] as T;
    }
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.bad(name, value, expected);
    return defaultValue ?? (allowed[0] as T);
  }

  /** An absolute URL, optionally limited to some schemes (e.g. `["redis:", "rediss:"]`). */
  url(name: string, protocols?: readonly string[], defaultUrl?: string): string {
    const value = this.optionalUrl(name, protocols);
    if (value !== undefined) return value;
    if (defaultUrl !== undefined) return defaultUrl;
    if (this.raw(name) === undefined) this.missing(name, describeUrl(protocols));
    return "";
  }

  /** Like `url`, undefined when unset. Passwords inside the URL are never shown in messages. */
  optionalUrl(name: string, protocols?: readonly string[]): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      this.problems.push({ name, message: `${name}=${showUrl(value)}: expected ${describeUrl(protocols)}` });
      return undefined;
    }
    if (protocols && !protocols.includes(parsed.protocol)) {
      this.problems.push({ name, message: `${name}=${showUrl(value)}: expected ${describeUrl(protocols)}` });
      return undefined;
    }
    return value;
  }

  /** Comma-separated items, trimmed, empty items dropped; each must match `opts.pattern` when given. */
  list(name: string, opts: { default?: readonly string[]; pattern?: RegExp; expected?: string } = {}): string[] {
    const value = this.raw(name);
    if (value === undefined) return opts.default ? [...opts.default] : [];
    const items = value
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    const pattern = opts.pattern;
    if (pattern) {
      const badItems = items.filter((item) => !pattern.test(item));
      if (badItems.length > 0) {
        const expected = opts.expected ?? describePattern(pattern);
        this.bad(name, value, `a comma-separated list of ${expected} (bad: ${badItems.map((b) => `"${b}"`).join(", ")})`);
        return opts.default ? [...opts.default] : [];
      }
    }
    return items;
  }

  /** "host:port" (IPv6 as "[::1]:port"), port 1-65535. */
  hostPort(name: string, defaultValue?: string): HostPort {
    const value = this.optionalHostPort(name);
    if (value !== undefined) return value;
    if (defaultValue !== undefined) {
      const parsed = parseHostPort(defaultValue);
      if (parsed) return parsed;
    }
    if (this.raw(name) === undefined) this.missing(name, 'an address "host:port"');
    return { host: "", port: 0, address: "" };
  }

  optionalHostPort(name: string): HostPort | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const parsed = parseHostPort(value);
    if (!parsed) this.bad(name, value, 'an address "host:port" with a port 1-65535 (IPv6 as "[::1]:port")');
    return parsed;
  }

  /**
   * A gRPC target for a client channel: "host:port" (resolved by DNS, every address it returns
   * is a backend), or a grpc-js target URI: "dns:///host:port", "ipv4:a:p,b:p", "ipv6:[a]:p,[b]:p".
   */
  grpcTarget(name: string): string {
    const value = this.raw(name);
    const expected = 'a gRPC target: "host:port", "dns:///host:port" or "ipv4:host:port,host:port"';
    if (value === undefined) {
      this.missing(name, expected);
      return "";
    }
    const target = parseGrpcTarget(value);
    if (target === undefined) this.bad(name, value, expected);
    return target ?? "";
  }

  /**
   * A secret keyring `id1:base64key1,id2:base64key2`: the first key is current (signs), the rest
   * are previous keys still accepted (verify). Each key must decode to at least 32 bytes.
   * Problems name the variable and the key id or position, never the key material.
   */
  keyring(name: string, opts: { minKeyBytes?: number } = {}): Keyring {
    const keyring = this.optionalKeyring(name, opts);
    if (keyring !== undefined) return keyring;
    if (this.raw(name) === undefined) this.missing(name, `a keyring "id1:base64key1,id2:base64key2" (current key first)`);
    return placeholderKeyring();
  }

  optionalKeyring(name: string, opts: { minKeyBytes?: number } = {}): Keyring | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const minBytes = opts.minKeyBytes ?? MIN_KEY_BYTES;
    const faults: string[] = [];
    const entries: Array<[string, Buffer]> = [];
    const seen = new Set<string>();
    const parts = value
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    parts.forEach((part, index) => {
      const where = `entry ${index + 1}`;
      const colon = part.indexOf(":");
      if (colon < 0) {
        faults.push(`${where} is not "id:base64key"`);
        return;
      }
      const id = part.slice(0, colon).trim();
      const encoded = part.slice(colon + 1).trim();
      if (!KEY_ID_PATTERN.test(id)) {
        faults.push(`${where} has an invalid key id (expected 1-32 of A-Z, a-z, 0-9, ".", "_", "-")`);
        return;
      }
      if (seen.has(id)) {
        faults.push(`key id "${id}" appears twice`);
        return;
      }
      seen.add(id);
      if (!BASE64_PATTERN.test(encoded)) {
        faults.push(`key "${id}" is not valid base64`);
        return;
      }
      const key = Buffer.from(encoded, encoded.includes("-") || encoded.includes("_") ? "base64url" : "base64");
      if (key.length < minBytes) {
        faults.push(`key "${id}" decodes to ${key.length} bytes, at least ${minBytes} are required`);
        return;
      }
      entries.push([id, key]);
    });
    if (entries.length === 0 && faults.length === 0) faults.push("no keys");
    if (faults.length > 0) {
      this.problems.push({
        name,
        message:
          `${name}=<secret, not shown>: ${faults.join("; ")}; expected "id1:base64key1,id2:base64key2" ` +
          `with keys of at least ${minBytes} bytes (e.g. from \`openssl rand -base64 ${minBytes}\`)`,
      });
      return undefined;
    }
    const first = entries[0];
    if (!first) return undefined;
    return makeKeyring(first[0], new Map(entries));
  }

  /** A path to a readable regular file. */
  file(name: string): string {
    const value = this.optionalFile(name);
    if (value !== undefined) return value;
    if (this.raw(name) === undefined) this.missing(name, "a path to a readable file");
    return "";
  }

  optionalFile(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      if (!statSync(value).isFile()) {
        this.bad(name, value, "a path to a readable file (this is not a regular file)");
        return undefined;
      }
      accessSync(value, fsConstants.R_OK);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "cannot read it";
      this.bad(name, value, `a path to a readable file (${reason})`);
      return undefined;
    }
    return value;
  }

  private missing(name: string, expected: string): void {
    this.problems.push({ name, message: `${name} is not set: expected ${expected}` });
  }

  private bad(name: string, value: string, expected: string, secret = false): void {
    this.problems.push({ name, message: `${name}=${secret ? "<secret, not shown>" : showValue(value)}: expected ${expected}` });
  }
}

/** Parses "1500", "500ms", "30s", "2m", "1h" into milliseconds; undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = DURATION_UNIT_MS[match[2] ?? "ms"] ?? 1;
  const ms = amount * unit;
  if (!Number.isSafeInteger(ms)) return undefined;
  return ms;
}

/** Parses "host:port" or "[v6]:port"; undefined when malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const v6 = match[1];
  const host = v6 ?? match[2] ?? "";
  const port = Number(match[3]);
  if (host === "" || port < 1 || port > 65535) return undefined;
  return { host, port, address: v6 ? `[${v6}]:${port}` : `${host}:${port}` };
}

/** Validates a gRPC target ("host:port", "dns:[//authority]/host:port", "ipv4:…", "ipv6:…"); undefined when malformed. */
export function parseGrpcTarget(text: string): string | undefined {
  const value = text.trim();
  if (parseHostPort(value)) return value;
  const dns = /^dns:(?:\/\/[^/]*\/)?(.+)$/.exec(value);
  if (dns) return parseHostPort(dns[1]!) ? value : undefined;
  const ip = /^(ipv4|ipv6):(.+)$/.exec(value);
  if (!ip) return undefined;
  const addresses = ip[2]!.split(",").map((a) => parseHostPort(a));
  const family = ip[1] === "ipv4" ? 4 : 6;
  return addresses.every((a) => a !== undefined && isIP(a.host) === family) ? value : undefined;
}

/** A keyring from ids and keys; the first entry of `all` need not be `currentId`. */
export function makeKeyring(currentId: string, all: Map<string, Buffer>): Keyring {
  const current = all.get(currentId);
  if (!current) throw new Error(`keyring has no key "${currentId}"`);
  const keyring: Keyring = { current: { id: currentId, key: current }, all };
  // A keyring that ends up in a log line or a debugger shows its ids only, never key bytes.
  const describe = (): string => `Keyring(current=${currentId}, ids=[${[...all.keys()].join(",")}])`;
  Object.defineProperty(keyring, "toJSON", { value: () => describe(), enumerable: false });
  Object.defineProperty(keyring, inspect.custom, { value: () => describe(), enumerable: false });
  Object.defineProperty(keyring.current, "toJSON", { value: () => ({ id: currentId }), enumerable: false });
  return keyring;
}

function placeholderKeyring(): Keyring {
  return makeKeyring("unset", new Map([["unset", Buffer.alloc(MIN_KEY_BYTES)]]));
}

function showValue(value: string): string {
  const shown = value.length > SHOWN_VALUE_MAX ? `${value.slice(0, SHOWN_VALUE_MAX)}…` : value;
  return JSON.stringify(shown);
}

function showUrl(value: string): string {
  // Hide the whole user info ("user:password@"), even when the rest does not parse: some
  // servers take a password alone in the user part.
  return showValue(value.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, "$1***@"));
}

function describePattern(pattern: RegExp | undefined): string {
  return pattern ? `a value matching ${pattern.source}` : "a value";
}

function describeRange(what: string, min: number | undefined, max: number | undefined, unit = ""): string {
  if (min !== undefined && max !== undefined) return `${what} from ${min}${unit} to ${max}${unit}`;
  if (min !== undefined) return `${what} >= ${min}${unit}`;
  if (max !== undefined) return `${what} <= ${max}${unit}`;
  return what;
}

function describeDuration(min: number | undefined, max: number | undefined): string {
  return describeRange('a duration in ms ("1500") or with a unit ("500ms", "30s", "2m", "1h")', min, max, " ms");
}

function describeUrl(protocols: readonly string[] | undefined): string {
  return protocols && protocols.length > 0
    ? `a URL with scheme ${protocols.map((p) => p.replace(/:$/, "")).join(" or ")}`
    : "an absolute URL";
}

// ---------------------------------------------------------------------------------------------
// What every server shares.

export const ENV_NODE_ID = "NODE_ID";
export const ENV_GRPC_HOST = "GRPC_HOST";
export const ENV_GRPC_PORT = "GRPC_PORT";
export const ENV_METRICS_PORT = "METRICS_PORT";
export const ENV_REDIS_URL = "REDIS_URL";
export const ENV_K1_KEYS = "UIMS_K1_KEYS";
export const ENV_SHUTDOWN_GRACE_MS = "SHUTDOWN_GRACE_MS";
export const ENV_TLS_CERT_FILE = "TLS_CERT_FILE";
export const ENV_TLS_KEY_FILE = "TLS_KEY_FILE";
export const ENV_TLS_CA_FILE = "TLS_CA_FILE";
export const ENV_LOG_LEVEL = "LOG_LEVEL";
export const ENV_TSCS_WINDOW_MS = "TSCS_WINDOW_MS";

export const DEFAULT_GRPC_HOST = "0.0.0.0";
export const DEFAULT_GRPC_PORT = 50051;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
export const DEFAULT_LOG_LEVEL = "info";
export const DEFAULT_TSCS_WINDOW_MS = 30_000;
export const ENV_MESH_STREAM_LIFETIME_MS = "MESH_STREAM_LIFETIME_MS";
/** A minute: new broker replicas get streams within about that long of being reachable. */
export const DEFAULT_MESH_STREAM_LIFETIME_MS = 60_000;

export const NODE_ID_PATTERN = /^[a-z0-9-]{1,63}$/;
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface CommonConfig {
  /** This node's mesh identity, e.g. "broker-0", "gw-im-1". */
  nodeId: string;
  grpcHost: string;
  /** 0 binds any free port. */
  grpcPort: number;
  metricsPort?: number;
  /** Unset: the in-process store. */
  redisUrl?: string;
  /** The mesh key K1 (current and previous). */
  k1: Keyring;
  shutdownGraceMs: number;
  /** Set: mTLS on the server and on every outbound mesh call. */
  tls?: TlsFiles;
  logLevel: LogLevel;
  /** TSCS login time window. */
  tscsWindowMs: number;
  /**
   * How long this node sends new calls on one multiplexed stream to a peer before it opens the
   * next (the old one finishes its calls): new streams spread over every replica the channel
   * knows, so replicas added later get their share.
   */
  meshStreamLifetimeMs: number;
}

/**
 * Reads the shared variables into `r` without finishing, so a server's own loader can read its
 * variables too and report every problem in one ConfigError.
 */
export function readCommonConfig(r: EnvReader): CommonConfig {
  const nodeId = r.string(ENV_NODE_ID, { pattern: NODE_ID_PATTERN, expected: "1-63 of a-z, 0-9, -" });
  const grpcHost = r.string(ENV_GRPC_HOST, { default: DEFAULT_GRPC_HOST });
  // Port 0 is allowed so that tests and a local mesh can take any free port.
  const grpcPort = r.port(ENV_GRPC_PORT, DEFAULT_GRPC_PORT, { allowZero: true });
  const metricsPort = r.optionalPort(ENV_METRICS_PORT, { allowZero: true });
  const redisUrl = r.optionalUrl(ENV_REDIS_URL, ["redis:", "rediss:"]);
  const k1 = r.keyring(ENV_K1_KEYS);
  const shutdownGraceMs = r.durationMs(ENV_SHUTDOWN_GRACE_MS, DEFAULT_SHUTDOWN_GRACE_MS, { min: 0, max: 600_000 });
  const logLevel = r.enum(ENV_LOG_LEVEL, LOG_LEVELS, DEFAULT_LOG_LEVEL);
  const tscsWindowMs = r.durationMs(ENV_TSCS_WINDOW_MS, DEFAULT_TSCS_WINDOW_MS, { min: 1_000, max: 600_000 });
  const meshStreamLifetimeMs = r.durationMs(ENV_MESH_STREAM_LIFETIME_MS, DEFAULT_MESH_STREAM_LIFETIME_MS, { min: 1_000, max: 86_400_000 });
  const tls = readTlsFiles(r);
  const config: CommonConfig = { nodeId, grpcHost, grpcPort, k1, shutdownGraceMs, logLevel, tscsWindowMs, meshStreamLifetimeMs };
  if (metricsPort !== undefined) config.metricsPort = metricsPort;
  if (redisUrl !== undefined) config.redisUrl = redisUrl;
  if (tls !== undefined) config.tls = tls;
  return config;
}

/** Reads and validates the shared variables; throws one ConfigError listing every problem. */
export function loadCommonConfig(env: Env = process.env): CommonConfig {
  const r = new EnvReader(env);
  const config = readCommonConfig(r);
  r.finish();
  return config;
}

/** TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE: all three (mTLS) or none (plaintext). */
export function readTlsFiles(r: EnvReader): TlsFiles | undefined {
  const names = [ENV_TLS_CERT_FILE, ENV_TLS_KEY_FILE, ENV_TLS_CA_FILE];
  const set = names.filter((n) => r.raw(n) !== undefined);
  if (set.length === 0) return undefined;
  if (set.length < names.length) {
    const unset = names.filter((n) => !set.includes(n));
    r.problem(unset.join(", "), `mTLS needs ${names.join(", ")} together, but only ${set.join(", ")} ${set.length === 1 ? "is" : "are"} set`);
    return undefined;
  }
  const certFile = r.file(ENV_TLS_CERT_FILE);
  const keyFile = r.file(ENV_TLS_KEY_FILE);
  const caFile = r.file(ENV_TLS_CA_FILE);
  if (certFile === "" || keyFile === "" || caFile === "") return undefined;
  return { certFile, keyFile, caFile };
}
