import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError } from "./errors";
import { parseEndpoint } from "./parse";

/**
 * The state of a mesh started by `uims up`: where its servers listen, the admin token and the
 * demo clients' tokens, so that `--as alice` works in another terminal. It holds secrets, so the
 * file is readable by its owner only; `uims up` deletes it when the mesh stops.
 */

export const STATE_FILE = "mesh.json";
export const DEFAULT_STATE_DIR = ".uims";
export const STATE_VERSION = 1;

export interface NodeEntry {
  /** Component kind: "broker", "im", ... */
  kind: string;
  /** Mesh-internal gRPC endpoint (the broker's also serves the admin API). */
  endpoint: string;
  /** Public client API (im gateways). */
  clientEndpoint?: string;
  /** SMTP listener (email gateways). */
  smtpEndpoint?: string;
  pid?: number;
  logFile?: string;
}

export interface ClientEntry {
  token: string;
  /** Node id of the im gateway this client connects to. */
  gateway: string;
}

export interface MeshState {
  version: number;
  /** The `uims up` process that owns the mesh. */
  pid: number;
  startedAtUnixMs: number;
  store: "embedded" | "redis";
  logDir: string;
  broker: { nodeId: string } & NodeEntry;
  adminToken: string;
  /** By node id. */
  gateways: Record<string, NodeEntry>;
  /** By client id. */
  clients: Record<string, ClientEntry>;
  /** The local SMSC and SMTP sink that `uims up` runs for the sms and email gateways (absent with --no-peers). */
  peers?: { smsc: string; smtpSink: string };
}

export type Env = Readonly<Record<string, string | undefined>>;

export function resolveStateDir(option: string | undefined, env: Env = process.env): string {
  return resolve(option ?? (env.UIMS_STATE_DIR || DEFAULT_STATE_DIR));
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** The state, or undefined when there is none. */
export function readState(dir: string): MeshState | undefined {
  const path = statePath(dir);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let state: MeshState;
  try {
    state = JSON.parse(text) as MeshState;
  } catch {
    throw new CliError(`${path} is not valid JSON`, "delete it and start the mesh again with `make run`");
  }
  if (state.version !== STATE_VERSION || typeof state.broker?.endpoint !== "string" || typeof state.clients !== "object" || typeof state.gateways !== "object") {
    throw new CliError(`${path} is not a mesh state this version understands`, "delete it and start the mesh again with `make run`");
  }
  return state;
}

/** Writes atomically (a reader never sees half a file), readable by the owner only. */
export function writeState(dir: string, state: MeshState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = statePath(dir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  // The mode of writeFileSync only applies when it creates the file, and the umask may narrow it.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function removeState(dir: string): void {
  rmSync(statePath(dir), { force: true });
}

/** Reads, changes and writes the state; does nothing when there is none. Returns whether it wrote. */
export function updateState(dir: string, change: (state: MeshState) => void): boolean {
  const state = readState(dir);
  if (!state) return false;
  change(state);
  writeState(dir, state);
  return true;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The im gateway with the fewest clients, for a new client's home. */
export function pickHomeGateway(state: MeshState): string | undefined {
  const ims = Object.entries(state.gateways)
    .filter(([, g]) => g.clientEndpoint)
    .map(([id]) => id)
    .sort();
  const load = (id: string) => Object.values(state.clients).filter((c) => c.gateway === id).length;
  let best: string | undefined;
  for (const id of ims) if (best === undefined || load(id) < load(best)) best = id;
  return best;
}

function requireRunning(dir: string, state: MeshState | undefined, forWhat: string): MeshState {
  const path = statePath(dir);
  if (!state) throw new CliError(`no mesh state at ${path} (needed for ${forWhat})`, "start the mesh with `make run` in another terminal, or pass the endpoint and token explicitly");
  if (!processAlive(state.pid)) {
    throw new CliError(`the mesh recorded in ${path} is not running (its \`uims up\`, pid ${state.pid}, has exited)`, "start it again with `make run`");
  }
  return state;
}

export interface ClientTarget {
  endpoint: string;
  token: string;
  /** Known when resolved through --as. */
  clientId?: string;
  gatewayNodeId?: string;
  /** The `uims up` process that owns the endpoint, when resolved through mesh.json. */
  ownerPid?: number;
}

export interface ClientOptions {
  as?: string;
  gateway?: string;
  token?: string;
}

/**
 * Where and as whom a client command talks. Explicit flags win; `--as` reads mesh.json; with
 * neither, UIMS_GATEWAY and UIMS_TOKEN.
 */
export function resolveClient(opts: ClientOptions, dir: string, env: Env = process.env): ClientTarget {
  let endpoint = opts.gateway;
  let token = opts.token;
  let clientId: string | undefined;
  let gatewayNodeId: string | undefined;
  let ownerPid: number | undefined;
  if (opts.as !== undefined && (endpoint === undefined || token === undefined)) {
    const state = requireRunning(dir, readState(dir), `--as ${opts.as}`);
    const client = state.clients[opts.as];
    if (!client) {
      const known = Object.keys(state.clients).sort().join(", ") || "none";
      throw new CliError(`no client "${opts.as}" in ${statePath(dir)} (known: ${known})`, `add it with \`uims profiles add ${opts.as}\`, or pass --gateway and --token`);
    }
    const gateway = state.gateways[client.gateway];
    if (!gateway?.clientEndpoint) throw new CliError(`client "${opts.as}" is homed on "${client.gateway}", which is not an im gateway of this mesh`);
    endpoint ??= gateway.clientEndpoint;
    token ??= client.token;
    clientId = opts.as;
    gatewayNodeId = client.gateway;
    if (opts.gateway === undefined) ownerPid = state.pid;
  } else if (opts.as !== undefined) {
    clientId = opts.as;
  }
  endpoint ??= env.UIMS_GATEWAY || undefined;
  token ??= env.UIMS_TOKEN || undefined;
  if (endpoint === undefined || token === undefined) {
    throw new CliError("who is the client? Pass --as <client> (from a mesh started with `make run`), or --gateway host:port and --token T (or UIMS_GATEWAY and UIMS_TOKEN)");
  }
  return {
    endpoint: parseEndpoint(endpoint, "gateway"),
    token,
    ...(clientId !== undefined ? { clientId } : {}),
    ...(gatewayNodeId !== undefined ? { gatewayNodeId } : {}),
    ...(ownerPid !== undefined ? { ownerPid } : {}),
  };
}

export interface AdminTarget {
  endpoint: string;
  token: string;
}

export interface AdminOptions {
  broker?: string;
  adminToken?: string;
}

/** The broker's admin API: flags, then UIMS_BROKER / UIMS_ADMIN_TOKEN, then mesh.json. */
export function resolveAdmin(opts: AdminOptions, dir: string, env: Env = process.env): AdminTarget {
  let endpoint = opts.broker ?? (env.UIMS_BROKER || undefined);
  let token = opts.adminToken ?? (env.UIMS_ADMIN_TOKEN || undefined);
  if (endpoint === undefined || token === undefined) {
    const state = readState(dir);
    if (!state) {
      throw new CliError(
        `no mesh state at ${statePath(dir)}, and no broker given`,
        "start the mesh with `make run`, or pass --broker host:port and --admin-token T (or UIMS_BROKER and UIMS_ADMIN_TOKEN)",
      );
    }
    requireRunning(dir, state, "the admin API");
    endpoint ??= state.broker.endpoint;
    token ??= state.adminToken;
  }
  return { endpoint: parseEndpoint(endpoint, "broker"), token };
}
