import type * as grpc from "@grpc/grpc-js";
import { AdminServiceService } from "../gen/uims/admin/v1/admin";
import { BrokerServiceService } from "../gen/uims/broker/v1/broker";
import { TscsAuthority } from "../common/crypto/tscs";
import { bindServer, createGrpcServer, serverCredentials, type GrpcServer } from "../common/grpc-server";
import type { Logger } from "../common/logger";
import { meshIdentity } from "../common/member-config";
import { BROKER_AUDIENCE } from "../common/mesh/broker-client";
import { InFlight } from "../common/mesh/multiplex";
import { HealthMonitor, storeCheck } from "../common/health-monitor";
import type { Store } from "../common/store";
import { Accounting } from "./accounting";
import { createAdminService } from "./admin-service";
import type { BrokerConfig } from "./config";
import { Notifier } from "./notifier";
import { PresenceBook } from "./presence";
import { ProfileCache } from "./profile-cache";
import { ProfileDirectory } from "./profiles";
import { BrokerProtocol } from "./protocol";
import { GatewayRegistry } from "./registry";
import { createBrokerService } from "./service";
import { TransactionStore } from "./transactions";

export interface BrokerServer extends GrpcServer {
  protocol: BrokerProtocol;
  profiles: ProfileDirectory;
  inFlight: InFlight;
  /** Binds, starts the deadline and notice loops; resolves with the bound port. */
  start(): Promise<number>;
  /** Stops the loops and closes outbound connections (the gRPC server is shut down by the caller). */
  stopBackground(): void;
  /** Keeps the broker's health true to its store. */
  monitor: HealthMonitor;
}

/** Builds the broker from its configuration and store; does not bind. */
export function createBrokerServer(config: BrokerConfig, store: Store, logger: Logger, clock: () => number = Date.now): BrokerServer {
  const tscs = new TscsAuthority({ audience: BROKER_AUDIENCE, k1: config.k1, store, windowMs: config.tscsWindowMs, sessionKeyTtlMs: config.sessionKeyTtlMs, clock });
  const identity = meshIdentity(config, config.maxMessageBytes, clock);
  const releaseKeys = { k1: config.k1, k2: config.k2, signing: config.signingKey };
  const profiles = new ProfileDirectory(store, clock);
  const registry = new GatewayRegistry(store, { heartbeatIntervalMs: config.heartbeatIntervalMs, clock });
  const accounting = new Accounting(store, clock);
  const transactions = new TransactionStore(store, config.transactionRetentionMs);
  const notifier = new Notifier({ store, registry, transactions, identity, releaseKeys, logger, clock, giveUpAfterMs: config.noticeRetryMs });
  const protocol = new BrokerProtocol({
    nodeId: config.nodeId,
    tscs,
    releaseKeys,
    profiles,
    routingProfiles: new ProfileCache(profiles, config.profileCacheMs, clock),
    registry,
    presence: new PresenceBook(store, clock),
    accounting,
    transactions,
    notifier,
    logger,
    clock,
    limits: { maxContentBytes: config.maxContentBytes, receiptTimeoutMs: config.receiptTimeoutMs, heartbeatIntervalMs: config.heartbeatIntervalMs },
  });
  const inFlight = new InFlight();
  const grpcServer = createGrpcServer({
    maxMessageBytes: config.maxMessageBytes,
    services: [BrokerServiceService, AdminServiceService],
    channelOptions: connectionAgeOptions(config),
  });
  grpcServer.server.addService(BrokerServiceService, createBrokerService({ protocol, tscs, logger, inFlight }));
  grpcServer.server.addService(
    AdminServiceService,
    createAdminService({
      profiles,
      registry,
      accounting,
      adminTokenSha256: config.adminTokenSha256,
      explainRoute: (req) => protocol.explainRoute(req),
      getTransaction: (id) => protocol.getTransaction(id),
      logger,
      clock,
    }),
  );

  const monitor = new HealthMonitor(grpcServer.health, [storeCheck(store)], logger);
  let deadlineTimer: NodeJS.Timeout | null = null;
  let stopRefreshing: (() => void) | null = null;
  let sweeping = false;
  return {
    ...grpcServer,
    protocol,
    profiles,
    inFlight,
    async start() {
      const port = await bindServer(grpcServer.server, config.grpcHost, config.grpcPort, serverCredentials(config.tls));
      notifier.start();
      stopRefreshing = registry.startRefreshing((err) => logger.warn({ err }, "registry refresh failed"));
      deadlineTimer = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        protocol
          .processDeadlines()
          .catch((err: unknown) => logger.warn({ err }, "deadline sweep failed"))
          .finally(() => {
            sweeping = false;
          });
      }, 1_000);
      deadlineTimer.unref();
      monitor.start();
      logger.info({ port, store: store.kind }, "broker listening");
      return port;
    },
    stopBackground() {
      monitor.stop();
      if (deadlineTimer) clearInterval(deadlineTimer);
      stopRefreshing?.();
      notifier.stop();
    },
    monitor,
  };
}

/**
 * Old connections are closed so that clients re-resolve the broker's address (a replica added
 * by the autoscaler becomes known). Clients move their calls to new streams every
 * MESH_STREAM_LIFETIME_MS, so the grace of two lifetimes lets every stream end by itself.
 */
export function connectionAgeOptions(config: Pick<BrokerConfig, "maxConnectionAgeMs" | "meshStreamLifetimeMs">): grpc.ServerOptions {
  if (config.maxConnectionAgeMs === 0) return {};
  return {
    "grpc.max_connection_age_ms": config.maxConnectionAgeMs,
    "grpc.max_connection_age_grace_ms": 2 * config.meshStreamLifetimeMs + 10_000,
  };
}
