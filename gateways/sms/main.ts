// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../../common/telemetry";
import { runServerProcess } from "../../common/server-process";
import { loadSmsGatewayConfig } from "./config";
import { createSmsGateway } from "./server";

runServerProcess({
  service: "uims-gateway-sms",
  loadConfig: loadSmsGatewayConfig,
  start: async (config, store, logger) => {
    const sms = createSmsGateway(config, store, logger);
    // Ready once the mesh port listens ("sms listening"); the SMSC bind follows in the background
    // (until then the gateway reports itself unhealthy and the broker routes around it).
    await sms.start();
    return {
      health: [sms.gateway.mesh.health],
      monitor: sms.gateway.monitor,
      listeners: [sms.gateway.mesh.server],
      drain: () => sms.gateway.drain(),
      // The SMSC link goes first (receipts and incoming messages in hand are answered), then the core.
      close: () => sms.close(),
    };
  },
});
