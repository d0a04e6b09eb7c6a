import type * as grpc from "@grpc/grpc-js";
import { AdminServiceService } from "../../gen/uims/admin/v1/admin";
import { BrokerServiceService } from "../../gen/uims/broker/v1/broker";
import { ClientServiceService } from "../../gen/uims/client/v1/client";
import { GatewayServiceService } from "../../gen/uims/gateway/v1/gateway";
import { ProcessorServiceService } from "../../gen/uims/processor/v1/processor";
import { assertImplementsService, missingMethods, serviceName } from "./service-coverage";
import { SERVICE_IMPLEMENTATIONS } from "./service-implementations";

/** Every service generated from proto/; each must be implemented by at least one server. */
const GENERATED_SERVICES: readonly grpc.ServiceDefinition[] = [
  AdminServiceService,
  BrokerServiceService,
  ClientServiceService,
  GatewayServiceService,
  ProcessorServiceService,
];

const handler = () => undefined;

describe("assertImplementsService", () => {
  test("accepts a handler for every method", () => {
    const complete = Object.fromEntries(Object.keys(BrokerServiceService).map((key) => [key, handler]));
    expect(() => assertImplementsService(BrokerServiceService, complete)).not.toThrow();
  });

  test("names every method a partial implementation lacks", () => {
    const { reportStream: _reportStream, heartbeat: _heartbeat, ...partial } = Object.fromEntries(
      Object.keys(BrokerServiceService).map((key) => [key, handler]),
    );
    expect(missingMethods(BrokerServiceService, partial)).toEqual(["ReportStream (reportStream)", "Heartbeat (heartbeat)"]);
    expect(() => assertImplementsService(BrokerServiceService, partial)).toThrow(
      "uims.broker.v1.BrokerService implementation lacks 2 method(s): ReportStream (reportStream), Heartbeat (heartbeat)",
    );
  });

  test("does not count a non-function property as a handler", () => {
    const complete = Object.fromEntries(Object.keys(ProcessorServiceService).map((key) => [key, handler]));
    const [first] = Object.keys(ProcessorServiceService);
    expect(first).toBeDefined();
    expect(() => assertImplementsService(ProcessorServiceService, { ...complete, [first as string]: "not a function" })).toThrow(
      /lacks 1 method/,
    );
  });

  test("finds handlers on a class prototype", () => {
    class Admin {}
    for (const key of Object.keys(AdminServiceService)) {
      Object.defineProperty(Admin.prototype, key, { value: handler });
    }
    expect(() => assertImplementsService(AdminServiceService, new Admin())).not.toThrow();
  });
});

describe("every server implements every method of its generated service", () => {
  for (const { name, definition, create } of SERVICE_IMPLEMENTATIONS) {
    test(`${name} implements ${serviceName(definition)}`, async () => {
      assertImplementsService(definition, await create());
    });
  }

  const covered = new Set(SERVICE_IMPLEMENTATIONS.map((entry) => serviceName(entry.definition)));
  for (const definition of GENERATED_SERVICES) {
    const service = serviceName(definition);
    if (!covered.has(service)) test.todo(`${service}: add its server's handler object to SERVICE_IMPLEMENTATIONS`);
  }

  test("SERVICE_IMPLEMENTATIONS names each case once and uses generated definitions", () => {
    const names = SERVICE_IMPLEMENTATIONS.map((entry) => entry.name);
    expect(new Set(names).size).toBe(names.length);
    const generated = new Set(GENERATED_SERVICES);
    for (const entry of SERVICE_IMPLEMENTATIONS) expect(generated.has(entry.definition)).toBe(true);
  });
});
