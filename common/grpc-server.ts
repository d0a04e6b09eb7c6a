import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from "grpc-health-check";
import type { TlsFiles } from "./config";

export type { ServingStatus };

/** Fully-qualified name of the standard health service. */
export const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

/** Server keepalive defaults; see `createGrpcServer`. */
export const SERVER_KEEPALIVE_TIME_MS = 30_000;
export const SERVER_KEEPALIVE_TIMEOUT_MS = 10_000;
/** Clients may ping this often without data (our clients ping every 30 s, see grpc-client.ts). */
export const SERVER_MIN_PING_INTERVAL_MS = 10_000;

/**
 * The per-service health status the process reports over `grpc.health.v1`. The empty name ""
 * stands for the whole server (what Kubernetes gRPC probes ask for by default).
 */
export class HealthStatus {
  readonly implementation: HealthImplementation;
  private readonly statuses = new Map<string, ServingStatus>();

  constructor(services: readonly string[], initial: ServingStatus = "SERVING") {
    this.implementation = new HealthImplementation();
    for (const name of ["", ...services]) this.set(name, initial);
  }

  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    this.implementation.setStatus(service, status);
  }

  /** Sets every known service, the overall "" included; shutdown uses NOT_SERVING. */
  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) this.set(name, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  services(): string[] {
    return [...this.statuses.keys()];
  }
}

export interface GrpcServerOptions {
  /** Largest message received or sent, in bytes. The broker sees only meta information (small); gateways carry payloads. */
  maxMessageBytes: number;
  /** Services this server serves, as names or generated definitions: each gets a health status and is listed by reflection. */
  services?: ReadonlyArray<string | grpc.ServiceDefinition>;
  /** Initial health status of every service; default SERVING (servers are built once their dependencies are up). */
  initialHealth?: ServingStatus;
  /** Register server reflection; default true. */
  reflection?: boolean;
  /** Server interceptors (auth, logging), outermost first. */
  interceptors?: grpc.ServerInterceptor[];
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** Extra raw channel options, applied last. */
  channelOptions?: grpc.ServerOptions;
}

export interface GrpcServer {
  server: grpc.Server;
  health: HealthStatus;
}

/**
 * A grpc-js server with the product's limits and keepalive, `grpc.health.v1` and server
 * reflection registered. It is not bound: add the services, then `bindServer`.
 */
export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  if (!Number.isSafeInteger(opts.maxMessageBytes) || opts.maxMessageBytes <= 0) {
    throw new Error(`maxMessageBytes must be a positive integer, got ${opts.maxMessageBytes}`);
  }
  const serverOptions: grpc.ServerOptions = {
    "grpc.max_receive_message_length": opts.maxMessageBytes,
    "grpc.max_send_message_length": opts.maxMessageBytes,
    // Server pings find dead peers (a crashed gateway, a phone behind a NAT) on long-lived
    // inbox and multiplexed streams, which otherwise look alive until the next write.
    "grpc.keepalive_time_ms": opts.keepaliveTimeMs ?? SERVER_KEEPALIVE_TIME_MS,
    "grpc.keepalive_timeout_ms": opts.keepaliveTimeoutMs ?? SERVER_KEEPALIVE_TIMEOUT_MS,
    "grpc.keepalive_permit_without_calls": 1,
    // grpc-js servers accept client pings at any rate; this tells gRPC core based peers and
    // proxies the rate we allow (C-core servers answer faster pings with GOAWAY too_many_pings).
    "grpc.http2.min_ping_interval_without_data_ms": SERVER_MIN_PING_INTERVAL_MS,
    ...opts.channelOptions,
  };
  serverOptions.interceptors = [refuseUndecodable, ...(opts.interceptors ?? [])];
  const server = new grpc.Server(serverOptions);
  // Every service added, ours and the standard ones alike, decodes without throwing, so that
  // bytes that are not its request message get INVALID_ARGUMENT instead of grpc-js's INTERNAL.
  const addService = server.addService.bind(server);
  server.addService = (service, implementation) => addService(tolerantDecoding(service), implementation);

  const names = (opts.services ?? []).map((s) => (typeof s === "string" ? s : serviceNameOf(s)));
  const health = new HealthStatus(names, opts.initialHealth ?? "SERVING");
  health.implementation.addToServer(server);

  if (opts.reflection ?? true) {
    const listed = names.length > 0 ? [...names, HEALTH_SERVICE_NAME] : undefined;
    new ReflectionService(loadReflectionPackage(), listed ? { services: listed } : undefined).addToServer(server);
  }
  return { server, health };
}

/** What a request that is not its method's protobuf message decodes to (see refuseUndecodable). */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/**
 * The definition with request decoders that never throw: grpc-js answers a decoder's exception
 * with INTERNAL ("Error deserializing request"), which blames the server for the caller's bytes.
 */
function tolerantDecoding(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const tolerant: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as Array<[string, grpc.MethodDefinition<unknown, unknown>]>) {
    const decode = method.requestDeserialize;
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          return new UndecodableRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return tolerant;
}

/** Answers an undecodable request with INVALID_ARGUMENT before any handler sees it. */
const refuseUndecodable: grpc.ServerInterceptor = (method, call) => {
  const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next(
        new grpc.ServerListenerBuilder()
          .withOnReceiveMessage((message: unknown, pass) => {
            if (message instanceof UndecodableRequest) {
              intercepting.sendStatus({ code: grpc.status.INVALID_ARGUMENT, details: `the request to ${method.path} is not its protobuf message: ${message.reason}` });
            } else {
              pass(message);
            }
          })
          .build(),
      ),
  });
  return intercepting;
};

/** "uims.broker.v1.BrokerService" from a generated service definition. */
export function serviceNameOf(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0] as grpc.MethodDefinition<unknown, unknown> | undefined;
  const match = first ? /^\/([^/]+)\//.exec(first.path) : null;
  if (!match?.[1]) throw new Error("service definition has no methods");
  return match[1];
}

/** Binds and resolves with the port actually bound (useful with port 0). */
export function bindServer(server: grpc.Server, host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
  const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolvePort, reject) => {
    server.bindAsync(address, credentials, (err, boundPort) => {
      if (err) reject(new Error(`cannot bind gRPC server to ${address}: ${err.message}`, { cause: err }));
      else resolvePort(boundPort);
    });
  });
}

/**
 * Plaintext without TLS files; with them, mTLS: our certificate and key, and only peers whose
 * client certificate is signed by the CA are admitted.
 */
export function serverCredentials(tls?: TlsFiles): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    readFileSync(tls.caFile),
    [{ private_key: readFileSync(tls.keyFile), cert_chain: readFileSync(tls.certFile) }],
    true,
  );
}

// ---------------------------------------------------------------------------------------------
// Reflection

let reflectionPackage: protoLoader.PackageDefinition | undefined;

/**
 * Every `proto/uims/**\/*.proto` plus the health service, as a proto-loader package definition.
 * Loaded once per process.
 */
export function loadReflectionPackage(): protoLoader.PackageDefinition {
  if (reflectionPackage) return reflectionPackage;
  const protoDir = findProtoDir();
  const healthDir = resolve(dirname(healthProtoPath), "..", "..");
  const files = [...listProtoFiles(join(protoDir, "uims")).map((f) => relative(protoDir, f).split(sep).join("/")), "health/v1/health.proto"];
  reflectionPackage = protoLoader.loadSync(files, { includeDirs: [protoDir, healthDir] });
  return reflectionPackage;
}

/**
 * The repository's `proto/` folder, found upwards from this file, so it resolves from the
 * TypeScript sources (`common/`) and from the compiled output (`dist/common/`) alike.
 * Images must ship `proto/` next to `dist/`.
 */
export function findProtoDir(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, "uims"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no proto/uims directory above ${start}`);
    dir = parent;
  }
}

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listProtoFiles(full));
    else if (entry.isFile() && entry.name.endsWith(".proto")) out.push(full);
  }
  return out;
}
