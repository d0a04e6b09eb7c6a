import { createClient, defineScript, ErrorReply, RESP_TYPES, type CommandParser } from "redis";
import {
  bucketTtlMs,
  checkBucket,
  checkIncrement,
  checkScore,
  DEFAULT_PREFIX,
  escapeGlob,
  normalizeCount,
  normalizeMaxLen,
  normalizeTtl,
  StoreUnavailableError,
  type Store,
} from "./store";

export interface RedisStoreOptions {
  /** `redis[s]://[[user][:password]@]host[:port][/db]` */
  url: string;
  /** Prepended to every key. Default "uims:". */
  prefix?: string;
  /** Limit for one TCP connect attempt. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * How long a command waits for the connection when it is not up (starting, or reconnecting
   * after Redis restarted) before failing with StoreUnavailableError. Default 1000 ms: long enough
   * to ride out a quick restart, short enough to stay inside callers' gRPC deadlines.
   */
  readyWaitMs?: number;
  /** Upper bound of the exponential reconnect backoff. Default 2000 ms. */
  maxReconnectDelayMs?: number;
  /** Connection errors (each failed attempt while reconnecting). The store never logs by itself. */
  onError?: (err: Error) => void;
}

/** Field under which a stream entry stores its value. */
const STREAM_FIELD = "v";
/** After this long, close() stops waiting for in-flight replies and drops the socket. */
const CLOSE_TIMEOUT_MS = 2000;
/** Keys asked for per SCAN call: few round trips without blocking Redis for long. */
const SCAN_COUNT = 1000;
/** Error replies that mean "this server cannot serve right now" rather than "bad command". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

// Scripts run atomically on the server. node-redis sends EVALSHA and falls back to EVAL on NOSCRIPT
// (after a restart or SCRIPT FLUSH), so the script body travels at most once per connection.

const compareAndSet = defineScript({
  NUMBER_OF_KEYS: 1,
  // ARGV: has-expected ("1"/"0"), expected, has-next, next, ttl ms ("" = none).
  // GET fails with WRONGTYPE on other kinds of key, as the memory store does.
  SCRIPT: `
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1`,
  parseCommand(parser: CommandParser, key: string, expected: string | null, next: string | null, ttlMs: number | undefined) {
    parser.pushKey(key);
    parser.push(expected === null ? "0" : "1", expected ?? "", next === null ? "0" : "1", next ?? "", ttlMs === undefined ? "" : String(ttlMs));
  },
  transformReply: (reply: unknown): boolean => reply === 1,
});

// One command instead of one per key: the client's cost is per command, and a set-up writes a
// whole batch of session keys.
const setMany = defineScript({
  // KEYS: the keys; ARGV: ttl ms, then one value per key.
  SCRIPT: `
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS`,
  parseCommand(parser: CommandParser, keys: string[], ttlMs: number, values: string[]) {
    parser.pushKeysLength(keys);
    parser.push(String(ttlMs), ...values);
  },
  transformReply: (reply: unknown): unknown => reply,
});

const incrementFields = defineScript({
  NUMBER_OF_KEYS: 1,
  // ARGV: ttl ms ("" = none), then field/increment pairs. Every field is checked before any is
  // changed, so a bad field leaves the hash untouched (a plain MULTI would apply the others).
  SCRIPT: `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
for i = 2, #ARGV, 2 do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  if value and not string.match(value, '^%-?%d+$') then
    return redis.error_reply('ERR hash value is not an integer')
  end
end
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[1] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0`,
  parseCommand(parser: CommandParser, key: string, ttlMs: number | undefined, pairs: string[]) {
    parser.pushKey(key);
    parser.push(ttlMs === undefined ? "" : String(ttlMs), ...pairs);
  },
  transformReply: (reply: unknown): unknown => reply,
});

// The token bucket of Store.takeToken (the same arithmetic as refillAndTake), on Redis's clock
// so that replicas with different clocks share one bucket.
const takeToken = defineScript({
  NUMBER_OF_KEYS: 1,
  // ARGV: rate per second, burst, ttl ms.
  SCRIPT: `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((1 - tokens) / rate * 1000))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return wait`,
  parseCommand(parser: CommandParser, key: string, ratePerSecond: number, burst: number, ttlMs: number) {
    parser.pushKey(key);
    parser.push(String(ratePerSecond), String(burst), String(ttlMs));
  },
  transformReply: (reply: unknown): number => Number(reply),
});

function connect(options: RedisStoreOptions) {
  const maxDelay = options.maxReconnectDelayMs ?? 2000;
  return createClient({
    url: options.url,
    scripts: { compareAndSet, incrementFields, setMany, takeToken },
    // Fail fast while disconnected instead of queueing without bound; the readiness gate below
    // decides how long a command may wait for the connection.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 5000,
      // Exponential backoff, capped, with jitter so that replicas do not reconnect in lockstep.
      // Never gives up: Redis coming back must heal the store without a process restart.
      reconnectStrategy: (retries) => Math.min(50 * 2 ** Math.min(retries, 16), maxDelay) + Math.floor(Math.random() * 100),
    },
  });
}

type Client = ReturnType<typeof connect>;

/** The same connection, answering with Buffers: for content, which must not pass through text. */
function bytesView(client: Client) {
  return client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}

/** A view of the bytes without a copy: node-redis writes Buffers as they are. */
function asBuffer(value: Uint8Array | string): Buffer | string {
  return typeof value === "string" || Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** A promise with its resolver, re-armed each time the connection goes down. */
function signal(): { promise: Promise<void>; resolve: () => void; settled: boolean } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  const s = { promise, settled: false, resolve: () => ((s.settled = true), resolve()) };
  return s;
}

/**
 * The Redis store: one node-redis connection per store. Commands issued in the same tick are
 * written together (node-redis pipelines automatically), so callers should issue independent
 * commands with Promise.all rather than awaiting them one by one.
 */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  readonly #client: Client;
  readonly #bytes: ReturnType<typeof bytesView>;
  readonly #prefix: string;
  readonly #readyWaitMs: number;
  #ready = signal();
  #lastError: unknown;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#readyWaitMs = options.readyWaitMs ?? 1000;
    this.#client = connect(options);
    this.#bytes = bytesView(this.#client);
    // Without an 'error' listener an EventEmitter throws, which would take the process down
    // whenever Redis restarts.
    this.#client.on("error", (err: Error) => {
      this.#lastError = err;
      this.#rearm();
      options.onError?.(err);
    });
    this.#client.on("ready", () => this.#ready.resolve());
    this.#client.on("reconnecting", () => this.#rearm());
    this.#client.on("end", () => this.#rearm());
    // connect() settles only once connected (or closed); failures arrive as 'error' events.
    this.#client.connect().catch(() => undefined);
  }

  get(key: string): Promise<string | null> {
    return this.#run(() => this.#client.get(this.#key(key)));
  }

  getBytes(key: string): Promise<Buffer | null> {
    return this.#run(() => this.#bytes.get(this.#key(key)));
  }

  getMany(keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return this.#run(async () => []);
    return this.#run(() => this.#client.mGet(keys.map((key) => this.#key(key))));
  }

  set(key: string, value: string, ttlMs?: number): Promise<void> {
    return this.#write(key, value, ttlMs);
  }

  setBytes(key: string, value: Uint8Array, ttlMs?: number): Promise<void> {
    return this.#write(key, asBuffer(value), ttlMs);
  }

  #write(key: string, value: string | Buffer, ttlMs: number | undefined): Promise<void> {
    return this.#run(async () => {
      const ttl = normalizeTtl(ttlMs);
      if (ttl === undefined) await this.#client.set(this.#key(key), value);
      else await this.#client.set(this.#key(key), value, { expiration: { type: "PX", value: ttl } });
    });
  }

  setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    return this.#run(async () => {
      const ttl = normalizeTtl(ttlMs);
      const reply = await this.#client.set(
        this.#key(key),
        value,
        ttl === undefined ? { condition: "NX" } : { condition: "NX", expiration: { type: "PX", value: ttl } },
      );
      return reply !== null;
    });
  }

  take(key: string): Promise<string | null> {
    return this.#run(() => this.#client.getDel(this.#key(key)));
  }

  del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return this.#run(async () => 0);
    return this.#run(() => this.#client.del(keys.map((key) => this.#key(key))));
  }

  expire(key: string, ttlMs: number): Promise<boolean> {
    return this.#run(async () => (await this.#client.pExpire(this.#key(key), normalizeTtl(ttlMs) as number)) === 1);
  }

  async setMany(entries: ReadonlyArray<readonly [string, string]>, ttlMs: number): Promise<void> {
    if (entries.length === 0) return;
    const ttl = normalizeTtl(ttlMs);
    if (ttl === undefined) throw new RangeError("setMany needs a TTL");
    await this.#run(() => this.#client.setMany(entries.map(([k]) => this.#key(k)), ttl, entries.map(([, v]) => v)));
  }

  compareAndSet(key: string, expected: string | null, next: string | null, ttlMs?: number): Promise<boolean> {
    return this.#run(() => this.#client.compareAndSet(this.#key(key), expected, next, normalizeTtl(ttlMs)));
  }

  incrementFields(key: string, increments: Record<string, number>, ttlMs?: number): Promise<void> {
    return this.#run(async () => {
      const ttl = normalizeTtl(ttlMs);
      const pairs: string[] = [];
      for (const [field, by] of Object.entries(increments)) {
        checkIncrement(field, by);
        pairs.push(field, String(by));
      }
      if (pairs.length === 0 && ttl === undefined) return;
      await this.#client.incrementFields(this.#key(key), ttl, pairs);
    });
  }

  takeToken(key: string, ratePerSecond: number, burst: number): Promise<number> {
    return this.#run(() => {
      checkBucket(ratePerSecond, burst);
      return this.#client.takeToken(this.#key(key), ratePerSecond, burst, bucketTtlMs(ratePerSecond, burst));
    });
  }

  getFields(key: string): Promise<Record<string, string>> {
    return this.#run(async () => ({ ...(await this.#client.hGetAll(this.#key(key))) }));
  }

  sortedAdd(key: string, member: string, score: number): Promise<void> {
    return this.#run(async () => {
      checkScore(score);
      await this.#client.zAdd(this.#key(key), { score, value: member });
    });
  }

  sortedRemove(key: string, member: string): Promise<boolean> {
    return this.#run(async () => (await this.#client.zRem(this.#key(key), member)) === 1);
  }

  sortedRangeByScore(key: string, min: number, max: number, limit: number): Promise<Array<{ member: string; score: number }>> {
    return this.#run(async () => {
      checkScore(min);
      checkScore(max);
      const count = normalizeCount(limit);
      if (count === 0) return [];
      const reply = await this.#client.zRangeByScoreWithScores(this.#key(key), min, max, { LIMIT: { offset: 0, count } });
      return reply.map(({ value, score }) => ({ member: value, score }));
    });
  }

  sortedRangeByMember(key: string, after: string, limit: number): Promise<string[]> {
    return this.#run(async () => {
      const count = normalizeCount(limit);
      if (count === 0) return [];
      return this.#client.zRangeByLex(this.#key(key), after === "" ? "-" : `(${after}`, "+", { LIMIT: { offset: 0, count } });
    });
  }

  sortedCount(key: string): Promise<number> {
    return this.#run(() => this.#client.zCard(this.#key(key)));
  }

  streamAppend(key: string, value: Uint8Array | string, maxLen?: number): Promise<string> {
    return this.#run(() => {
      const threshold = normalizeMaxLen(maxLen);
      return this.#client.xAdd(
        this.#key(key),
        "*",
        { [STREAM_FIELD]: asBuffer(value) },
        threshold === undefined ? undefined : { TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold } },
      );
    });
  }

  streamRange(key: string, afterId: string, count: number): Promise<Array<{ id: string; value: Buffer }>> {
    return this.#run(async () => {
      const wanted = normalizeCount(count);
      if (wanted === 0) return [];
      const start = afterId === "" || afterId === "0" ? "-" : `(${afterId}`;
      const reply = await this.#bytes.xRange(this.#key(key), start, "+", { COUNT: wanted });
      return (reply ?? []).map((entry) => ({ id: entry.id.toString(), value: entry.message[STREAM_FIELD] ?? Buffer.alloc(0) }));
    });
  }

  streamDelete(key: string, id: string): Promise<void> {
    return this.#run(async () => {
      await this.#client.xDel(this.#key(key), id);
    });
  }

  scanKeys(pattern: string, limit?: number): Promise<string[]> {
    return this.#run(async () => {
      const max = limit === undefined ? Infinity : normalizeCount(limit);
      const match = escapeGlob(this.#prefix) + pattern;
      // SCAN may return a key more than once; the set removes repeats.
      const found = new Set<string>();
      let cursor = "0";
      do {
        // Each page needs the previous cursor, so these awaits are sequential by nature.
        const page = await this.#client.scan(cursor, { MATCH: match, COUNT: SCAN_COUNT });
        cursor = page.cursor;
        for (const key of page.keys) {
          if (found.size >= max) break;
          found.add(key.slice(this.#prefix.length));
        }
      } while (cursor !== "0" && found.size < max);
      return [...found];
    });
  }

  ping(): Promise<number> {
    return this.#run(async () => {
      const started = performance.now();
      await this.#client.ping();
      return performance.now() - started;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), CLOSE_TIMEOUT_MS)));
    try {
      const outcome = await Promise.race([this.#client.close().then(() => "closed" as const), timedOut]);
      if (outcome === "timeout") this.#client.destroy();
    } catch {
      // Already torn down (for example never connected): nothing left to drain.
      this.#client.destroy();
    } finally {
      clearTimeout(timer);
    }
  }

  #key(key: string): string {
    return this.#prefix + key;
  }

  #rearm(): void {
    if (this.#ready.settled && !this.#client.isReady) this.#ready = signal();
  }

  /**
   * Runs one operation once the connection is up, translating transport failures into
   * StoreUnavailableError. The common case (connected) adds no waiting at all.
   */
  #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError("store is closed"));
    let started: Promise<T>;
    try {
      started = this.#client.isReady ? operation() : this.#whenReady().then(operation);
    } catch (err) {
      // Argument checks inside the operation throw synchronously; callers still get a rejection.
      started = Promise.reject(err);
    }
    return started.catch((err: unknown) => {
      throw this.#translate(err);
    });
  }

  #whenReady(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const reason = this.#lastError instanceof Error ? `: ${this.#lastError.message}` : "";
        reject(new StoreUnavailableError(`redis not connected after ${this.#readyWaitMs} ms${reason}`, { cause: this.#lastError }));
      }, this.#readyWaitMs);
    });
    return Promise.race([this.#ready.promise, gaveUp]).finally(() => clearTimeout(timer));
  }

  #translate(err: unknown): unknown {
    if (err instanceof StoreUnavailableError) return err;
    if (err instanceof ErrorReply) {
      return TRANSIENT_REPLY.test(err.message) ? new StoreUnavailableError(`redis cannot serve: ${err.message}`, { cause: err }) : err;
    }
    // Argument errors are the caller's bug, not an outage.
    if (err instanceof TypeError || err instanceof RangeError) return err;
    // Anything else from the client is a connection failure: offline, closed, socket reset, timeout.
    const message = err instanceof Error ? err.message : String(err);
    return new StoreUnavailableError(`redis unavailable: ${message}`, { cause: err });
  }
}
