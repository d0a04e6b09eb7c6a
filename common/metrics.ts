import { createServer, type Server } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics of one process, served as text on `METRICS_PORT` at /metrics. One registry
 * per process; every server uses the same names so that dashboards work across components.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "uims_" });

/** Steps of a message's life (the span names of common/tracing), with their outcome. */
export const stepDuration = new Histogram({
  name: "uims_step_duration_seconds",
  help: "Duration of each protocol step (uims.send, uims.broker.release, uims.transmit, uims.deliver, uims.report, ...)",
  labelNames: ["step", "outcome"] as const,
  buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const messages = new Counter({
  name: "uims_messages_total",
  help: "Messages by role (sent, received, delivered), medium and outcome",
  labelNames: ["role", "medium", "outcome"] as const,
  registers: [registry],
});

export const retries = new Counter({
  name: "uims_retries_total",
  help: "Retries by kind (transmit, delivery, report, notice)",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const fallbacks = new Counter({
  name: "uims_fallbacks_total",
  help: "Re-routes to another medium, by the medium that failed",
  labelNames: ["from_medium"] as const,
  registers: [registry],
});

export const refusals = new Counter({
  name: "uims_refusals_total",
  help: "Calls refused, by RPC and gRPC status code",
  labelNames: ["rpc", "code"] as const,
  registers: [registry],
});

export const storeLatency = new Histogram({
  name: "uims_store_latency_seconds",
  help: "Round trip to the store (Redis or in-process), sampled by the health monitor",
  buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
  registers: [registry],
});

export const streamsOpen = new Gauge({
  name: "uims_streams_open",
  help: "Long-lived streams open, by kind (inbox, watch_status)",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const healthy = new Gauge({
  name: "uims_healthy",
  help: "1 when the process reports SERVING, 0 otherwise",
  registers: [registry],
});

/** Serves /metrics; resolves with the bound port (0 picks a free one). */
export function startMetricsServer(port: number, host = "0.0.0.0"): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("not found; try /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : port,
        close: () => new Promise((ok) => server.close(() => ok())),
      });
    });
  });
}
