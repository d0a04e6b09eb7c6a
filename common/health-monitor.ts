import type { Logger } from "pino";
import type { HealthStatus } from "./grpc-server";
import { healthy as healthyGauge, storeLatency } from "./metrics";

export interface HealthCheck {
  /** Named in logs when it fails, e.g. "store", "broker". */
  name: string;
  /** Resolves when the dependency is usable; throws with the reason otherwise. */
  check: () => Promise<void>;
}

/**
 * Keeps grpc.health.v1 true to the process's real state: SERVING only while every dependency
 * check passes (the store answers; for gateways, the broker has them registered). Kubernetes
 * readiness probes then take a replica out of rotation while its Redis or broker is gone.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | null = null;
  private serving = true;
  private stopped = false;
  private readonly targets: Array<Pick<HealthStatus, "setAll">>;

  constructor(
    health: Pick<HealthStatus, "setAll">,
    private readonly checks: HealthCheck[],
    private readonly logger: Logger,
    private readonly intervalMs = 2_000,
  ) {
    this.targets = [health];
  }

  /** Another server of the same process whose health follows the same dependencies. */
  alsoFor(health: Pick<HealthStatus, "setAll">): void {
    this.targets.push(health);
  }

  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops checking (shutdown sets NOT_SERVING itself and must not be overridden). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  async run(): Promise<boolean> {
    const failures: string[] = [];
    await Promise.all(
      this.checks.map(async (c) => {
        try {
          await c.check();
        } catch (err) {
          failures.push(`${c.name}: ${(err as Error).message}`);
        }
      }),
    );
    if (this.stopped) return failures.length === 0;
    const ok = failures.length === 0;
    if (ok !== this.serving) {
      if (ok) this.logger.info("dependencies reachable again: SERVING");
      else this.logger.warn({ failures }, "a dependency is unreachable: NOT_SERVING");
    }
    this.serving = ok;
    healthyGauge.set(ok ? 1 : 0);
    for (const target of this.targets) target.setAll(ok ? "SERVING" : "NOT_SERVING");
    return ok;
  }
}

/** The store check: one ping, timed into uims_store_latency_seconds. */
export function storeCheck(store: { ping(): Promise<number> }): HealthCheck {
  return {
    name: "store",
    check: async () => {
      const ms = await store.ping();
      storeLatency.observe(ms / 1000);
    },
  };
}
