// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../../common/telemetry";
import { closingListener, runServerProcess } from "../../common/server-process";
import { loadEmailGatewayConfig } from "./config";
import { createEmailGateway } from "./server";

runServerProcess({
  service: "uims-gateway-email",
  loadConfig: loadEmailGatewayConfig,
  start: async (config, store, logger) => {
    const email = createEmailGateway(config, store, logger);
    await email.start();
    return {
      health: [email.gateway.mesh.health],
      monitor: email.gateway.monitor,
      // SMTP stops taking connections together with the mesh side; sessions in the middle of a
      // mail finish within the grace time.
      listeners: [closingListener(() => email.smtp.close()), email.gateway.mesh.server],
      drain: () => email.drain(),
      close: () => email.close(),
    };
  },
});
