import { randomUUID } from "node:crypto";
import { createStore, type Store } from "../../common/store";

/** Stores for tests: the in-process store, or the real redis-server jest's global setup started. */

export type StoreKind = "memory" | "redis";
export const STORE_KINDS: StoreKind[] = ["memory", "redis"];

export function redisUrl(): string {
  const url = process.env.UIMS_TEST_REDIS_URL;
  if (!url) throw new Error("UIMS_TEST_REDIS_URL is not set: run the tests through jest (its global setup starts redis-server)");
  return url;
}

/** A fresh store; on Redis, isolated by a key prefix of its own. */
export function testStore(kind: StoreKind, prefix = `t${randomUUID().slice(0, 8)}:`): Store {
  return kind === "redis" ? createStore({ redisUrl: redisUrl(), prefix }) : createStore({ prefix });
}

/** The store with some methods replaced, the others still bound to it. */
export function withOverrides(store: Store, overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop in overrides) return overrides[prop as keyof Store];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
