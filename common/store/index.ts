import { MemoryStore, type MemoryStoreOptions } from "./memory-store";
import { RedisStore, type RedisStoreOptions } from "./redis-store";
import type { Store } from "./store";

export { DEFAULT_PREFIX, StoreUnavailableError, type Store } from "./store";
export { MemoryStore, type MemoryStoreOptions } from "./memory-store";
export { RedisStore, type RedisStoreOptions } from "./redis-store";

export type StoreOptions = {
  /** Redis to share state with other replicas; without it the store is in-process. */
  redisUrl?: string;
  /** Prepended to every Redis key. Default "uims:". */
  prefix?: string;
} & Omit<RedisStoreOptions, "url" | "prefix"> &
  MemoryStoreOptions;

/**
 * The store a server runs on: Redis when `redisUrl` is given (several replicas share it), else
 * the in-process store. Returns at once; the Redis connection is made in the background and
 * commands wait briefly for it (see `readyWaitMs`). Await `ping()` to check it at startup.
 */
export function createStore(options: StoreOptions = {}): Store {
  const { redisUrl, ...rest } = options;
  if (redisUrl) return new RedisStore({ ...rest, url: redisUrl });
  return new MemoryStore(rest);
}
export { CasRecords } from "./raw-cache";
