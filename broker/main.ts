// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../common/telemetry";
import { ConfigError } from "../common/config";
import { runUntilSignal } from "../common/lifecycle";
import { createLogger } from "../common/logger";
import { processClosers } from "../common/process";
import { createStore } from "../common/store";
import { loadBrokerConfig } from "./config";
import { createBrokerServer } from "./server";

async function main(): Promise<void> {
  const config = loadBrokerConfig();
  const logger = createLogger({ service: "uims-broker", nodeId: config.nodeId, level: config.logLevel });
  const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
  const broker = createBrokerServer(config, store, logger);
  await broker.start();
  const closers = await processClosers(config.metricsPort, logger);
  await runUntilSignal({
    logger,
    health: broker.shutdownHealth,
    server: broker.server,
    graceMs: config.shutdownGraceMs,
    onDrain: () => broker.inFlight.idle(),
    cutIdleStreamsAfterDrain: true,
    closers: [async () => broker.stopBackground(), () => store.close(), ...closers],
  });
}

main().catch((err: unknown) => {
  // Last resort: configuration errors are for people, everything else is a bug report.
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
