// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../common/telemetry";
import { ConfigError } from "../common/config";
import { runUntilSignal } from "../common/lifecycle";
import { createLogger } from "../common/logger";
import { processClosers } from "../common/process";
import { createStore } from "../common/store";
import { loadProcessorConfig } from "./config";
import { createProcessor } from "./server";

async function main(): Promise<void> {
  const config = loadProcessorConfig();
  const logger = createLogger({ service: "uims-processor", nodeId: config.nodeId, level: config.logLevel });
  const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
  const processor = createProcessor(config, store, logger);
  await processor.start();
  const closers = await processClosers(config.metricsPort, logger);
  await runUntilSignal({
    logger,
    health: {
      setAll: (s) => {
        // Shutdown owns the health status from here on.
        processor.monitor.stop();
        processor.mesh.health.setAll(s);
      },
    },
    server: processor.mesh.server,
    graceMs: config.shutdownGraceMs,
    onDrain: () => processor.drain(),
    cutIdleStreamsAfterDrain: true,
    closers: [() => processor.close(), () => store.close(), ...closers],
  });
}

main().catch((err: unknown) => {
  // Last resort: configuration errors are for people, everything else is a bug report.
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
