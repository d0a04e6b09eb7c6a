import { ConfigError } from "../common/config";
import { runUntilSignal } from "../common/lifecycle";
import { createLogger } from "../common/logger";
import { createStore } from "../common/store";
import { loadBrokerConfig } from "./config";
import { createBrokerServer } from "./server";

async function main(): Promise<void> {
  const config = loadBrokerConfig();
  const logger = createLogger({ service: "uims-broker", nodeId: config.nodeId, level: config.logLevel });
  const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
  const broker = createBrokerServer(config, store, logger);
  await broker.start();
  await runUntilSignal({
    logger,
    health: broker.health,
    server: broker.server,
    graceMs: config.shutdownGraceMs,
    onDrain: () => broker.inFlight.idle(),
    closers: [async () => broker.stopBackground(), () => store.close()],
  });
}

main().catch((err: unknown) => {
  // Last resort: configuration errors are for people, everything else is a bug report.
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
