/**
 * The storage contract shared by every server. Two implementations honour it identically: Redis
 * (`redis-store.ts`, several replicas share state through it) and an in-process store
 * (`memory-store.ts`, the embedded default when no Redis is configured). Keys are plain strings;
 * each store prepends its own prefix transparently. TTLs are in milliseconds.
 */
export interface Store {
  readonly kind: "redis" | "memory";
  get(key: string): Promise<string | null>;
  /**
   * GET of raw bytes, for content: no text encoding on the way in or out (a text encoding of a
   * megabyte of content costs more than the round trip).
   */
  getBytes(key: string): Promise<Buffer | null>;
  /** One value per key, in the order given (MGET). */
  getMany(keys: string[]): Promise<(string | null)[]>;
  /** Plain SET: replaces any value and any previous TTL; without `ttlMs` the key never expires. */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /**
   * Several plain SETs with one TTL in one round trip (e.g. a batch of session keys). Not
   * atomic as a whole; each key is set as by `set`.
   */
  setMany(entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void>;
  /** `set` of raw bytes. */
  setBytes(key: string, value: Uint8Array, ttlMs?: number): Promise<void>;
  /** SET NX (with optional TTL). true when this call created the key. */
  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean>;
  /** Atomic get-and-delete (GETDEL). Second caller gets null. */
  take(key: string): Promise<string | null>;
  /** Number of the given keys that existed (DEL). */
  del(...keys: string[]): Promise<number>;
  /**
   * Sets a TTL on an existing key of any kind (PEXPIRE). false when the key does not exist.
   * This is how sorted sets and streams get an expiry.
   */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /**
   * Atomic: if current value === expected (null = key absent) then set to next (null = delete),
   * optional TTL. Returns whether it swapped. Like `set`, a swap without `ttlMs` leaves the key
   * without expiry.
   */
  compareAndSet(key: string, expected: string | null, next: string | null, ttlMs?: number): Promise<boolean>;
  /** Hash counters (HINCRBY for each field, integers only), optional TTL refresh on the key. Atomic. */
  incrementFields(key: string, increments: Record<string, number>, ttlMs?: number): Promise<void>;
  /**
   * Takes one token from the token bucket under `key` (a hash: tokens and when they were
   * counted), which refills at `ratePerSecond` up to `burst`. Resolves 0 when a token was taken,
   * otherwise the milliseconds until the next one. Atomic, on the store's own clock, so that
   * replicas sharing a store share the bucket. A bucket left alone expires once it is full again.
   */
  takeToken(key: string, ratePerSecond: number, burst: number): Promise<number>;
  /** All fields of a hash; {} when the key does not exist. */
  getFields(key: string): Promise<Record<string, string>>;
  /** Sorted set: adds the member or updates its score (ZADD). */
  sortedAdd(key: string, member: string, score: number): Promise<void>;
  /** ZREM; true when this call removed it (used to claim work among replicas). */
  sortedRemove(key: string, member: string): Promise<boolean>;
  /**
   * Members with min <= score <= max, ascending by score (ties by member, bytewise), at most
   * limit. ±Infinity are allowed as bounds.
   */
  sortedRangeByScore(key: string, min: number, max: number, limit: number): Promise<Array<{ member: string; score: number }>>;
  /**
   * Members of a score-0 sorted set in lexicographic (UTF-8 byte) order strictly after `after`
   * ("" = from the start), at most limit (ZRANGEBYLEX).
   */
  sortedRangeByMember(key: string, after: string, limit: number): Promise<string[]>;
  sortedCount(key: string): Promise<number>;
  /**
   * Append-only log with monotonically increasing ids "<ms>-<seq>" that compare like Redis
   * stream ids. Returns the new id. `maxLen` trims approximately: at least the newest `maxLen`
   * entries are kept. Values are bytes (a string is stored as its UTF-8).
   */
  streamAppend(key: string, value: Uint8Array | string, maxLen?: number): Promise<string>;
  /** Entries with id strictly greater than afterId ("" or "0" = from the start), oldest first, at most count. */
  streamRange(key: string, afterId: string, count: number): Promise<Array<{ id: string; value: Buffer }>>;
  /** Delete one entry by id (XDEL). The stream keeps its last id, so later ids still increase. */
  streamDelete(key: string, id: string): Promise<void>;
  /**
   * Keys matching a glob pattern (Redis MATCH syntax: `*`, `?`, `[...]`, `\` escapes), relative
   * to the store's prefix, for admin/recovery scans only (SCAN, never KEYS). Returned without
   * the prefix, in no particular order, without duplicates. No limit = every matching key.
   */
  scanKeys(pattern: string, limit?: number): Promise<string[]>;
  /** Milliseconds of one round trip; throws StoreUnavailableError when the backend is unreachable. */
  ping(): Promise<number>;
  /** Lets pending commands finish, then releases the connection (or timers). Later calls throw StoreUnavailableError. */
  close(): Promise<void>;
}

/**
 * The backend cannot be reached (connection refused or lost, reconnecting, store closed).
 * Callers map it to gRPC UNAVAILABLE: the operation may be retried. The original failure is in
 * `cause` for logging.
 */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const DEFAULT_PREFIX = "uims:";

/** Redis's reply when a command meets a key of another kind; the memory store throws the same. */
export const WRONGTYPE_MESSAGE = "WRONGTYPE Operation against a key holding the wrong kind of value";

// Argument checks shared by both stores, so that bad input fails the same way whichever backend
// runs (Redis would otherwise answer with its own error text, the memory store with none).

/** Redis accepts only positive integer PX values; fractional TTLs round up so they never expire early. */
export function normalizeTtl(ttlMs: number | undefined): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`TTL must be a positive number of milliseconds, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}

export function checkScore(score: number): void {
  if (Number.isNaN(score)) throw new RangeError("sorted set score must not be NaN");
}

export function checkBucket(ratePerSecond: number, burst: number): void {
  if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`token rate must be a positive number, got ${ratePerSecond}`);
  if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`token burst must be at least 1, got ${burst}`);
}

/** How long an untouched bucket lives: until it is full again, and a second more. */
export function bucketTtlMs(ratePerSecond: number, burst: number): number {
  return Math.ceil((burst / ratePerSecond) * 1000) + 1000;
}

/** The bucket arithmetic both stores share: refill since `at`, then take a token if there is one. */
export function refillAndTake(tokens: number, at: number, now: number, ratePerSecond: number, burst: number): { tokens: number; waitMs: number } {
  const available = Math.min(burst, tokens + (Math.max(0, now - at) / 1000) * ratePerSecond);
  if (available >= 1) return { tokens: available - 1, waitMs: 0 };
  return { tokens: available, waitMs: Math.max(1, Math.ceil(((1 - available) / ratePerSecond) * 1000)) };
}

export function checkIncrement(field: string, by: number): void {
  if (!Number.isSafeInteger(by)) throw new RangeError(`increment for field "${field}" must be a safe integer, got ${by}`);
}

/** Counts are whole numbers; a non-positive count asks for nothing. */
export function normalizeCount(count: number): number {
  if (Number.isNaN(count)) throw new RangeError("count must be a number");
  return count === Infinity ? Number.MAX_SAFE_INTEGER : Math.max(0, Math.floor(count));
}

export function normalizeMaxLen(maxLen: number | undefined): number | undefined {
  if (maxLen === undefined) return undefined;
  if (!(maxLen >= 1)) throw new RangeError(`stream maxLen must be at least 1, got ${maxLen}`);
  return maxLen === Infinity ? undefined : Math.floor(maxLen);
}

/** Escapes glob metacharacters in the store prefix so that SCAN MATCH treats it literally. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, "\\$&");
}
