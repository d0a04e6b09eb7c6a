import { ResourceExhaustedError } from "../../common/errors";

/**
 * Per-client token buckets for the public API: each client may send `ratePerSecond` messages a
 * second on average, in bursts of up to `burst`. A client over its rate gets RESOURCE_EXHAUSTED
 * with the time until its next token in the `retry-after-ms` trailer. Buckets are per gateway
 * process: behind N replicas a client's ceiling is N times the rate.
 */
export class ClientRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: () => number = Date.now,
  ) {}

  take(clientId: string): void {
    if (this.ratePerSecond <= 0) return;
    const now = this.clock();
    const bucket = this.buckets.get(clientId) ?? { tokens: this.burst, updatedAt: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.ratePerSecond);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) {
      this.buckets.set(clientId, bucket);
      const waitMs = Math.ceil(((1 - bucket.tokens) / this.ratePerSecond) * 1000);
      throw new ResourceExhaustedError(`client "${clientId}" is sending faster than ${this.ratePerSecond} messages per second`, waitMs);
    }
    bucket.tokens -= 1;
    this.buckets.set(clientId, bucket);
    // Idle clients' buckets are full again: forget them so the map does not grow without bound.
    if (this.buckets.size > 100_000) {
      for (const [id, b] of this.buckets) if (now - b.updatedAt > (this.burst / this.ratePerSecond) * 1000) this.buckets.delete(id);
    }
  }
}
