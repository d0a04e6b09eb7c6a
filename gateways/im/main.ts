// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../../common/telemetry";
import { runServerProcess } from "../../common/server-process";
import { loadImGatewayConfig } from "./config";
import { createImGateway } from "./server";

runServerProcess({
  service: "uims-gateway-im",
  loadConfig: loadImGatewayConfig,
  start: async (config, store, logger) => {
    const im = createImGateway(config, store, logger);
    await im.start();
    return {
      health: [im.gateway.mesh.health, im.client.health],
      monitor: im.gateway.monitor,
      listeners: [im.client.server, im.gateway.mesh.server],
      drain: async () => {
        await im.clientInFlight.idle();
        await im.gateway.drain();
      },
      close: () => im.gateway.close(),
    };
  },
});
