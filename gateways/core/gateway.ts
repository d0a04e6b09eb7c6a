import type { Logger } from "pino";
import { NodeKind } from "../../gen/uims/broker/v1/broker";
import { GatewayServiceService } from "../../gen/uims/gateway/v1/gateway";
import { bindServer, createGrpcServer, serverCredentials, type GrpcServer } from "../../common/grpc-server";
import { joinMesh } from "../../common/member-config";
import type { BrokerClient } from "../../common/mesh/broker-client";
import { InFlight } from "../../common/mesh/multiplex";
import { NodeAgent } from "../../common/mesh/node-agent";
import { HealthMonitor, storeCheck } from "../../common/health-monitor";
import type { Store } from "../../common/store";
import type { GatewayConfig } from "./config";
import { Destination } from "./destination";
import { createGatewayService, isBrokerNode } from "./gateway-service";
import { Originator } from "./origin";
import type { MediumAdapter } from "./types";


export interface Gateway {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly logger: Logger;
  readonly broker: BrokerClient;
  readonly origin: Originator;
  readonly destination: Destination;
  readonly mesh: GrpcServer;
  readonly inFlight: InFlight;
  readonly agent: NodeAgent;
  /** The adapter, once created. */
  adapter(): MediumAdapter;
  /** Binds the mesh port, registers with the broker and starts the work queues; resolves with the port. */
  start(): Promise<number>;
  /** Waits for in-flight work (calls, transmissions, deliveries, reports). */
  drain(): Promise<void>;
  /** Stops background work and closes connections (not the store). */
  close(): Promise<void>;
  /** Keeps the health of this gateway's servers true to its dependencies (store, broker). */
  readonly monitor: HealthMonitor;
}

export interface CreateGatewayOptions {
  config: GatewayConfig;
  store: Store;
  logger: Logger;
  createAdapter: (gateway: Gateway) => MediumAdapter;
  clock?: () => number;
  version?: string;
}

/** The gateway core shared by every medium; the medium plugs in as an adapter. */
export function createGateway(opts: CreateGatewayOptions): Gateway {
  const { config, store, logger } = opts;
  const clock = opts.clock ?? Date.now;
  const { maxMessageBytes, broker, peers, tscs } = joinMesh(config, store, clock);
  let adapter: MediumAdapter | undefined;
  const getAdapter = (): MediumAdapter => {
    if (!adapter) throw new Error("the gateway's medium adapter is not ready");
    return adapter;
  };
  // Resolved at start: the adapter's medium decides the registry entry.
  const medium = () => getAdapter().medium;
  const origin = new Originator({
    nodeId: config.nodeId,
    get medium() {
      return medium();
    },
    store,
    broker,
    peers,
    k1: config.k1,
    verifyKeys: config.verifyKeys,
    adapter: getAdapter,
    logger,
    clock,
    defaultTtlMs: config.defaultTtlMs,
    maxPayloadBytes: config.maxPayloadBytes,
    unreachableAfterMs: config.unreachableAfterMs,
    retentionMs: config.retentionMs,
    transmitTimeoutMs: 30_000,
  });
  const destination = new Destination({
    nodeId: config.nodeId,
    get medium() {
      return medium();
    },
    store,
    broker,
    verifyKeys: config.verifyKeys,
    adapter: getAdapter,
    logger,
    clock,
    deliveryGiveUpMs: config.deliveryGiveUpMs,
    retentionMs: config.retentionMs,
  });
  const inFlight = new InFlight();
  const mesh = createGrpcServer({ maxMessageBytes, services: [GatewayServiceService] });
  mesh.server.addService(
    GatewayServiceService,
    createGatewayService({ nodeId: config.nodeId, k1: config.k1, tscs, origin, destination, logger, inFlight, isBroker: isBrokerNode }),
  );
  let endpoint = config.advertiseAddr;
  const agent = new NodeAgent({
    broker,
    nodeId: config.nodeId,
    kind: NodeKind.NODE_KIND_GATEWAY,
    get medium() {
      return medium();
    },
    get endpoint() {
      return endpoint;
    },
    capacity: config.capacity,
    version: opts.version ?? "0.1.0",
    logger,
    status: () => {
      const h = getAdapter().health();
      return { inFlight: inFlight.size + origin.queue.inProgress + destination.deliveries.inProgress, healthy: h.healthy, detail: h.detail };
    },
  });

  const monitor = new HealthMonitor(mesh.health, [storeCheck(store), { name: "broker", check: () => agent.checkBroker() }], logger);
  const gateway: Gateway = {
    monitor,
    config,
    store,
    logger,
    broker,
    origin,
    destination,
    mesh,
    inFlight,
    agent,
    adapter: getAdapter,
    async start() {
      const port = await bindServer(mesh.server, config.grpcHost, config.grpcPort, serverCredentials(config.tls));
      if (endpoint.endsWith(":0")) endpoint = `${endpoint.slice(0, -2)}:${port}`;
      await agent.start();
      origin.queue.start();
      destination.deliveries.start();
      destination.reports.start();
      monitor.start();
      logger.info({ port, endpoint, medium: medium(), store: store.kind }, "gateway listening");
      return port;
    },
    async drain() {
      await Promise.all([inFlight.idle(), origin.queue.idle(), destination.deliveries.idle(), destination.reports.idle()]);
    },
    async close() {
      monitor.stop();
      agent.stop();
      await Promise.all([origin.queue.stop(), destination.deliveries.stop(), destination.reports.stop()]);
      broker.close();
      peers.close();
    },
  };
  adapter = opts.createAdapter(gateway);
  return gateway;
}
