import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { SendRequest, SendResponse } from "../../gen/uims/client/v1/client";
import { Priority, MessageState, Medium, FailureKind } from "../../gen/uims/common/v1/types";
import { REPO_ROOT } from "./contract-tree";

// Debian's interpreter: it sees python3-grpcio and python3-protobuf from apt. A `python3` earlier on
// PATH (pyenv, a venv) usually does not.
const PYTHON = "/usr/bin/python3";
const APT_HINT = "apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev (.ci/run installs them)";
const HEALTH_CHECK = join(REPO_ROOT, "test", "python", "health_check.py");
const WIRE_CHECK = join(REPO_ROOT, "test", "python", "wire_check.py");

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

// Asynchronous on purpose: the gRPC server under test runs in this process and must keep answering.
function exec(command: string, args: readonly string[], env: NodeJS.ProcessEnv = childEnv()): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: REPO_ROOT, env, timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(new Error(`cannot run ${command}: ${err.message}\n${stderr}`));
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** The environment without proxy settings, which grpc's C core would otherwise apply to 127.0.0.1. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ["http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY"]) delete env[name];
  return env;
}

function python(args: readonly string[]): Promise<Outcome> {
  return exec(PYTHON, args);
}

async function pythonOk(args: readonly string[]): Promise<string> {
  const result = await python(args);
  if (result.code !== 0) throw new Error(`python ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

function pythonModules(dir: string): string[] {
  const modules: string[] = [];
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".py")) modules.push(relative(dir, full).slice(0, -".py".length).split(sep).join("."));
    }
  };
  walk(dir);
  return modules.sort();
}

function protoFiles(): string[] {
  const files: string[] = [];
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".proto")) files.push(relative(join(REPO_ROOT, "proto"), full).split(sep).join("/"));
    }
  };
  walk(join(REPO_ROOT, "proto"));
  return files.sort();
}

/** A message built in both languages; the Python side is in test/python/wire_check.py. */
const SEND_REQUEST: SendRequest = {
  recipient: "sms:+491701234567",
  payload: {
    contentType: "text/plain; charset=utf-8",
    body: Buffer.from([0x00, 0xff, ...Buffer.from("hello \u20ac")]),
    attachments: [{ filename: "a.png", contentType: "image/png", data: Buffer.from(Array.from({ length: 256 }, (_, i) => i)) }],
    subject: "Gr\u00fc\u00dfe \u{1f44b}",
  },
  idempotencyKey: "retry-1",
  priority: Priority.PRIORITY_HIGH,
  ttlSeconds: 3600,
};

const SEND_RESPONSE: SendResponse = {
  messageId: "m-1",
  status: {
    messageId: "m-1",
    state: MessageState.MESSAGE_STATE_ROUTED,
    medium: Medium.MEDIUM_SMS,
    events: [
      {
        state: MessageState.MESSAGE_STATE_ACCEPTED,
        medium: Medium.MEDIUM_IM,
        atUnixMs: 1733320000123,
        failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED,
        reason: "",
        attempt: 1,
        gatewayId: "",
      },
      {
        state: MessageState.MESSAGE_STATE_ROUTED,
        medium: Medium.MEDIUM_SMS,
        atUnixMs: 1733320000456,
        failureKind: FailureKind.FAILURE_KIND_TEMPORARY,
        reason: "recipient offline",
        attempt: 2,
        gatewayId: "gw-sms-1",
      },
    ],
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    segments: 2,
    recipient: "bob",
  },
  duplicate: true,
};

let stubs = "";
let server: grpc.Server | undefined;
let health: HealthImplementation;
let target = "";

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found. The polyglot contract test needs Debian's Python: ${APT_HINT}`);
  const probe = await python(["-c", "import grpc, google.protobuf"]);
  if (probe.code !== 0) {
    const cause = probe.stderr.trim().split("\n").pop() ?? "";
    throw new Error(`${PYTHON} cannot import grpc and google.protobuf; install them: ${APT_HINT}. (${cause})`);
  }

  stubs = mkdtempSync(join(tmpdir(), "uims-pygen-"));
  const generated = await exec(join(REPO_ROOT, "scripts", "gen-python.sh"), [stubs]);
  if (generated.code !== 0) throw new Error(`scripts/gen-python.sh failed:\n${generated.stderr}\nInstall the tools: ${APT_HINT}`);

  // Stands in for a real server's health service until the servers are wired into this test.
  health = new HealthImplementation({ "": "SERVING", "uims.broker.v1.BrokerService": "SERVING" });
  const srv = new grpc.Server();
  health.addToServer(srv);
  const port = await new Promise<number>((resolve, reject) =>
    srv.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  server = srv;
  target = `127.0.0.1:${port}`;
});

afterAll(async () => {
  const srv = server;
  if (srv) await new Promise<void>((resolve) => srv.tryShutdown(() => resolve()));
  if (stubs) rmSync(stubs, { recursive: true, force: true });
});

describe("Python stubs generated from proto/", () => {
  test("exist for every .proto file and for grpc.health.v1, without a grpc/ directory shadowing the grpc package", () => {
    const expected = protoFiles()
      .filter((file) => file.startsWith("uims/"))
      .flatMap((file) => {
        const base = file.slice(0, -".proto".length).split("/").join(".");
        return [`${base}_pb2`, `${base}_pb2_grpc`];
      });
    expected.push("health.v1.health_pb2", "health.v1.health_pb2_grpc");
    expect(expected.length).toBeGreaterThan(2 * 5);
    expect(pythonModules(stubs)).toEqual(expected.sort());
    expect(existsSync(join(stubs, "grpc"))).toBe(false);
  });

  test("import cleanly, and every service has a client stub and a server registration function", async () => {
    const modules = pythonModules(stubs);
    const services: Array<[string, string]> = [
      ["uims.admin.v1.admin_pb2_grpc", "AdminService"],
      ["uims.broker.v1.broker_pb2_grpc", "BrokerService"],
      ["uims.client.v1.client_pb2_grpc", "ClientService"],
      ["uims.gateway.v1.gateway_pb2_grpc", "GatewayService"],
      ["uims.processor.v1.processor_pb2_grpc", "ProcessorService"],
      ["health.v1.health_pb2_grpc", "Health"],
    ];
    const script = [
      "import importlib, grpc",
      `for name in ${JSON.stringify(modules)}: importlib.import_module(name)`,
      `for module, service in ${JSON.stringify(services)}:`,
      "    m = importlib.import_module(module)",
      "    getattr(m, service + 'Stub'); getattr(m, 'add_' + service + 'Servicer_to_server')",
      "print('imported', len(" + JSON.stringify(modules) + "))",
    ].join("\n");
    const result = await exec(PYTHON, ["-c", script], childEnv({ PYTHONPATH: stubs }));
    if (result.code !== 0) throw new Error(`importing the Python stubs failed:\n${result.stderr}`);
    expect(result.stdout.trim()).toBe(`imported ${modules.length}`);
  });
});

describe("test/python/health_check.py against a grpc-js server", () => {
  const check = (service: string) => python([HEALTH_CHECK, "--target", target, "--service", service, "--stubs", stubs]);

  test.each(["", "uims.broker.v1.BrokerService"])("reports SERVING for service %j and exits 0", async (service) => {
    const result = await check(service);
    expect(result).toEqual({ code: 0, stdout: "SERVING\n", stderr: "" });
  });

  test("exits 1 for a service that is not serving", async () => {
    health.setStatus("uims.broker.v1.BrokerService", "NOT_SERVING");
    try {
      const result = await check("uims.broker.v1.BrokerService");
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("NOT_SERVING\n");
    } finally {
      health.setStatus("uims.broker.v1.BrokerService", "SERVING");
    }
  });

  test("exits 2 with NOT_FOUND for a service the server does not know", async () => {
    const result = await check("uims.nowhere.v1.NoService");
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^NOT_FOUND: /);
  });

  test("exits 3 with a hint when the stubs are missing", async () => {
    const result = await python([HEALTH_CHECK, "--target", target, "--stubs", join(stubs, "missing")]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("scripts/gen-python.sh");
  });
});

describe("wire compatibility between the Python stubs and the ts-proto stubs in gen/", () => {
  test("messages built in Python decode in TypeScript", async () => {
    const encoded = JSON.parse(await pythonOk([WIRE_CHECK, "--stubs", stubs, "encode"])) as Record<string, string>;
    expect(SendRequest.decode(Buffer.from(encoded.SendRequest ?? "", "hex"))).toEqual(SEND_REQUEST);
    expect(SendResponse.decode(Buffer.from(encoded.SendResponse ?? "", "hex"))).toEqual(SEND_RESPONSE);
  });

  test("messages built in TypeScript decode in Python", async () => {
    const request = Buffer.from(SendRequest.encode(SEND_REQUEST).finish()).toString("hex");
    const decodedRequest = JSON.parse(await pythonOk([WIRE_CHECK, "--stubs", stubs, "decode", "SendRequest", request]));
    expect(decodedRequest).toEqual({
      recipient: "sms:+491701234567",
      payload: {
        content_type: "text/plain; charset=utf-8",
        body: SEND_REQUEST.payload?.body.toString("base64"),
        attachments: [{ filename: "a.png", content_type: "image/png", data: SEND_REQUEST.payload?.attachments[0]?.data.toString("base64") }],
        subject: "Gr\u00fc\u00dfe \u{1f44b}",
      },
      idempotency_key: "retry-1",
      priority: "PRIORITY_HIGH",
      ttl_seconds: 3600,
    });

    const response = Buffer.from(SendResponse.encode(SEND_RESPONSE).finish()).toString("hex");
    const decodedResponse = JSON.parse(await pythonOk([WIRE_CHECK, "--stubs", stubs, "decode", "SendResponse", response]));
    expect(decodedResponse.status.events[0].at_unix_ms).toBe("1733320000123");
    expect(decodedResponse.status.events[1]).toEqual({
      state: "MESSAGE_STATE_ROUTED",
      medium: "MEDIUM_SMS",
      at_unix_ms: "1733320000456",
      failure_kind: "FAILURE_KIND_TEMPORARY",
      reason: "recipient offline",
      attempt: 2,
      gateway_id: "gw-sms-1",
    });
    expect(decodedResponse.duplicate).toBe(true);
  });
});
