import { setTimeout as sleep } from "node:timers/promises";
import type { Store } from "../../common/store";
import { STORE_KINDS, testStore, withOverrides } from "../../test/support/store";
import { ClientRateLimiter } from "./rate-limit";

describe.each(STORE_KINDS)("ClientRateLimiter on the %s store", (kind) => {
  let store: Store;
  beforeEach(() => {
    store = testStore(kind);
  });
  afterEach(() => store.close());

  test("allows a burst, then refuses with RESOURCE_EXHAUSTED and the wait until the next token", async () => {
    const limiter = new ClientRateLimiter(store, 2, 3);
    for (let i = 0; i < 3; i++) await limiter.take("alice");
    const refused = limiter.take("alice");
    await expect(refused).rejects.toMatchObject({ code: 8, message: 'client "alice" is sending faster than 2 messages per second' });
    const waitMs = ((await refused.catch((e: unknown) => e)) as { retryAfterMs: number }).retryAfterMs;
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(500);
    // Other clients have their own bucket.
    await limiter.take("bob");
    await sleep(waitMs + 30);
    await limiter.take("alice");
  });

  test("a rate of 0 turns limiting off, without touching the store", async () => {
    let calls = 0;
    const counted = withOverrides(store, {
      takeToken: (...args: Parameters<Store["takeToken"]>) => {
        calls++;
        return store.takeToken(...args);
      },
    });
    const limiter = new ClientRateLimiter(counted, 0, 0);
    for (let i = 0; i < 1000; i++) await limiter.take("c");
    expect(calls).toBe(0);
  });
});

test("replicas on one Redis share each client's bucket", async () => {
  const a = testStore("redis", "shared-limit:");
  const b = testStore("redis", "shared-limit:");
  try {
    const [first, second] = [new ClientRateLimiter(a, 1, 4), new ClientRateLimiter(b, 1, 4)];
    const client = `carol-${Date.now()}`;
    await first.take(client);
    await second.take(client);
    await first.take(client);
    await second.take(client);
    await expect(first.take(client)).rejects.toMatchObject({ code: 8 });
    await expect(second.take(client)).rejects.toMatchObject({ code: 8 });
  } finally {
    await a.close();
    await b.close();
  }
});
