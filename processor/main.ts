// First: the grpc instrumentation must patch grpc-js before any client or server is built.
import "../common/telemetry";
import { runServerProcess } from "../common/server-process";
import { loadProcessorConfig } from "./config";
import { createProcessor } from "./server";

runServerProcess({
  service: "uims-processor",
  loadConfig: loadProcessorConfig,
  start: async (config, store, logger) => {
    const processor = createProcessor(config, store, logger);
    await processor.start();
    return {
      health: [processor.mesh.health],
      monitor: processor.monitor,
      listeners: [processor.mesh.server],
      drain: () => processor.drain(),
      close: () => processor.close(),
    };
  },
});
