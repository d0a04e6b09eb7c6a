import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { generateMeshSecrets, type MeshSecrets } from "../common/crypto/secrets";

/**
 * Runs a mesh on this machine: each server in its own process on loopback, the way it runs in
 * production, so that `make run`, the end-to-end tests and the benchmark exercise the real
 * processes. Each process logs JSON to its own file under `logDir`.
 */

export type ComponentKind = "broker" | "im" | "processor" | "email" | "sms";

export interface ComponentSpec {
  nodeId: string;
  kind: ComponentKind;
  env?: Record<string, string>;
}

export interface RunningComponent {
  spec: ComponentSpec;
  /** Mesh-internal gRPC endpoint. */
  endpoint: string;
  /** Public client API endpoint (im gateways). */
  clientEndpoint?: string;
  process: ChildProcess;
  logFile: string;
}

export interface LocalMeshOptions {
  components: ComponentSpec[];
  /** Shared Redis for every process; unset: each process uses its own embedded store. */
  redisUrl?: string;
  logDir: string;
  secrets?: MeshSecrets;
  /** Environment for every process (e.g. LOG_LEVEL, OTEL_*). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /**
   * Start each process in its own process group, so that a terminal's Ctrl-C reaches only the
   * parent, which can then stop the mesh in order (gateways first). Default false.
   */
  detached?: boolean;
}

/** The repository (or image) root: the nearest folder upwards with a package.json. */
function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, "package.json"))) {
    const parent = resolve(dir, "..");
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

const DIST = join(findRoot(__dirname), "dist");

/**
 * Node flags of every server process; bin/uims-server (the image's entry point) passes the same.
 * A young generation of 32 MiB semi-spaces: the servers allocate many short-lived objects per
 * message, and fewer scavenges promote fewer of them (about 5 % more messages per second on the
 * benchmark's peak, for at most 64 MiB more memory per process).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];

export function entryPoint(kind: ComponentKind): string {
  const file = kind === "broker" || kind === "processor" ? join(DIST, kind, "main.js") : join(DIST, "gateways", kind, "main.js");
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`make build\` first`);
  return file;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => ok(port));
    });
  });
}

export class LocalMesh {
  readonly secrets: MeshSecrets;
  readonly components = new Map<string, RunningComponent>();
  private brokerEndpoint = "";

  constructor(private readonly opts: LocalMeshOptions) {
    this.secrets = opts.secrets ?? generateMeshSecrets();
    mkdirSync(opts.logDir, { recursive: true });
  }

  get broker(): RunningComponent {
    const broker = [...this.components.values()].find((c) => c.spec.kind === "broker");
    if (!broker) throw new Error("the mesh has no broker");
    return broker;
  }

  async start(): Promise<void> {
    // The broker first: gateways register with it as they start.
    const ordered = [...this.opts.components].sort((a, b) => (a.kind === "broker" ? -1 : 0) - (b.kind === "broker" ? -1 : 0));
    for (const spec of ordered) await this.startComponent(spec);
  }

  /** Starts (or restarts, on the same ports) one component and waits until it listens. */
  async startComponent(spec: ComponentSpec): Promise<RunningComponent> {
    const previous = this.components.get(spec.nodeId);
    const port = previous ? Number(previous.endpoint.split(":")[1]) : await freeLoopbackPort();
    const clientPort = spec.kind === "im" ? (previous?.clientEndpoint ? Number(previous.clientEndpoint.split(":")[1]) : await freeLoopbackPort()) : undefined;
    const env: Record<string, string> = {
      // Not the test runner's own variables: a server started from a test is a real process.
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("JEST_"))),
      ...this.secrets,
      NODE_ID: spec.nodeId,
      GRPC_HOST: "127.0.0.1",
      GRPC_PORT: String(port),
      LOG_LEVEL: "info",
      ...(this.opts.redisUrl ? { REDIS_URL: this.opts.redisUrl } : {}),
      ...this.opts.env,
      ...spec.env,
    };
    if (spec.kind !== "broker") {
      env.BROKER_ADDR = spec.env?.BROKER_ADDR ?? this.brokerEndpoint;
      env.ADVERTISE_ADDR = `127.0.0.1:${port}`;
    }
    if (clientPort !== undefined) {
      env.CLIENT_HOST = "127.0.0.1";
      env.CLIENT_PORT = String(clientPort);
    }
    const logFile = join(this.opts.logDir, `${spec.nodeId}.log`);
    const log = createWriteStream(logFile, { flags: "a" });
    // UIMS_NODE_ARGS adds node flags to every process, e.g. "--cpu-prof" for profiling (not
    // allowed in NODE_OPTIONS).
    const nodeArgs = [...SERVER_NODE_FLAGS, ...(process.env.UIMS_NODE_ARGS ?? "").split(" ").filter(Boolean)];
    const child = spawn(process.execPath, [...nodeArgs, entryPoint(spec.kind)], { env, stdio: ["ignore", "pipe", "pipe"], detached: this.opts.detached ?? false });
    const running: RunningComponent = {
      spec,
      endpoint: `127.0.0.1:${port}`,
      ...(clientPort !== undefined ? { clientEndpoint: `127.0.0.1:${clientPort}` } : {}),
      process: child,
      logFile,
    };
    this.components.set(spec.nodeId, running);
    await waitForListening(child, log, spec, this.opts.startTimeoutMs ?? 15_000);
    if (spec.kind === "broker") this.brokerEndpoint = running.endpoint;
    return running;
  }

  /** Sends a signal and waits for the process to exit. */
  async stopComponent(nodeId: string, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const c = this.components.get(nodeId);
    if (!c || c.process.exitCode !== null || c.process.signalCode !== null) return c?.process.exitCode ?? null;
    const exited = new Promise<number | null>((ok) => c.process.once("exit", (code) => ok(code)));
    c.process.kill(signal);
    return exited;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    // Gateways first, so that they can still report to the broker while they drain.
    const gateways = [...this.components.values()].filter((c) => c.spec.kind !== "broker");
    await Promise.all(gateways.map((c) => this.stopComponent(c.spec.nodeId, signal)));
    for (const c of this.components.values()) if (c.spec.kind === "broker") await this.stopComponent(c.spec.nodeId, signal);
  }
}

function waitForListening(child: ChildProcess, log: WriteStream, spec: ComponentSpec, timeoutMs: number): Promise<void> {
  const ready =
    spec.kind === "broker" ? "broker listening" : spec.kind === "processor" ? "processor listening" : spec.kind === "email" ? "smtp listening" : spec.kind === "sms" ? "sms listening" : "client API listening";
  return new Promise((ok, fail) => {
    let buffered = "";
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${spec.nodeId} did not start within ${timeoutMs} ms; see its log`)), timeoutMs);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) fail(err);
      else ok();
    };
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      if (done) return;
      buffered += chunk.toString();
      if (buffered.includes(`"msg":"${ready}"`)) finish();
      else if (buffered.length > 1 << 20) buffered = buffered.slice(-4096);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code, signal) => {
      log.end();
      finish(new Error(`${spec.nodeId} exited with ${code ?? signal} while starting: ${buffered.slice(-2000)}`));
    });
  });
}
