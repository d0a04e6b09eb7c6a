import { TokenBucket, Window } from "./throttle";

describe("token bucket", () => {
  test("a burst goes at once, then one token per interval, in booking order", () => {
    let now = 1_000_000;
    const bucket = new TokenBucket(10, { burst: 3, clock: () => now });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
    expect(bucket.reserve()).toBeCloseTo(200);
    now += 1_000;
    // Idle for a second: the burst is available again, no more.
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve(), bucket.reserve()].map(Math.round)).toEqual([0, 0, 0, 100]);
  });

  test("the rate holds over time: 50 per second in any second, with the default burst", () => {
    let now = 0;
    const bucket = new TokenBucket(50, { clock: () => now });
    const sendTimes: number[] = [];
    for (let i = 0; i < 500; i++) sendTimes.push(now + bucket.reserve());
    for (const t of sendTimes) expect(sendTimes.filter((s) => s >= t && s < t + 1_000).length).toBeLessThanOrEqual(50 + 5);
    expect(sendTimes[499]! - sendTimes[0]!).toBeGreaterThanOrEqual(9_000);
  });

  test("pause after a throttling answer", () => {
    let now = 0;
    const bucket = new TokenBucket(100, { burst: 1, clock: () => now });
    expect(bucket.reserve()).toBe(0);
    bucket.pause(1_000);
    expect(bucket.reserve()).toBeGreaterThanOrEqual(1_000);
  });

  test("take() waits for real", async () => {
    const bucket = new TokenBucket(20, { burst: 1 });
    const started = Date.now();
    for (let i = 0; i < 4; i++) await bucket.take();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });
});

describe("window", () => {
  test("at most size holders; waiters served in order; a release counts once", async () => {
    const window = new Window(2);
    const a = await window.acquire();
    const b = await window.acquire();
    const order: string[] = [];
    const c = window.acquire().then((release) => (order.push("c"), release));
    const d = window.acquire().then((release) => (order.push("d"), release));
    expect(window.inUse).toBe(2);
    expect(window.queued).toBe(2);
    a();
    a();
    const releaseC = await c;
    expect(order).toEqual(["c"]);
    expect(window.queued).toBe(1);
    b();
    const releaseD = await d;
    expect(order).toEqual(["c", "d"]);
    releaseC();
    releaseD();
    expect(window.inUse).toBe(0);
  });

  test("failWaiting rejects the queue, not the holders", async () => {
    const window = new Window(1);
    const held = await window.acquire();
    const waiting = window.acquire();
    window.failWaiting(new Error("SMSC not bound"));
    await expect(waiting).rejects.toThrow("SMSC not bound");
    expect(window.inUse).toBe(1);
    held();
    expect(window.inUse).toBe(0);
    await window.acquire();
    expect(window.inUse).toBe(1);
  });
});
