import { ClientServiceService } from "../../gen/uims/client/v1/client";
import { bindServer, createGrpcServer, serverCredentials, type GrpcServer } from "../../common/grpc-server";
import type { Logger } from "../../common/logger";
import { InFlight } from "../../common/mesh/multiplex";
import type { Store } from "../../common/store";
import { createGateway, type Gateway } from "../core/gateway";
import { ImAdapter } from "./adapter";
import { ClientAuthenticator } from "./client-auth";
import { ClientRateLimiter } from "./rate-limit";
import { createClientService } from "./client-service";
import type { ImGatewayConfig } from "./config";
import { Inboxes } from "./inbox";
import { StatusWatchers } from "./status-watchers";

export interface ImGateway {
  gateway: Gateway;
  client: GrpcServer;
  clientInFlight: InFlight;
  /** Starts the mesh side and the client API; resolves with both ports. */
  start(): Promise<{ meshPort: number; clientPort: number }>;
}

/** The im gateway: the gateway core with inboxes, plus the public client API on its own port. */
export function createImGateway(config: ImGatewayConfig, store: Store, logger: Logger, clock?: () => number): ImGateway {
  const inboxes = new Inboxes(store, config.inboxMaxEntries, config.inboxRetentionMs);
  const watchers = new StatusWatchers();
  let adapter: ImAdapter | undefined;
  const gateway = createGateway({
    config,
    store,
    logger,
    ...(clock ? { clock } : {}),
    createAdapter: (gw) => (adapter = new ImAdapter(gw, inboxes, watchers)),
  });
  const clientInFlight = new InFlight();
  const client = createGrpcServer({ maxMessageBytes: config.maxPayloadBytes + 64 * 1024, services: [ClientServiceService] });
  gateway.monitor.alsoFor(client.health);
  client.server.addService(
    ClientServiceService,
    createClientService({
      nodeId: config.nodeId,
      auth: new ClientAuthenticator(gateway.broker, config.tokenCacheMs, clock),
      origin: gateway.origin,
      inboxes,
      watchers,
      adapter: adapter!,
      broker: gateway.broker,
      rateLimiter: new ClientRateLimiter(store, config.sendRatePerSecond, config.sendBurst),
      logger,
      inFlight: clientInFlight,
    }),
  );
  return {
    gateway,
    client,
    clientInFlight,
    async start() {
      const meshPort = await gateway.start();
      const clientPort = await bindServer(client.server, config.clientHost, config.clientPort, serverCredentials(config.tls));
      logger.info({ clientPort }, "client API listening");
      return { meshPort, clientPort };
    },
  };
}
