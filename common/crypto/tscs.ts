import { randomBytes } from "node:crypto";
import type { CallAuth, Login, LoginKey, SessionGrant } from "../../gen/uims/common/v1/auth";
import { InvalidArgumentError, UnauthenticatedError } from "../errors";
import type { Store } from "../store";
import { hmacSha256, type CanonicalField } from "./canonical";
import { macWith, verifyMacWith, type Keyring } from "./keys";
import { Label } from "./labels";

/** The TSCS set-up (patent 0020-0032) and the single-use session keys it hands out. */

export const NONCE_BYTES = 16;
export const SESSION_KEY_BYTES = 32;
export const MAX_KEYS_PER_LOGIN = 256;

function loginFields(key: LoginKey, keyCount: number): CanonicalField[] {
  return [key.nodeId, key.timestampUnixMs, key.nonce, key.keyId, key.audience, keyCount];
}

function grantFields(grant: Omit<SessionGrant, "mac">, login: LoginKey): CanonicalField[] {
  const fields: CanonicalField[] = [grant.nodeId, login.nodeId, login.nonce, grant.keys.length];
  for (const k of grant.keys) fields.push(k.key, k.expiresAtUnixMs);
  return fields;
}

/** Caller side: a fresh login key C for `audience`, with HMAC(K1, C). */
export function createLogin(k1: Keyring, nodeId: string, audience: string, keyCount: number, nowMs: number): Login {
  const key: LoginKey = { nodeId, timestampUnixMs: nowMs, nonce: randomBytes(NONCE_BYTES), keyId: k1.current.id, audience };
  return { key, mac: macWith(k1, Label.login, loginFields(key, keyCount)).mac, keyCount };
}

/** Caller side: checks that a grant answers our own login and comes from a K1 holder. */
export function grantValid(k1: Keyring, login: Login, grant: SessionGrant): boolean {
  if (!login.key || grant.nodeId !== login.key.audience || grant.keys.length !== login.keyCount) return false;
  return verifyMacWith(k1, grant.keyId, Label.grant, grantFields(grant, login.key), grant.mac);
}

/** Caller side: authenticates one call with a session key: HMAC(K1, label || fields || C_ack). */
export function signCall(k1: Keyring, nodeId: string, sessionKey: Buffer, label: string, fields: readonly CanonicalField[]): CallAuth {
  const { keyId, mac } = macWith(k1, label, [nodeId, ...fields, sessionKey]);
  return { nodeId, keyId, sessionKey, mac };
}

export interface TscsAuthorityOptions {
  /** The logical callee the keys are for: "broker" for every broker replica, a gateway's node id otherwise. */
  audience: string;
  k1: Keyring;
  store: Store;
  windowMs: number;
  sessionKeyTtlMs: number;
  clock?: () => number;
}

/** Callee side: checks logins, issues session keys, and consumes them once each. */
export class TscsAuthority {
  private readonly clock: () => number;

  constructor(private readonly opts: TscsAuthorityOptions) {
    this.clock = opts.clock ?? Date.now;
  }

  get audience(): string {
    return this.opts.audience;
  }

  async setUp(login: Login | undefined): Promise<SessionGrant> {
    const key = login?.key;
    if (!login || !key) throw new InvalidArgumentError("login", "login key is required");
    if (!key.nodeId) throw new InvalidArgumentError("login.key.node_id", "must not be empty");
    if (key.nonce.length < NONCE_BYTES || key.nonce.length > 64) throw new InvalidArgumentError("login.key.nonce", `must be ${NONCE_BYTES} to 64 bytes`);
    if (login.keyCount < 1 || login.keyCount > MAX_KEYS_PER_LOGIN) throw new InvalidArgumentError("login.key_count", `must be 1 to ${MAX_KEYS_PER_LOGIN}`);
    if (key.audience !== this.opts.audience) throw new UnauthenticatedError(`login is meant for "${key.audience}", not "${this.opts.audience}"`);
    if (!this.opts.k1.all.has(key.keyId)) throw new UnauthenticatedError(`unknown mesh key id "${key.keyId}"`);
    if (!verifyMacWith(this.opts.k1, key.keyId, Label.login, loginFields(key, login.keyCount), login.mac)) throw new UnauthenticatedError("login MAC does not verify");
    const now = this.clock();
    const skew = key.timestampUnixMs - now;
    if (Math.abs(skew) > this.opts.windowMs) {
      throw new UnauthenticatedError(`login timestamp is ${skew > 0 ? "in the future" : "stale"} by ${Math.abs(skew)} ms (window ${this.opts.windowMs} ms)`);
    }
    // Remembered for twice the window: a login older than one window is refused by its timestamp anyway.
    const nonceKey = `tscs:nonce:${this.opts.audience}:${key.nodeId}:${key.nonce.toString("hex")}`;
    if (!(await this.opts.store.setIfAbsent(nonceKey, "1", 2 * this.opts.windowMs))) {
      throw new UnauthenticatedError("login nonce was already used (replayed login key)");
    }
    const expiresAtUnixMs = now + this.opts.sessionKeyTtlMs;
    const keys = Array.from({ length: login.keyCount }, () => ({ key: randomBytes(SESSION_KEY_BYTES), expiresAtUnixMs }));
    await this.opts.store.setMany(
      keys.map((k) => [this.sessionKeyName(k.key), key.nodeId] as const),
      this.opts.sessionKeyTtlMs,
    );
    const unsigned = { nodeId: this.opts.audience, keys, keyId: this.opts.k1.current.id };
    return { ...unsigned, mac: hmacSha256(this.opts.k1.current.key, Label.grant, grantFields(unsigned, key)) };
  }

  /**
   * Checks a call's MAC, then consumes its session key atomically. Returns the caller's node id.
   * The MAC is checked first so that a forged call cannot burn a valid key.
   */
  async authenticate(auth: CallAuth | undefined, label: string, fields: readonly CanonicalField[]): Promise<string> {
    if (!auth) throw new UnauthenticatedError("call authentication is required");
    if (!auth.nodeId) throw new UnauthenticatedError("auth.node_id must not be empty");
    if (auth.sessionKey.length !== SESSION_KEY_BYTES) throw new UnauthenticatedError(`auth.session_key must be ${SESSION_KEY_BYTES} bytes`);
    if (!this.opts.k1.all.has(auth.keyId)) throw new UnauthenticatedError(`unknown mesh key id "${auth.keyId}"`);
    if (!verifyMacWith(this.opts.k1, auth.keyId, label, [auth.nodeId, ...fields, auth.sessionKey], auth.mac)) {
      throw new UnauthenticatedError("call MAC does not verify");
    }
    const owner = await this.opts.store.take(this.sessionKeyName(auth.sessionKey));
    if (owner === null) throw new UnauthenticatedError("session key is unknown, expired or already used");
    if (owner !== auth.nodeId) throw new UnauthenticatedError(`session key was issued to "${owner}", not "${auth.nodeId}"`);
    return auth.nodeId;
  }

  private sessionKeyName(key: Uint8Array): string {
    return `tscs:sk:${this.opts.audience}:${Buffer.from(key).toString("hex")}`;
  }
}

export interface SessionKeyPoolOptions {
  k1: Keyring;
  nodeId: string;
  audience: string;
  /** Keys asked for per set-up. */
  batch: number;
  setUp: (login: Login) => Promise<SessionGrant>;
  clock?: () => number;
  /** Keys closer than this to expiry are not used (they could expire in flight). */
  safetyMarginMs?: number;
}

/**
 * Caller side: a pool of single-use session keys for one callee. A set-up returns a batch of
 * keys so that a busy caller pays for one login per batch, not per call; each key is still used
 * once. Concurrent acquirers share one set-up in flight.
 */
export class SessionKeyPool {
  private keys: Array<{ key: Buffer; expiresAtUnixMs: number }> = [];
  private refill: Promise<void> | null = null;
  private readonly clock: () => number;
  private readonly margin: number;

  constructor(private readonly opts: SessionKeyPoolOptions) {
    this.clock = opts.clock ?? Date.now;
    this.margin = opts.safetyMarginMs ?? 2_000;
  }

  async acquire(): Promise<Buffer> {
    for (;;) {
      const now = this.clock();
      while (this.keys.length > 0) {
        const next = this.keys.pop()!;
        if (next.expiresAtUnixMs - this.margin > now) {
          if (this.keys.length < this.opts.batch / 4) void this.startRefill().catch(() => undefined);
          return next.key;
        }
      }
      await this.startRefill();
    }
  }

  /** Drops every key, e.g. after the callee restarted with another store. */
  clear(): void {
    this.keys = [];
  }

  private startRefill(): Promise<void> {
    if (!this.refill) {
      this.refill = this.fetch().finally(() => {
        this.refill = null;
      });
    }
    return this.refill;
  }

  private async fetch(): Promise<void> {
    const login = createLogin(this.opts.k1, this.opts.nodeId, this.opts.audience, this.opts.batch, this.clock());
    const grant = await this.opts.setUp(login);
    if (!grantValid(this.opts.k1, login, grant)) throw new UnauthenticatedError(`session grant from "${this.opts.audience}" does not verify`);
    this.keys.push(...grant.keys.map((k) => ({ key: Buffer.from(k.key), expiresAtUnixMs: k.expiresAtUnixMs })));
  }
}
