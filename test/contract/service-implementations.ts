import type * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { AdminServiceService } from "../../gen/uims/admin/v1/admin";
import { BrokerServiceService } from "../../gen/uims/broker/v1/broker";
import { ClientServiceService } from "../../gen/uims/client/v1/client";
import { GatewayServiceService } from "../../gen/uims/gateway/v1/gateway";
import { ProcessorServiceService } from "../../gen/uims/processor/v1/processor";
import { createProcessorService } from "../../processor/service";
import { createAdminService } from "../../broker/admin-service";
import { createBrokerService } from "../../broker/service";
import { randomKeyring } from "../../common/crypto/keys";
import { createLogger } from "../../common/logger";
import { InFlight } from "../../common/mesh/multiplex";
import { createGatewayService } from "../../gateways/core/gateway-service";
import { createClientService } from "../../gateways/im/client-service";

const logger = createLogger({ service: "contract", nodeId: "contract", level: "silent" });
/** Handlers only reach their dependencies when called; building them needs none. */
const unused = <T>(): T => ({}) as T;

/** One server-side handler object to check against the generated service definition it is registered with. */
export interface ServiceImplementationCase {
  /** Shown in the test name, e.g. "broker BrokerService". */
  name: string;
  /** The generated definition from gen/, e.g. `BrokerServiceService` from gen/uims/broker/v1/broker. */
  definition: grpc.ServiceDefinition;
  /**
   * Builds the exact object the server passes to `server.addService(definition, ...)`, with test
   * doubles for its dependencies. Nothing is bound or started.
   */
  create: () => object | Promise<object>;
}

/**
 * Every handler object a server registers. Expected entries, one per (server, service):
 * broker: BrokerServiceService and AdminServiceService; im gateway: GatewayServiceService and
 * ClientServiceService; email, sms, voice and fax gateways: GatewayServiceService; processor:
 * ProcessorServiceService. test/contract/service-coverage.test.ts lists every generated service
 * that no entry covers yet as a todo.
 */
export const SERVICE_IMPLEMENTATIONS: readonly ServiceImplementationCase[] = [
  {
    name: "broker mesh API",
    definition: BrokerServiceService,
    create: () => createBrokerService({ protocol: unused(), tscs: unused(), logger, inFlight: new InFlight() }),
  },
  {
    name: "broker admin API",
    definition: AdminServiceService,
    create: () =>
      createAdminService({
        profiles: unused(),
        registry: unused(),
        accounting: unused(),
        adminTokenSha256: randomBytes(32),
        explainRoute: unused(),
        getTransaction: unused(),
        logger,
      }),
  },
  {
    name: "gateway core (every medium)",
    definition: GatewayServiceService,
    create: () =>
      createGatewayService({ nodeId: "gw", k1: randomKeyring("k"), tscs: unused(), origin: unused(), destination: unused(), logger, inFlight: new InFlight(), isBroker: () => true }),
  },
  {
    name: "processor",
    definition: ProcessorServiceService,
    create: () =>
      createProcessorService({
        nodeId: "proc",
        k1: randomKeyring("k"),
        tscs: unused(),
        verifyKeys: new Map(),
        peers: unused(),
        conversions: unused(),
        logger,
        inFlight: new InFlight(),
        clock: Date.now,
        maxPayloadBytes: 1024,
        forwardTimeoutMs: 1000,
      }),
  },
  {
    name: "im gateway",
    definition: ClientServiceService,
    create: () =>
      createClientService({ nodeId: "gw", auth: unused(), origin: unused(), inboxes: unused(), watchers: unused(), adapter: unused(), broker: unused(), rateLimiter: unused(), logger, inFlight: new InFlight() }),
  },
];
