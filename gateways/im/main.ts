// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../../common/telemetry";
import { ConfigError } from "../../common/config";
import { runUntilSignal } from "../../common/lifecycle";
import { createLogger } from "../../common/logger";
import { processClosers } from "../../common/process";
import { createStore } from "../../common/store";
import { loadImGatewayConfig } from "./config";
import { createImGateway } from "./server";

async function main(): Promise<void> {
  const config = loadImGatewayConfig();
  const logger = createLogger({ service: "uims-gateway-im", nodeId: config.nodeId, level: config.logLevel });
  const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
  const im = createImGateway(config, store, logger);
  await im.start();
  const closers = await processClosers(config.metricsPort, logger);
  // Two servers: the client API stops taking calls together with the mesh side.
  await runUntilSignal({
    logger,
    health: {
      setAll: (s) => {
        im.gateway.monitor.stop();
        im.gateway.mesh.health.setAll(s);
        im.client.health.setAll(s);
      },
    },
    server: {
      tryShutdown: (cb) => {
        let pending = 2;
        const done = (err?: Error) => {
          if (err || --pending === 0) cb(err);
        };
        im.client.server.tryShutdown(done);
        im.gateway.mesh.server.tryShutdown(done);
      },
      forceShutdown: () => {
        im.client.server.forceShutdown();
        im.gateway.mesh.server.forceShutdown();
      },
    },
    graceMs: config.shutdownGraceMs,
    cutIdleStreamsAfterDrain: true,
    onDrain: async () => {
      await im.clientInFlight.idle();
      await im.gateway.drain();
    },
    closers: [() => im.gateway.close(), () => store.close(), ...closers],
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
