import {
  bucketTtlMs,
  checkBucket,
  checkIncrement,
  checkScore,
  normalizeCount,
  normalizeMaxLen,
  normalizeTtl,
  refillAndTake,
  StoreUnavailableError,
  WRONGTYPE_MESSAGE,
  type Store,
} from "./store";

export interface MemoryStoreOptions {
  /** How often expired keys that nobody reads are reclaimed. Default 1000 ms. */
  sweepIntervalMs?: number;
}

interface StringValue {
  kind: "string";
  /** Bytes when written by setBytes; read as text, they decode as UTF-8 (as node-redis does). */
  value: string | Buffer;
}

function text(value: string | Buffer): string {
  return typeof value === "string" ? value : value.toString();
}

/** A private copy: the caller may reuse its buffer, and a reader must not change the stored one. */
function copyOf(value: Uint8Array | string): Buffer {
  return Buffer.from(typeof value === "string" ? Buffer.from(value) : value);
}
interface HashValue {
  kind: "hash";
  fields: Map<string, string>;
}
interface SortedMember {
  member: string;
  score: number;
}
interface SortedValue {
  kind: "zset";
  scores: Map<string, number>;
  /** Kept ordered by (score, member bytes), as Redis's skiplist is, so ranges are binary searches. */
  ordered: SortedMember[];
}
interface StreamItem {
  ms: number;
  seq: number;
  id: string;
  value: Buffer;
}
interface StreamValue {
  kind: "stream";
  items: StreamItem[];
  /** Survives deletion of entries (as in Redis), so new ids never go backwards. */
  lastMs: number;
  lastSeq: number;
}
type Value = StringValue | HashValue | SortedValue | StreamValue;

/** Expired keys reclaimed per sweep tick, so that a large keyspace never stalls the event loop. */
const SWEEP_BUDGET = 10_000;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INVALID_STREAM_ID = "ERR Invalid stream ID specified as stream command argument";

/**
 * The in-process store: the product's embedded default when no Redis is configured (one process,
 * no replicas). It mirrors Redis semantics method for method, including the error texts of misuse
 * (WRONGTYPE, invalid stream ids), so code that passes against one passes against the other.
 *
 * Every operation runs synchronously inside its method, so each one is atomic, as a Redis command
 * or script is. Each instance is its own keyspace, so the key prefix has no observable effect here.
 */
export class MemoryStore implements Store {
  readonly kind = "memory" as const;
  readonly #data = new Map<string, Value>();
  /** Absolute expiry (epoch ms) of keys that have a TTL. */
  readonly #expiries = new Map<string, number>();
  #sweepCursor: Iterator<[string, number]> | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepIntervalMs ?? 1000);
    // The sweep is housekeeping: it must never keep the process alive on its own.
    this.#sweeper.unref();
  }

  /** Keys held, counting expired ones not yet reclaimed (for metrics and tests). */
  get size(): number {
    return this.#data.size;
  }

  async get(key: string): Promise<string | null> {
    const value = this.#read(key, "string")?.value;
    return value === undefined ? null : text(value);
  }

  async getBytes(key: string): Promise<Buffer | null> {
    const value = this.#read(key, "string")?.value;
    return value === undefined ? null : copyOf(value);
  }

  async getMany(keys: string[]): Promise<(string | null)[]> {
    this.#open();
    // MGET answers null for keys of another kind instead of failing.
    return keys.map((key) => {
      const value = this.#live(key);
      return value?.kind === "string" ? text(value.value) : null;
    });
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.#open();
    this.#put(key, { kind: "string", value }, normalizeTtl(ttlMs));
  }

  async setBytes(key: string, value: Uint8Array, ttlMs?: number): Promise<void> {
    this.#open();
    this.#put(key, { kind: "string", value: copyOf(value) }, normalizeTtl(ttlMs));
  }

  async setMany(entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void> {
    this.#open();
    const ttl = normalizeTtl(ttlMs);
    if (ttl === undefined) throw new RangeError("setMany needs a TTL");
    for (const [key, value] of entries) this.#put(key, { kind: "string", value }, ttl);
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    this.#open();
    const ttl = normalizeTtl(ttlMs);
    if (this.#live(key)) return false;
    this.#put(key, { kind: "string", value }, ttl);
    return true;
  }

  async take(key: string): Promise<string | null> {
    const current = this.#read(key, "string");
    if (!current) return null;
    this.#remove(key);
    return text(current.value);
  }

  async del(...keys: string[]): Promise<number> {
    this.#open();
    let removed = 0;
    for (const key of keys) {
      if (this.#live(key)) {
        this.#remove(key);
        removed++;
      }
    }
    return removed;
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    this.#open();
    const ttl = normalizeTtl(ttlMs) as number;
    if (!this.#live(key)) return false;
    this.#expiries.set(key, Date.now() + ttl);
    return true;
  }

  async compareAndSet(key: string, expected: string | null, next: string | null, ttlMs?: number): Promise<boolean> {
    this.#open();
    const ttl = normalizeTtl(ttlMs);
    const stored = this.#read(key, "string")?.value;
    const current = stored === undefined ? null : text(stored);
    if (current !== expected) return false;
    if (next === null) this.#remove(key);
    else this.#put(key, { kind: "string", value: next }, ttl);
    return true;
  }

  async incrementFields(key: string, increments: Record<string, number>, ttlMs?: number): Promise<void> {
    this.#open();
    const ttl = normalizeTtl(ttlMs);
    const entries = Object.entries(increments);
    for (const [field, by] of entries) checkIncrement(field, by);
    const hash = this.#read(key, "hash");
    // Validate every field before changing any, so a failure leaves the hash untouched.
    const results = entries.map(([field, by]): [string, string] => {
      const current = hash?.fields.get(field) ?? "0";
      if (!/^-?\d+$/.test(current)) throw new Error("ERR hash value is not an integer");
      const sum = BigInt(current) + BigInt(by);
      if (sum < INT64_MIN || sum > INT64_MAX) throw new Error("ERR increment or decrement would overflow");
      return [field, sum.toString()];
    });
    if (results.length > 0) {
      const target = hash ?? { kind: "hash", fields: new Map<string, string>() };
      for (const [field, value] of results) target.fields.set(field, value);
      if (!hash) this.#data.set(key, target);
    }
    if (ttl !== undefined && this.#data.has(key)) this.#expiries.set(key, Date.now() + ttl);
  }

  async takeToken(key: string, ratePerSecond: number, burst: number): Promise<number> {
    this.#open();
    checkBucket(ratePerSecond, burst);
    const now = Date.now();
    const hash = this.#read(key, "hash") ?? { kind: "hash" as const, fields: new Map<string, string>() };
    const tokens = Number(hash.fields.get("tokens") ?? burst);
    const at = Number(hash.fields.get("at") ?? now);
    const next = refillAndTake(tokens, at, now, ratePerSecond, burst);
    hash.fields.set("tokens", String(next.tokens));
    hash.fields.set("at", String(now));
    this.#data.set(key, hash);
    this.#expiries.set(key, now + bucketTtlMs(ratePerSecond, burst));
    return next.waitMs;
  }

  async getFields(key: string): Promise<Record<string, string>> {
    const hash = this.#read(key, "hash");
    return hash ? Object.fromEntries(hash.fields) : {};
  }

  async sortedAdd(key: string, member: string, score: number): Promise<void> {
    checkScore(score);
    let zset = this.#read(key, "zset");
    if (!zset) {
      zset = { kind: "zset", scores: new Map(), ordered: [] };
      this.#data.set(key, zset);
    }
    const previous = zset.scores.get(member);
    if (previous === score) return;
    if (previous !== undefined) zset.ordered.splice(findMember(zset.ordered, member, previous), 1);
    zset.scores.set(member, score);
    const at = lowerBound(zset.ordered.length, (i) => compareSorted(zset.ordered[i]!, member, score) < 0);
    zset.ordered.splice(at, 0, { member, score });
  }

  async sortedRemove(key: string, member: string): Promise<boolean> {
    const zset = this.#read(key, "zset");
    const score = zset?.scores.get(member);
    if (!zset || score === undefined) return false;
    zset.ordered.splice(findMember(zset.ordered, member, score), 1);
    zset.scores.delete(member);
    // Redis deletes a collection with its last element, TTL included.
    if (zset.scores.size === 0) this.#remove(key);
    return true;
  }

  async sortedRangeByScore(key: string, min: number, max: number, limit: number): Promise<Array<{ member: string; score: number }>> {
    checkScore(min);
    checkScore(max);
    const count = normalizeCount(limit);
    const zset = this.#read(key, "zset");
    if (!zset || count === 0) return [];
    const out: Array<{ member: string; score: number }> = [];
    const ordered = zset.ordered;
    for (let i = lowerBound(ordered.length, (j) => ordered[j]!.score < min); i < ordered.length && out.length < count; i++) {
      const item = ordered[i]!;
      if (item.score > max) break;
      out.push({ member: item.member, score: item.score });
    }
    return out;
  }

  async sortedRangeByMember(key: string, after: string, limit: number): Promise<string[]> {
    const count = normalizeCount(limit);
    const zset = this.#read(key, "zset");
    if (!zset || count === 0) return [];
    const ordered = zset.ordered;
    // Like ZRANGEBYLEX, this assumes equal scores, where score order is member order.
    const start = after === "" ? 0 : lowerBound(ordered.length, (i) => compareBytes(ordered[i]!.member, after) <= 0);
    return ordered.slice(start, start + count).map((item) => item.member);
  }

  async sortedCount(key: string): Promise<number> {
    return this.#read(key, "zset")?.scores.size ?? 0;
  }

  async streamAppend(key: string, value: Uint8Array | string, maxLen?: number): Promise<string> {
    const keep = normalizeMaxLen(maxLen);
    let stream = this.#read(key, "stream");
    if (!stream) {
      stream = { kind: "stream", items: [], lastMs: 0, lastSeq: 0 };
      this.#data.set(key, stream);
    }
    // Redis's rule for "*" ids: the clock, unless it has not moved past the last id.
    const now = Date.now();
    if (now > stream.lastMs) {
      stream.lastMs = now;
      stream.lastSeq = 0;
    } else {
      stream.lastSeq++;
    }
    const id = `${stream.lastMs}-${stream.lastSeq}`;
    stream.items.push({ ms: stream.lastMs, seq: stream.lastSeq, id, value: copyOf(value) });
    // Exact trimming satisfies the approximate contract (at least maxLen newest entries stay).
    if (keep !== undefined && stream.items.length > keep) stream.items.splice(0, stream.items.length - keep);
    return id;
  }

  async streamRange(key: string, afterId: string, count: number): Promise<Array<{ id: string; value: Buffer }>> {
    const from = afterId === "" || afterId === "0" ? { ms: 0, seq: -1 } : parseStreamId(afterId);
    const wanted = normalizeCount(count);
    const stream = this.#read(key, "stream");
    if (!stream || wanted === 0) return [];
    const items = stream.items;
    const start = lowerBound(items.length, (i) => compareIds(items[i]!, from) <= 0);
    return items.slice(start, start + wanted).map(({ id, value }) => ({ id, value: copyOf(value) }));
  }

  async streamDelete(key: string, id: string): Promise<void> {
    const target = parseStreamId(id);
    const stream = this.#read(key, "stream");
    if (!stream) return;
    const items = stream.items;
    const at = lowerBound(items.length, (i) => compareIds(items[i]!, target) < 0);
    if (at < items.length && compareIds(items[at]!, target) === 0) items.splice(at, 1);
  }

  async scanKeys(pattern: string, limit?: number): Promise<string[]> {
    this.#open();
    const max = limit === undefined ? Infinity : normalizeCount(limit);
    const out: string[] = [];
    for (const key of this.#data.keys()) {
      if (out.length >= max) break;
      if (this.#live(key) && globMatch(pattern, key)) out.push(key);
    }
    return out;
  }

  async ping(): Promise<number> {
    this.#open();
    const started = performance.now();
    await Promise.resolve();
    return performance.now() - started;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#data.clear();
    this.#expiries.clear();
  }

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError("store is closed");
  }

  /** The key's value unless it has expired (then it is reclaimed on the spot, as Redis does on access). */
  #live(key: string): Value | undefined {
    const at = this.#expiries.get(key);
    if (at !== undefined && at <= Date.now()) {
      this.#remove(key);
      return undefined;
    }
    return this.#data.get(key);
  }

  /** A live value of the given kind, undefined when absent; a value of another kind is WRONGTYPE. */
  #read<K extends Value["kind"]>(key: string, kind: K): Extract<Value, { kind: K }> | undefined {
    this.#open();
    const value = this.#live(key);
    if (value === undefined) return undefined;
    if (value.kind !== kind) throw new Error(WRONGTYPE_MESSAGE);
    return value as Extract<Value, { kind: K }>;
  }

  /** SET semantics: replaces whatever was there, and its TTL. */
  #put(key: string, value: Value, ttlMs: number | undefined): void {
    this.#data.set(key, value);
    if (ttlMs === undefined) this.#expiries.delete(key);
    else this.#expiries.set(key, Date.now() + ttlMs);
  }

  #remove(key: string): void {
    this.#data.delete(key);
    this.#expiries.delete(key);
  }

  /** Reclaims expired keys nobody reads, a bounded slice per tick, resuming where the last one stopped. */
  #sweep(): void {
    const now = Date.now();
    this.#sweepCursor ??= this.#expiries.entries();
    for (let budget = SWEEP_BUDGET; budget > 0; budget--) {
      const next = this.#sweepCursor.next();
      if (next.done) {
        this.#sweepCursor = undefined;
        return;
      }
      const [key, at] = next.value;
      if (at <= now) this.#remove(key);
    }
  }
}

/** First index in [0, length) for which `before(i)` is false; `before` must be monotonic. */
function lowerBound(length: number, before: (i: number) => boolean): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Compares strings in UTF-8 byte order, which is what Redis uses for members. UTF-16 code unit
 * order agrees except between surrogate pairs (code points above U+FFFF) and U+E000..U+FFFF,
 * which are swapped back here.
 */
export function compareBytes(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

function compareSorted(item: SortedMember, member: string, score: number): number {
  if (item.score !== score) return item.score < score ? -1 : 1;
  return compareBytes(item.member, member);
}

function findMember(ordered: SortedMember[], member: string, score: number): number {
  return lowerBound(ordered.length, (i) => compareSorted(ordered[i]!, member, score) < 0);
}

function compareIds(a: { ms: number; seq: number }, b: { ms: number; seq: number }): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.seq - b.seq;
}

/** "<ms>" or "<ms>-<seq>", both unsigned decimals, as Redis accepts them; "<ms>" means "<ms>-0". */
function parseStreamId(id: string): { ms: number; seq: number } {
  const match = /^(\d+)(?:-(\d+))?$/.exec(id);
  if (!match) throw new Error(INVALID_STREAM_ID);
  return { ms: Number(match[1]), seq: Number(match[2] ?? "0") };
}

/**
 * Redis's glob matcher (util.c stringmatchlen), ported so that memory scans match exactly what
 * SCAN MATCH would: `*`, `?`, `[abc]`, `[^a-z]`, and `\` escapes.
 */
export function globMatch(pattern: string, text: string): boolean {
  return matchFrom(pattern, 0, text, 0);
}

function matchFrom(p: string, pi: number, s: string, si: number): boolean {
  while (pi < p.length && si < s.length) {
    const c = p[pi];
    if (c === "*") {
      while (p[pi + 1] === "*") pi++;
      if (pi + 1 === p.length) return true;
      for (let from = si; from < s.length; from++) {
        if (matchFrom(p, pi + 1, s, from)) return true;
      }
      return false;
    } else if (c === "?") {
      si++;
    } else if (c === "[") {
      pi++;
      const negate = p[pi] === "^";
      if (negate) pi++;
      let matched = false;
      for (;;) {
        if (p[pi] === "\\" && pi + 1 < p.length) {
          pi++;
          if (p[pi] === s[si]) matched = true;
        } else if (p[pi] === "]") {
          break;
        } else if (pi >= p.length) {
          // An unclosed class ends with the pattern.
          pi--;
          break;
        } else if (pi + 2 < p.length && p[pi + 1] === "-") {
          let lo = p.charCodeAt(pi);
          let hi = p.charCodeAt(pi + 2);
          if (lo > hi) [lo, hi] = [hi, lo];
          const code = s.charCodeAt(si);
          if (code >= lo && code <= hi) matched = true;
          pi += 2;
        } else if (p[pi] === s[si]) {
          matched = true;
        }
        pi++;
      }
      if (matched === negate) return false;
      si++;
    } else {
      if (c === "\\" && pi + 1 < p.length) pi++;
      if (p[pi] !== s[si]) return false;
      si++;
    }
    pi++;
  }
  // Trailing stars match the empty rest (also when the text was empty to begin with).
  if (si === s.length) while (p[pi] === "*") pi++;
  return pi >= p.length && si === s.length;
}
