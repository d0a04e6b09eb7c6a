import type { Logger } from "pino";
import { startMetricsServer } from "./metrics";
import { shutdownTelemetry } from "./telemetry";

/**
 * What every server process does around its own work: serve metrics when METRICS_PORT is set,
 * and, as the last closers of a graceful shutdown, stop serving metrics and flush telemetry.
 */
export async function processClosers(metricsPort: number | undefined, logger: Logger): Promise<Array<() => Promise<void>>> {
  const closers: Array<() => Promise<void>> = [];
  if (metricsPort !== undefined) {
    const metrics = await startMetricsServer(metricsPort);
    logger.info({ port: metrics.port }, "metrics listening");
    closers.push(metrics.close);
  }
  closers.push(shutdownTelemetry);
  return closers;
}
