import { ResourceExhaustedError } from "../../common/errors";
import type { Store } from "../../common/store";

/**
 * Per-client token buckets for the public API: each client may send `ratePerSecond` messages a
 * second on average, in bursts of up to `burst`. A client over its rate gets RESOURCE_EXHAUSTED
 * with the time until its next token in the `retry-after-ms` trailer. The buckets live in the
 * store, so im gateway replicas sharing a Redis share each client's bucket: the limit holds
 * however many replicas a client's calls are spread over.
 */
export class ClientRateLimiter {
  constructor(
    private readonly store: Pick<Store, "takeToken">,
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {}

  async take(clientId: string): Promise<void> {
    if (this.ratePerSecond <= 0) return;
    const waitMs = await this.store.takeToken(`send-rate:${clientId}`, this.ratePerSecond, Math.max(1, this.burst));
    if (waitMs > 0) throw new ResourceExhaustedError(`client "${clientId}" is sending faster than ${this.ratePerSecond} messages per second`, waitMs);
  }
}
