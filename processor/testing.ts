import { createLogger, type Logger } from "../common/logger";
import type { MeshSecrets } from "../common/crypto/secrets";
import type { Store } from "../common/store";
import { loadProcessorConfig } from "./config";
import { createProcessor, type Processor } from "./server";

/** A processor in this process on loopback, for integration tests (end-to-end tests run the real process). */
export interface RunningProcessor {
  processor: Processor;
  nodeId: string;
  endpoint: string;
  store: Store;
  stop(): Promise<void>;
}

export async function startProcessor(
  secrets: MeshSecrets,
  brokerEndpoint: string,
  nodeId: string,
  store: Store,
  opts: { logger?: Logger; env?: Record<string, string> } = {},
): Promise<RunningProcessor> {
  const config = loadProcessorConfig({
    NODE_ID: nodeId,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    BROKER_ADDR: brokerEndpoint,
    UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
    UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
    ...opts.env,
  });
  const logger = opts.logger ?? createLogger({ service: "processor", nodeId, level: process.env.UIMS_TEST_LOG_LEVEL === "debug" ? "debug" : "silent" });
  const processor = createProcessor(config, store, logger);
  const port = await processor.start();
  return {
    processor,
    nodeId,
    endpoint: `127.0.0.1:${port}`,
    store,
    async stop() {
      processor.mesh.server.forceShutdown();
      await processor.close();
    },
  };
}
