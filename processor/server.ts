import type { Logger } from "pino";
import { NodeKind } from "../gen/uims/broker/v1/broker";
import { Medium } from "../gen/uims/common/v1/types";
import { ProcessorServiceService } from "../gen/uims/processor/v1/processor";
import { bindServer, createGrpcServer, serverCredentials, type GrpcServer } from "../common/grpc-server";
import { HealthMonitor, storeCheck } from "../common/health-monitor";
import { joinMesh } from "../common/member-config";
import { InFlight } from "../common/mesh/multiplex";
import { NodeAgent } from "../common/mesh/node-agent";
import type { Store } from "../common/store";
import type { ProcessorConfig } from "./config";
import { Conversions } from "./conversions";
import { createProcessorService } from "./service";

/** The originator gives a transmission 30 s; the destination must answer within that, through us. */
const FORWARD_TIMEOUT_MS = 25_000;

export interface Processor {
  readonly config: ProcessorConfig;
  readonly mesh: GrpcServer;
  readonly inFlight: InFlight;
  readonly agent: NodeAgent;
  /** Keeps the server's health true to its dependencies (store, broker). */
  readonly monitor: HealthMonitor;
  /** Binds the mesh port and registers with the broker; resolves with the port. */
  start(): Promise<number>;
  /** Waits for calls in progress (conversions and their transmissions). */
  drain(): Promise<void>;
  /** Stops heartbeats and closes connections (not the store). */
  close(): Promise<void>;
}

/** The content processor: the ProcessorService with health and reflection, registered with the broker. */
export function createProcessor(config: ProcessorConfig, store: Store, logger: Logger, opts: { clock?: () => number; version?: string } = {}): Processor {
  const clock = opts.clock ?? Date.now;
  const { maxMessageBytes, broker, peers, tscs } = joinMesh(config, store, clock);
  const inFlight = new InFlight();
  const mesh = createGrpcServer({ maxMessageBytes, services: [ProcessorServiceService] });
  mesh.server.addService(
    ProcessorServiceService,
    createProcessorService({
      nodeId: config.nodeId,
      k1: config.k1,
      tscs,
      verifyKeys: config.verifyKeys,
      peers,
      conversions: new Conversions({ mailDomain: config.mailDomain }),
      logger,
      inFlight,
      clock,
      maxPayloadBytes: config.maxPayloadBytes,
      forwardTimeoutMs: FORWARD_TIMEOUT_MS,
    }),
  );
  let endpoint = config.advertiseAddr;
  const agent = new NodeAgent({
    broker,
    nodeId: config.nodeId,
    kind: NodeKind.NODE_KIND_PROCESSOR,
    medium: Medium.MEDIUM_UNSPECIFIED,
    get endpoint() {
      return endpoint;
    },
    capacity: config.capacity,
    version: opts.version ?? "0.1.0",
    logger,
    status: () => ({ inFlight: inFlight.size, healthy: true, detail: "" }),
  });

  const monitor = new HealthMonitor(mesh.health, [storeCheck(store), { name: "broker", check: () => agent.checkBroker() }], logger);

  return {
    config,
    mesh,
    inFlight,
    agent,
    monitor,
    async start() {
      const port = await bindServer(mesh.server, config.grpcHost, config.grpcPort, serverCredentials(config.tls));
      if (endpoint.endsWith(":0")) endpoint = `${endpoint.slice(0, -2)}:${port}`;
      await agent.start();
      monitor.start();
      logger.info({ port, endpoint, mailDomain: config.mailDomain, store: store.kind }, "processor listening");
      return port;
    },
    drain: () => inFlight.idle(),
    async close() {
      monitor.stop();
      agent.stop();
      broker.close();
      peers.close();
    },
  };
}
