import type { Logger } from "pino";
import type { NodeKind } from "../../gen/uims/broker/v1/broker";
import type { Medium } from "../../gen/uims/common/v1/types";
import type { BrokerClient } from "./broker-client";

export interface NodeAgentOptions {
  broker: BrokerClient;
  nodeId: string;
  kind: NodeKind;
  medium: Medium;
  /** Where other members reach this node. */
  endpoint: string;
  capacity: number;
  version: string;
  logger: Logger;
  /** Load and health, read at each heartbeat. */
  status: () => { inFlight: number; healthy: boolean; detail: string };
}

/**
 * Keeps this node in the broker's registry: registers (retrying until the broker answers),
 * then sends heartbeats at the interval the broker asks for, registering again whenever the
 * broker has forgotten the node.
 */
export class NodeAgent {
  private timer: NodeJS.Timeout | null = null;
  private intervalMs = 5_000;
  private stopped = false;
  registered = false;
  /** When the broker last answered a registration or heartbeat. */
  lastContactUnixMs = 0;

  constructor(private readonly opts: NodeAgentOptions) {}

  /** Resolves after the first successful registration. */
  async start(): Promise<void> {
    let delay = 200;
    while (!this.stopped) {
      try {
        await this.register();
        break;
      } catch (err) {
        this.opts.logger.warn({ err: (err as Error).message, retryInMs: delay }, "registration with the broker failed");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** For the health monitor: the broker has this node registered and answered recently. */
  async checkBroker(): Promise<void> {
    if (!this.registered) throw new Error("not registered with the broker yet");
    const silentMs = Date.now() - this.lastContactUnixMs;
    if (silentMs > 3 * this.intervalMs) throw new Error(`no answer from the broker for ${silentMs} ms`);
  }

  private async register(): Promise<void> {
    const { broker, nodeId, kind, medium, endpoint, capacity, version } = this.opts;
    const res = await broker.register({ nodeId, kind, medium, endpoint, capacity, version });
    this.intervalMs = res.heartbeatIntervalMs || this.intervalMs;
    this.registered = true;
    this.lastContactUnixMs = Date.now();
    this.opts.logger.info({ broker: res.brokerId, endpoint }, "registered with the broker");
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      const status = this.opts.status();
      const res = await this.opts.broker.heartbeat({ nodeId: this.opts.nodeId, ...status });
      this.lastContactUnixMs = Date.now();
      if (!res.known) await this.register();
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, "heartbeat failed");
    } finally {
      this.schedule();
    }
  }
}
