/**
 * Flow control towards the SMSC: a token bucket for the submit rate the SMSC contract allows, and
 * a window for the number of submit_sm awaiting their response (SMPP 3.4 §2.5: an ESME should not
 * have more outstanding requests than agreed). Both are per bound session.
 */

/**
 * A token bucket kept as a virtual schedule (the generic cell rate algorithm): each caller books
 * the next slot in arrival order and waits until it comes. `burst` callers may go back to back;
 * after that they are spaced 1/rate apart. The default burst is a tenth of a second's worth, so
 * that no one-second window sees much more than `ratePerSecond` submits (SMSCs usually count
 * per second).
 */
export class TokenBucket {
  private readonly intervalMs: number;
  private readonly burst: number;
  private readonly clock: () => number;
  /** When the next token would be earned if nobody had taken any ahead. */
  private nextAt = 0;

  constructor(
    ratePerSecond: number,
    opts: { burst?: number; clock?: () => number } = {},
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError("ratePerSecond must be positive");
    this.intervalMs = 1_000 / ratePerSecond;
    this.burst = Math.max(1, Math.floor(opts.burst ?? Math.ceil(ratePerSecond / 10)));
    this.clock = opts.clock ?? Date.now;
  }

  /** Books a token; returns how many milliseconds the caller must wait before using it. */
  reserve(): number {
    const now = this.clock();
    const at = Math.max(this.nextAt, now);
    const waitMs = Math.max(0, at - now - (this.burst - 1) * this.intervalMs);
    this.nextAt = at + this.intervalMs;
    return waitMs;
  }

  /** Resolves when the caller may submit. */
  take(): Promise<void> {
    const waitMs = this.reserve();
    return waitMs <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, Math.ceil(waitMs)));
  }

  /** The SMSC said "throttled": no token is handed out for the next `ms`. */
  pause(ms: number): void {
    this.nextAt = Math.max(this.nextAt, this.clock() + ms + (this.burst - 1) * this.intervalMs);
  }
}

/** A counting semaphore with FIFO waiters that can all be failed at once (the link dropped). */
export class Window {
  private active = 0;
  private readonly waiting: Array<{ resolve: (release: () => void) => void; reject: (err: Error) => void }> = [];

  constructor(readonly size: number) {
    if (!(size >= 1)) throw new RangeError("window size must be at least 1");
  }

  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves with a release function once a slot is free; calling the release twice frees one slot only. */
  acquire(): Promise<() => void> {
    if (this.active < this.size) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Rejects every caller still waiting for a slot. Slots already held stay held until released. */
  failWaiting(err: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays the same.
      if (next) next.resolve(this.releaser());
      else this.active--;
    };
  }
}
