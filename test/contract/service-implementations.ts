import type * as grpc from "@grpc/grpc-js";

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
export const SERVICE_IMPLEMENTATIONS: readonly ServiceImplementationCase[] = [];
