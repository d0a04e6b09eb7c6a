import type * as grpc from "@grpc/grpc-js";
import { ConfigError, type CommonConfig } from "./config";
import type { HealthMonitor } from "./health-monitor";
import type { HealthStatus } from "./grpc-server";
import { runUntilSignal } from "./lifecycle";
import { createLogger, type Logger } from "./logger";
import { processClosers } from "./process";
import { createStore, type Store } from "./store";

/** A started server as its process runs it: what shutdown needs to know. */
export interface RunningServer {
  /** Every health status the server reports (all go NOT_SERVING at shutdown). */
  health: Array<Pick<HealthStatus, "setAll">>;
  /** Stops checking dependencies, so that the shutdown's NOT_SERVING sticks. */
  monitor?: Pick<HealthMonitor, "stop">;
  /** Every listener; they stop taking calls together. */
  listeners: Array<Pick<grpc.Server, "tryShutdown" | "forceShutdown">>;
  /** Finishes the work in flight (calls, transmissions, deliveries, reports). */
  drain(): Promise<void>;
  /** Stops background work and closes outbound connections (not the store). */
  close(): Promise<void>;
}

/** An SMTP (or other) listener as a shutdown listener: close stops new connections. */
export function closingListener(close: () => Promise<void>): Pick<grpc.Server, "tryShutdown" | "forceShutdown"> {
  return {
    tryShutdown: (cb) => void close().then(() => cb(), (err: unknown) => cb(err as Error)),
    forceShutdown: () => undefined,
  };
}

/**
 * The life of every server process: configuration (every problem reported at once), logger,
 * store, the server, metrics, and on SIGTERM the graceful shutdown in a fixed order.
 */
export function runServerProcess<C extends CommonConfig>(opts: {
  service: string;
  loadConfig: () => C;
  start: (config: C, store: Store, logger: Logger) => Promise<RunningServer>;
}): void {
  const main = async (): Promise<void> => {
    const config = opts.loadConfig();
    const logger = createLogger({ service: opts.service, nodeId: config.nodeId, level: config.logLevel });
    const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
    const server = await opts.start(config, store, logger);
    const closers = await processClosers(config.metricsPort, logger);
    await runUntilSignal({
      logger,
      health: {
        setAll: (status) => {
          server.monitor?.stop();
          for (const h of server.health) h.setAll(status);
        },
      },
      server: {
        tryShutdown: (cb) => {
          let pending = server.listeners.length;
          let failed = false;
          for (const listener of server.listeners) {
            listener.tryShutdown((err) => {
              if (failed) return;
              if (err) {
                failed = true;
                cb(err);
              } else if (--pending === 0) cb();
            });
          }
        },
        forceShutdown: () => {
          for (const listener of server.listeners) listener.forceShutdown();
        },
      },
      graceMs: config.shutdownGraceMs,
      onDrain: () => server.drain(),
      cutIdleStreamsAfterDrain: true,
      closers: [() => server.close(), () => store.close(), ...closers],
    });
  };
  main().catch((err: unknown) => {
    // Last resort: configuration errors are for people, everything else is a bug report.
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  });
}
