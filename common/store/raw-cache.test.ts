import { STORE_KINDS, testStore, withOverrides } from "../../test/support/store";
import { CasRecords } from "./raw-cache";
import type { Store } from "./store";

interface Counter {
  n: number;
  log: string[];
}

const TTL = () => 60_000;

describe.each(STORE_KINDS)("CasRecords on the %s store", (kind) => {
  let store: Store;
  let swaps: number;
  let reads: number;
  let counted: Store;

  beforeEach(() => {
    store = testStore(kind);
    swaps = 0;
    reads = 0;
    counted = withOverrides(store, {
      compareAndSet: (...args: Parameters<Store["compareAndSet"]>) => {
        swaps++;
        return store.compareAndSet(...args);
      },
      get: (key: string) => {
        reads++;
        return store.get(key);
      },
    });
  });
  afterEach(() => store.close());

  it("applies concurrent updates of one record from one process in order, one swap each, no read back", async () => {
    const records = new CasRecords<Counter>(counted);
    expect(await records.create("r", { n: 0, log: [] }, 60_000)).toBe(true);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        records.update(
          "r",
          (r) => {
            r.n++;
            r.log.push(`u${i}`);
          },
          TTL,
        ),
      ),
    );
    expect(results.map((r) => r?.after?.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(JSON.parse((await store.get("r"))!)).toEqual({ n: 20, log: Array.from({ length: 20 }, (_, i) => `u${i}`) });
    expect(swaps).toBe(21);
    expect(reads).toBe(0);
  });

  it("an update that declines leaves the record and the store untouched; a failing change does not block the next", async () => {
    const records = new CasRecords<Counter>(counted);
    await records.create("r", { n: 1, log: [] }, 60_000);
    const swapsBefore = swaps;
    const [declined, failed, applied] = await Promise.allSettled([
      records.update("r", () => false, TTL),
      records.update(
        "r",
        () => {
          throw new Error("refused");
        },
        TTL,
      ),
      records.update("r", (r) => void (r.n = 2), TTL),
    ]);
    expect(declined).toEqual({ status: "fulfilled", value: { before: { n: 1, log: [] }, after: null } });
    expect(failed).toMatchObject({ status: "rejected", reason: new Error("refused") });
    expect(applied).toMatchObject({ status: "fulfilled", value: { after: { n: 2, log: [] } } });
    expect(swaps - swapsBefore).toBe(1);
  });

  it("a write by another process is read back and the change applied on top of it", async () => {
    const mine = new CasRecords<Counter>(counted);
    const theirs = new CasRecords<Counter>(store);
    await mine.create("r", { n: 0, log: [] }, 60_000);
    await theirs.update("r", (r) => void r.log.push("theirs"), TTL);
    const result = await mine.update("r", (r) => void r.log.push("mine"), TTL);
    expect(result?.after).toEqual({ n: 0, log: ["theirs", "mine"] });
    expect(reads).toBe(1);
    expect(await mine.update("missing", () => undefined, TTL)).toBeNull();
  });
});
