import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { BrokerServiceService } from "../gen/uims/broker/v1/broker";
import type { TlsFiles } from "./config";
import { channelOptions, clientCredentials, deadlineIn } from "./grpc-client";
import { bindServer, createGrpcServer, findProtoDir, serverCredentials, serviceNameOf, type GrpcServer } from "./grpc-server";

type HealthClient = grpc.Client & {
  check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};
const HealthClientCtor = grpc.makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => HealthClient;

function check(client: HealthClient, service = ""): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    client.check({ service }, { deadline: deadlineIn(5_000) }, (err, res) => (err ? reject(err) : resolvePromise(res?.status ?? "")));
  });
}

async function checkError(client: HealthClient, service = ""): Promise<grpc.ServiceError> {
  try {
    await check(client, service);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

const reflectionProto = join(dirname(require.resolve("@grpc/reflection")), "..", "proto", "grpc", "reflection", "v1", "reflection.proto");
type ReflectionStream = grpc.ClientDuplexStream<object, Record<string, unknown>>;
const reflectionPkg = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto)) as unknown as {
  grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo(): ReflectionStream } } } };
};

function reflect(address: string, request: object): Promise<Record<string, unknown>> {
  const client = new reflectionPkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
  return new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    const stream = client.serverReflectionInfo();
    stream.on("data", (res: Record<string, unknown>) => {
      resolvePromise(res);
      stream.end();
    });
    stream.on("error", reject);
    stream.write(request);
  }).finally(() => client.close());
}

async function listServices(address: string): Promise<string[]> {
  const res = await reflect(address, { listServices: "" });
  const listed = res["listServicesResponse"] as { service: Array<{ name: string }> };
  return listed.service.map((s) => s.name).sort();
}

describe("createGrpcServer (plaintext)", () => {
  let grpcServer: GrpcServer;
  let address: string;
  let client: HealthClient;

  beforeAll(async () => {
    grpcServer = createGrpcServer({ maxMessageBytes: 64 * 1024, services: [BrokerServiceService] });
    const port = await bindServer(grpcServer.server, "127.0.0.1", 0, serverCredentials());
    expect(port).toBeGreaterThan(0);
    address = `127.0.0.1:${port}`;
    client = new HealthClientCtor(address, clientCredentials(), channelOptions({ maxMessageBytes: 1024 * 1024 }));
  });

  afterAll(() => {
    client.close();
    grpcServer.server.forceShutdown();
  });

  test("health reports SERVING, then NOT_SERVING after setStatus", async () => {
    expect(await check(client)).toBe("SERVING");
    expect(await check(client, "uims.broker.v1.BrokerService")).toBe("SERVING");
    expect(grpcServer.health.services()).toEqual(["", "uims.broker.v1.BrokerService"]);

    grpcServer.health.set("uims.broker.v1.BrokerService", "NOT_SERVING");
    expect(await check(client, "uims.broker.v1.BrokerService")).toBe("NOT_SERVING");
    expect(await check(client)).toBe("SERVING");

    grpcServer.health.setAll("NOT_SERVING");
    expect(await check(client)).toBe("NOT_SERVING");
    grpcServer.health.setAll("SERVING");
    expect(await check(client)).toBe("SERVING");
    expect((await checkError(client, "uims.unknown.v1.Nope")).code).toBe(grpc.status.NOT_FOUND);
  });

  test("reflection lists the served services and the health service", async () => {
    expect(await listServices(address)).toEqual(["grpc.health.v1.Health", "uims.broker.v1.BrokerService"]);
  });

  test("reflection describes a service with its dependencies", async () => {
    const res = await reflect(address, { fileContainingSymbol: "uims.broker.v1.BrokerService" });
    const files = (res["fileDescriptorResponse"] as { fileDescriptorProto: Buffer[] }).fileDescriptorProto;
    expect(files.length).toBeGreaterThanOrEqual(2);
    const text = Buffer.concat(files).toString("latin1");
    expect(text).toContain("BrokerService");
    expect(text).toContain("uims.common.v1");
  });

  test("a message above the size limit is refused with RESOURCE_EXHAUSTED", async () => {
    const err = await checkError(client, "x".repeat(65 * 1024));
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // A message under the limit still goes through on the same connection.
    expect((await checkError(client, "y".repeat(60 * 1024))).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("bytes that are not the request message", () => {
  const GARBAGE = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07]);
  let grpcServer: GrpcServer;
  let generic: grpc.Client;
  let handled = 0;

  beforeAll(async () => {
    grpcServer = createGrpcServer({ maxMessageBytes: 64 * 1024, services: [BrokerServiceService] });
    grpcServer.server.addService(BrokerServiceService, {
      submitStream: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.on("data", () => handled++);
        call.on("end", () => call.end());
      },
    });
    const port = await bindServer(grpcServer.server, "127.0.0.1", 0, serverCredentials());
    generic = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    generic.close();
    grpcServer.server.forceShutdown();
  });

  const raw = (b: Buffer) => b;

  function statusOf(call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>): Promise<grpc.StatusObject> {
    return new Promise((resolveStatus) => {
      call.on("data", () => undefined);
      call.on("error", () => undefined);
      call.on("status", resolveStatus);
    });
  }

  test("get INVALID_ARGUMENT with the reason, on unary, server-streaming and bidirectional calls", async () => {
    const unary = await new Promise<grpc.ServiceError | null>((resolveError) => {
      generic.makeUnaryRequest("/grpc.health.v1.Health/Check", raw, raw, GARBAGE, { deadline: deadlineIn(5_000) }, (err) => resolveError(err));
    });
    expect(unary?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(unary?.details).toMatch(/^the request to \/grpc\.health\.v1\.Health\/Check is not its protobuf message: ./);

    const watch = await statusOf(generic.makeServerStreamRequest("/grpc.health.v1.Health/Watch", raw, raw, GARBAGE, { deadline: deadlineIn(5_000) }));
    expect(watch.code).toBe(grpc.status.INVALID_ARGUMENT);

    const stream = generic.makeBidiStreamRequest("/uims.broker.v1.BrokerService/SubmitStream", raw, raw, { deadline: deadlineIn(5_000) });
    const status = statusOf(stream);
    stream.write(GARBAGE);
    expect((await status).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(handled).toBe(0);
  });

  test("valid requests on the same server are served as before", async () => {
    const stream = generic.makeBidiStreamRequest("/uims.broker.v1.BrokerService/SubmitStream", raw, raw, { deadline: deadlineIn(5_000) });
    const status = statusOf(stream);
    stream.write(Buffer.alloc(0));
    stream.end();
    expect((await status).code).toBe(grpc.status.OK);
    expect(handled).toBe(1);
  });
});

test("without a service list, reflection lists every uims service", async () => {
  const { server } = createGrpcServer({ maxMessageBytes: 4096 });
  const port = await bindServer(server, "127.0.0.1", 0, serverCredentials());
  try {
    expect(await listServices(`127.0.0.1:${port}`)).toEqual([
      "grpc.health.v1.Health",
      "uims.admin.v1.AdminService",
      "uims.broker.v1.BrokerService",
      "uims.client.v1.ClientService",
      "uims.gateway.v1.GatewayService",
      "uims.processor.v1.ProcessorService",
    ]);
  } finally {
    server.forceShutdown();
  }
});

test("initial health can be NOT_SERVING; reflection can be left out", async () => {
  const { server, health } = createGrpcServer({ maxMessageBytes: 4096, initialHealth: "NOT_SERVING", reflection: false });
  const port = await bindServer(server, "127.0.0.1", 0, serverCredentials());
  const client = new HealthClientCtor(`127.0.0.1:${port}`, clientCredentials());
  try {
    expect(await check(client)).toBe("NOT_SERVING");
    health.set("", "SERVING");
    expect(await check(client)).toBe("SERVING");
    await expect(listServices(`127.0.0.1:${port}`)).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test("bindServer reports a port that is taken", async () => {
  const first = createGrpcServer({ maxMessageBytes: 1024 }).server;
  const second = createGrpcServer({ maxMessageBytes: 1024 }).server;
  const port = await bindServer(first, "127.0.0.1", 0, serverCredentials());
  // grpc-js also logs the failed bind; keep the test output clean.
  grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  try {
    await expect(bindServer(second, "127.0.0.1", port, serverCredentials())).rejects.toThrow(`cannot bind gRPC server to 127.0.0.1:${port}`);
  } finally {
    grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    first.forceShutdown();
    second.forceShutdown();
  }
});

test("serviceNameOf and findProtoDir", () => {
  expect(serviceNameOf(BrokerServiceService)).toBe("uims.broker.v1.BrokerService");
  expect(() => serviceNameOf({})).toThrow("no methods");
  const repoRoot = resolve(__dirname, "..");
  expect(findProtoDir()).toBe(join(repoRoot, "proto"));
  // Compiled output lives one level deeper, in dist/common.
  expect(findProtoDir(join(repoRoot, "dist", "common"))).toBe(join(repoRoot, "proto"));
  expect(() => findProtoDir(tmpdir())).toThrow("no proto/uims directory");
});

const haveOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client certificate. */
function makePki(dir: string, name: string): { ca: string; caKey: string; issue(cn: string, ext: string): { cert: string; key: string } } {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ca = join(dir, `${name}-ca.pem`);
  const caKey = join(dir, `${name}-ca.key`);
  openssl(
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", caKey, "-out", ca, "-days", "1", "-subj", `/CN=${name} test CA`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  );
  return {
    ca,
    caKey,
    issue(cn, ext) {
      const key = join(dir, `${name}-${cn}.key`);
      const csr = join(dir, `${name}-${cn}.csr`);
      const cert = join(dir, `${name}-${cn}.pem`);
      const extFile = join(dir, `${name}-${cn}.ext`);
      writeFileSync(extFile, ext);
      openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${cn}`);
      openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", extFile);
      return { cert, key };
    },
  };
}

(haveOpenssl ? describe : describe.skip)("mTLS", () => {
  let dir: string;
  let grpcServer: GrpcServer;
  let address: string;
  let clientTls: TlsFiles;
  let foreignTls: TlsFiles;
  let caFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "uims-mtls-"));
    const mesh = makePki(dir, "mesh");
    const server = mesh.issue("broker-0", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    const client = mesh.issue("gw-im-1", "extendedKeyUsage=clientAuth\n");
    const foreign = makePki(dir, "foreign").issue("intruder", "extendedKeyUsage=clientAuth\n");
    caFile = mesh.ca;
    clientTls = { certFile: client.cert, keyFile: client.key, caFile: mesh.ca };
    // The intruder trusts our CA (so it accepts the server) but its own certificate is signed elsewhere.
    foreignTls = { certFile: foreign.cert, keyFile: foreign.key, caFile: mesh.ca };

    grpcServer = createGrpcServer({ maxMessageBytes: 4096 });
    const port = await bindServer(grpcServer.server, "127.0.0.1", 0, serverCredentials({ certFile: server.cert, keyFile: server.key, caFile: mesh.ca }));
    address = `127.0.0.1:${port}`;
  });

  afterAll(() => {
    grpcServer?.server.forceShutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Mesh members dial DNS names; tests dial 127.0.0.1 and name the certificate's host.
  const options = (tlsServerName = "localhost") => channelOptions({ maxMessageBytes: 4096, tlsServerName });

  test("a client with a certificate from the mesh CA is served", async () => {
    const client = new HealthClientCtor(address, clientCredentials(clientTls), options());
    try {
      expect(await check(client)).toBe("SERVING");
    } finally {
      client.close();
    }
  });

  test("the client checks the server's name", async () => {
    const client = new HealthClientCtor(address, clientCredentials(clientTls), options("broker.example"));
    try {
      expect((await checkError(client)).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });

  test.each([
    ["no client certificate", () => grpc.credentials.createSsl(readFileSync(caFile))],
    ["a client certificate from another CA", () => clientCredentials(foreignTls)],
    ["plaintext", () => clientCredentials()],
  ])("a client with %s is refused", async (_name, creds) => {
    const client = new HealthClientCtor(address, creds(), options());
    try {
      const err = await checkError(client);
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });
});
