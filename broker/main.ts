// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../common/telemetry";
import { runServerProcess } from "../common/server-process";
import { loadBrokerConfig } from "./config";
import { createBrokerServer } from "./server";

runServerProcess({
  service: "uims-broker",
  loadConfig: loadBrokerConfig,
  start: async (config, store, logger) => {
    const broker = createBrokerServer(config, store, logger);
    await broker.start();
    return {
      health: [broker.health],
      monitor: broker.monitor,
      listeners: [broker.server],
      drain: () => broker.inFlight.idle(),
      close: async () => broker.stopBackground(),
    };
  },
});
