import type { Store } from "./store";

/**
 * Compare-and-set updates of JSON records, remembering the last value this process read or
 * wrote. Most updates of a record come from the process that wrote it last, so the compare can
 * usually go straight to the store without reading first; when another process (a replica) wrote
 * in between, the compare fails and the record is read again. Halves the store round trips of
 * an update on the message path.
 */
export class CasRecords<T> {
  private readonly known = new Map<string, string>();
  /** The last update of each record still running in this process. */
  private readonly updating = new Map<string, Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly maxCached = 20_000,
  ) {}

  async get(key: string): Promise<T | null> {
    const raw = await this.store.get(key);
    this.remember(key, raw);
    return raw === null ? null : (JSON.parse(raw) as T);
  }

  /**
   * The record as this process last read or wrote it, without a store round trip; undefined
   * when it has none. Only for work that checks the record again when it writes (every update
   * is a compare-and-set against the store).
   */
  peek(key: string): T | undefined {
    const raw = this.known.get(key);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  /** Creates the record unless it exists; false when it did. */
  async create(key: string, value: T, ttlMs: number): Promise<boolean> {
    const raw = JSON.stringify(value);
    const created = await this.store.compareAndSet(key, null, raw, ttlMs);
    if (created) this.remember(key, raw);
    return created;
  }

  /**
   * Applies `change` atomically. `change` returns false to leave the record as it is. Returns
   * the record before and after (after === null when unchanged), or null when there is none.
   */
  update(key: string, change: (value: T) => boolean | void, ttlMs: (value: T) => number, rounds = 32): Promise<{ before: T; after: T | null } | null> {
    // Updates of one record from this process run one after the other: run together, all but
    // one would fail their compare against the same remembered value and read the record back.
    const previous = this.updating.get(key);
    const run = previous ? previous.then(() => this.apply(key, change, ttlMs, rounds)) : this.apply(key, change, ttlMs, rounds);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.updating.set(key, tail);
    void tail.then(() => {
      if (this.updating.get(key) === tail) this.updating.delete(key);
    });
    return run;
  }

  private async apply(key: string, change: (value: T) => boolean | void, ttlMs: (value: T) => number, rounds: number): Promise<{ before: T; after: T | null } | null> {
    let raw = this.known.get(key) ?? (await this.store.get(key));
    for (let round = 0; round < rounds; round++) {
      if (raw === null) {
        this.known.delete(key);
        return null;
      }
      const value = JSON.parse(raw) as T;
      if (change(value) === false) {
        this.remember(key, raw);
        return { before: value, after: null };
      }
      const next = JSON.stringify(value);
      if (await this.store.compareAndSet(key, raw, next, ttlMs(value))) {
        this.remember(key, next);
        // Most callers never look at the record before the change: parse it only on demand.
        const previous = raw;
        let before: T | undefined;
        return {
          get before(): T {
            return (before ??= JSON.parse(previous) as T);
          },
          after: value,
        };
      }
      raw = await this.store.get(key);
    }
    throw new Error(`record ${key} is too contended`);
  }

  forget(key: string): void {
    this.known.delete(key);
  }

  private remember(key: string, raw: string | null): void {
    if (raw === null) {
      this.known.delete(key);
      return;
    }
    if (this.known.size >= this.maxCached && !this.known.has(key)) {
      // Oldest first: Map keeps insertion order.
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
    this.known.delete(key);
    this.known.set(key, raw);
  }
}
