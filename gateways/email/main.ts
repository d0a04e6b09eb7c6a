import { ConfigError } from "../../common/config";
import { runUntilSignal } from "../../common/lifecycle";
import { createLogger } from "../../common/logger";
import { createStore } from "../../common/store";
import { loadEmailGatewayConfig } from "./config";
import { createEmailGateway } from "./server";

async function main(): Promise<void> {
  const config = loadEmailGatewayConfig();
  const logger = createLogger({ service: "uims-gateway-email", nodeId: config.nodeId, level: config.logLevel });
  const store = createStore({ ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}), onError: (err: Error) => logger.warn({ err }, "store error") });
  const email = createEmailGateway(config, store, logger);
  await email.start();
  // Two listeners: SMTP stops taking connections together with the mesh side; sessions in the
  // middle of a mail finish within the grace time.
  await runUntilSignal({
    logger,
    health: email.gateway.mesh.health,
    server: {
      tryShutdown: (cb) => {
        let pending = 2;
        const done = (err?: Error) => {
          if (err || --pending === 0) cb(err);
        };
        email.smtp.close().then(() => done(), done);
        email.gateway.mesh.server.tryShutdown(done);
      },
      forceShutdown: () => email.gateway.mesh.server.forceShutdown(),
    },
    graceMs: config.shutdownGraceMs,
    onDrain: () => email.drain(),
    closers: [() => email.close(), () => store.close()],
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
