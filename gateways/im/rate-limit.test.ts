import { ClientRateLimiter } from "./rate-limit";

describe("ClientRateLimiter", () => {
  test("allows a burst, then refuses with the wait until the next token", () => {
    let now = 1_000_000;
    const limiter = new ClientRateLimiter(10, 3, () => now);
    for (let i = 0; i < 3; i++) limiter.take("alice");
    expect(() => limiter.take("alice")).toThrow(expect.objectContaining({ code: 8, retryAfterMs: 100 }));
    // Other clients have their own bucket.
    expect(() => limiter.take("bob")).not.toThrow();
    now += 100;
    expect(() => limiter.take("alice")).not.toThrow();
    expect(() => limiter.take("alice")).toThrow(expect.objectContaining({ code: 8 }));
  });

  test("refills up to the burst, never beyond", () => {
    let now = 0;
    const limiter = new ClientRateLimiter(1, 2, () => now);
    limiter.take("c");
    limiter.take("c");
    now += 60_000;
    limiter.take("c");
    limiter.take("c");
    expect(() => limiter.take("c")).toThrow(expect.objectContaining({ retryAfterMs: 1000 }));
  });

  test("a rate of 0 turns limiting off", () => {
    const limiter = new ClientRateLimiter(0, 0);
    for (let i = 0; i < 1000; i++) limiter.take("c");
  });
});
