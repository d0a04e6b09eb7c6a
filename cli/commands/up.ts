import { existsSync, mkdirSync, renameSync } from "node:fs";
import { basename, join, relative, resolve, sep } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import type { AdminServiceClient, Profile } from "../../gen/uims/admin/v1/admin";
import { Medium } from "../../gen/uims/common/v1/types";
import { errorCode } from "../../common/mesh/peer";
import { LocalMesh, entryPoint, freeLoopbackPort, type ComponentKind, type RunningComponent } from "../local-mesh";
import { connectAdmin, type Connection, type Context } from "../connect";
import { describeMail, describeSms, RECEIPT_DELAY_MS, startDevPeers, type DevPeers } from "../dev-peers";
import { introduce } from "../introduce";
import { CliError, describeError } from "../errors";
import { bold, cyan, dim, formatTime, green, red, table, yellow } from "../format";
import { parseCount } from "../parse";
import { statusName } from "../../gateways/sms/smpp-status";
import { processAlive, readState, removeState, statePath, writeState, type MeshState, type NodeEntry } from "../state";

export interface UpOptions {
  redis?: string;
  im: string;
  /** False (`--no-peers`): no email and sms gateways, no local SMSC and SMTP sink. */
  peers?: boolean;
}

/** The local SMSC and SMTP sink, and the port the email gateway takes mail on. */
interface Peers {
  smpp: DevPeers["smpp"];
  relayUrl: string;
  smtpPort: number;
}

interface MeshShape {
  im: number;
  peers?: Peers;
}

const MAIL_DOMAIN = "uims.local";
/** The sms gateway's sender number, and its number for bob (an SMS to it reaches bob). */
const SMS_SOURCE = "+4915550000";
const SMS_INBOUND_NUMBERS = "+4915550001:bob";
/** bob's phone in the demo profile. */
const BOB_PHONE = "+491701234567";

/**
 * The components `uims up` starts, in start order (the broker first: gateways register with it),
 * each with its own environment on top of the mesh's. Adding a kind of server is one line here,
 * once LocalMesh knows how to start it.
 */
const COMPONENTS: ReadonlyArray<{ kind: ComponentKind; role: string; nodeIds: (shape: MeshShape) => string[]; env?: (shape: MeshShape) => Record<string, string> }> = [
  { kind: "broker", role: "broker", nodeIds: () => ["broker-0"] },
  { kind: "im", role: "im gateway", nodeIds: (s) => numbered("gw-im", s.im) },
  { kind: "processor", role: "processor", nodeIds: () => ["proc-1"], env: () => ({ MAIL_DOMAIN }) },
  {
    kind: "email",
    role: "email gateway",
    nodeIds: (s) => (s.peers ? ["gw-email-1"] : []),
    env: (s) => ({ SMTP_HOST: "127.0.0.1", SMTP_PORT: String(s.peers!.smtpPort), SMTP_RELAY_URL: s.peers!.relayUrl, MAIL_DOMAIN }),
  },
  {
    kind: "sms",
    role: "sms gateway",
    nodeIds: (s) => (s.peers ? ["gw-sms-1"] : []),
    env: (s) => ({
      SMPP_URL: s.peers!.smpp.url,
      SMPP_SYSTEM_ID: s.peers!.smpp.systemId,
      SMPP_PASSWORD: s.peers!.smpp.password,
      SMPP_SOURCE_ADDR: SMS_SOURCE,
      SMS_INBOUND_NUMBERS,
      // The local SMSC is up before the gateway: the first bind succeeds; a quick retry otherwise.
      SMPP_RECONNECT_MIN_MS: "200",
      SMPP_RECONNECT_MAX_MS: "5s",
    }),
  },
];

function numbered(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
}

/** Demo clients, and the im gateway each connects to (the first one when there are fewer). */
const DEMO_CLIENTS: ReadonlyArray<{ profile: Partial<Profile> & { clientId: string }; home: string }> = [
  {
    profile: { clientId: "alice", displayName: "Alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] },
    home: "gw-im-1",
  },
  {
    profile: {
      clientId: "bob",
      displayName: "Bob",
      addresses: [
        { medium: Medium.MEDIUM_IM, address: "bob" },
        { medium: Medium.MEDIUM_SMS, address: BOB_PHONE },
        { medium: Medium.MEDIUM_EMAIL, address: "bob@example.org" },
      ],
      preferredMedia: [Medium.MEDIUM_IM, Medium.MEDIUM_SMS, Medium.MEDIUM_EMAIL],
    },
    home: "gw-im-2",
  },
  {
    profile: { clientId: "carol", displayName: "Carol", addresses: [{ medium: Medium.MEDIUM_IM, address: "carol" }], preferredMedia: [Medium.MEDIUM_IM] },
    home: "gw-im-2",
  },
];

const REGISTRATION_TIMEOUT_MS = 15_000;
// Each server drains for up to SHUTDOWN_GRACE_MS (10 s) and then closes its store; past this the
// rest are killed.
const STOP_TIMEOUT_MS = 30_000;

function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, "$1***@");
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") && !rel.startsWith(sep) ? rel : path;
}

function fullProfile(p: Partial<Profile> & { clientId: string }): Profile {
  return { displayName: "", addresses: [], preferredMedia: [], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0, ...p };
}

/** Creates a demo profile, or (on a Redis that kept it from an earlier run) resets it and issues a new token. */
async function ensureProfile(admin: Connection<AdminServiceClient>, profile: Profile): Promise<string> {
  try {
    return (await admin.call((c) => c.createProfile, { profile })).clientToken;
  } catch (err) {
    if (errorCode(err) !== grpcStatus.ALREADY_EXISTS) throw err;
  }
  await admin.call((c) => c.updateProfile, { profile, updateMask: undefined });
  return (await admin.call((c) => c.rotateClientToken, { clientId: profile.clientId })).clientToken;
}

async function waitForRegistry(admin: Connection<AdminServiceClient>, nodeIds: string[]): Promise<void> {
  const deadline = Date.now() + REGISTRATION_TIMEOUT_MS;
  let missing = nodeIds;
  while (Date.now() < deadline) {
    try {
      const { gateways } = await admin.call((c) => c.listGateways, { medium: Medium.MEDIUM_UNSPECIFIED });
      missing = nodeIds.filter((id) => !gateways.some((g) => g.nodeId === id && g.healthy));
      if (missing.length === 0) return;
    } catch {
      // The broker may still be settling; the deadline decides.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new CliError(`${missing.join(", ")} did not register with the broker within ${REGISTRATION_TIMEOUT_MS / 1000} s; see the logs`);
}

/** How to run the command line from another terminal: `uims` when installed, otherwise an alias. */
function invocation(stateDir: string): string[] {
  const script = process.argv[1] ?? "";
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/(["\\$`])/g, "\\$1")}"`);
  if (basename(script) === "uims") return resolve(".uims") === stateDir ? [] : [`export UIMS_STATE_DIR=${quote(stateDir)}`];
  return [`alias uims='UIMS_STATE_DIR=${quote(stateDir)} node ${quote(resolve(script))}'    ${dim("# or `npm link` once")}`];
}

/** The email gateway's SMTP listener, from the environment it was started with. */
function smtpEndpoint(c: RunningComponent): string | undefined {
  return c.spec.kind === "email" && c.spec.env?.SMTP_PORT ? `127.0.0.1:${c.spec.env.SMTP_PORT}` : undefined;
}

function componentRows(mesh: LocalMesh, roles: Map<string, string>, peers: DevPeers | undefined): string[][] {
  const rows = [...mesh.components.values()].map((c) => {
    const meshSide = c.spec.kind === "broker" ? `mesh+admin ${c.endpoint}` : `mesh ${c.endpoint}`;
    const outside = c.clientEndpoint ? `client ${c.clientEndpoint}` : smtpEndpoint(c) ? `smtp ${smtpEndpoint(c)}` : undefined;
    const endpoints = outside ? `${outside}, ${meshSide}` : meshSide;
    return [c.spec.nodeId, roles.get(c.spec.nodeId) ?? c.spec.kind, endpoints, String(c.process.pid ?? "-"), shown(c.logFile)];
  });
  if (peers) {
    const here = String(process.pid);
    rows.push(["smsc", "local SMSC", `smpp 127.0.0.1:${peers.smsc.url.split(":").pop()}`, here, "this terminal"]);
    rows.push(["smtp-sink", "SMTP sink", `smtp 127.0.0.1:${peers.sink.port}`, here, "this terminal"]);
  }
  return rows;
}

/** Keeps the previous run's log beside the new one instead of appending to it. */
function rotateLog(logDir: string, nodeId: string): void {
  const file = join(logDir, `${nodeId}.log`);
  if (existsSync(file)) renameSync(file, join(logDir, `${nodeId}.previous.log`));
}

export async function up(opts: UpOptions, ctx: Context): Promise<number> {
  const shape: MeshShape = { im: parseCount(opts.im, "--im", 1, 16) };
  const withPeers = opts.peers ?? true;
  const redisUrl = opts.redis ?? (process.env.REDIS_URL || undefined);
  if (redisUrl !== undefined && !/^rediss?:\/\/./.test(redisUrl)) throw new CliError(`--redis "${redactUrl(redisUrl)}" is not a redis:// or rediss:// URL`);
  for (const c of COMPONENTS) entryPoint(c.kind);

  const stateDir = ctx.stateDir;
  const previous = readState(stateDir);
  if (previous && previous.pid !== process.pid && processAlive(previous.pid)) {
    throw new CliError(`a mesh from ${statePath(stateDir)} is already running (uims up, pid ${previous.pid})`, "stop it first (Ctrl-C in its terminal), or use another --state-dir");
  }
  const logDir = join(stateDir, "logs");
  mkdirSync(logDir, { recursive: true, mode: 0o700 });

  // The outside world of the email and sms gateways, in this process: what they receive is
  // printed here.
  let peers: DevPeers | undefined;
  if (withPeers) {
    const say = (line: string) => process.stdout.write(`${dim(formatTime(Date.now()))} ${line}\n`);
    peers = await startDevPeers({
      onSms: (sms) => say(`${cyan("local SMSC")} ${describeSms(sms)}`),
      onMail: (mail) => say(`${cyan("SMTP sink")}  ${describeMail(mail, MAIL_DOMAIN)}`),
      onReceipt: (submit, stat, outcome) =>
        say(
          dim(
            "error" in outcome
              ? `local SMSC receipt ${stat} for ${submit.smscMessageId} not sent: ${outcome.error.message}`
              : `local SMSC receipt ${stat} for ${submit.smscMessageId} sent, the gateway answered ${statusName(outcome.status)}`,
          ),
        ),
    });
    shape.peers = { smpp: peers.smpp, relayUrl: peers.relayUrl, smtpPort: await freeLoopbackPort() };
  }

  const specs = COMPONENTS.flatMap((c) => c.nodeIds(shape).map((nodeId) => ({ nodeId, kind: c.kind, role: c.role, env: c.env?.(shape) })));
  const roles = new Map(specs.map((s) => [s.nodeId, s.role]));
  for (const s of specs) rotateLog(logDir, s.nodeId);

  const mesh = new LocalMesh({
    components: specs.map(({ nodeId, kind, env }) => ({ nodeId, kind, ...(env ? { env } : {}) })),
    ...(redisUrl !== undefined ? { redisUrl } : {}),
    logDir,
    detached: true,
    env: { LOG_LEVEL: process.env.LOG_LEVEL || "info" },
  });

  let stopping = false;
  let settle: (code: number) => void = () => undefined;
  const finished = new Promise<number>((ok) => (settle = ok));
  let admin: Connection<AdminServiceClient> | undefined;

  const alive = (c: RunningComponent) => c.process.exitCode === null && c.process.signalCode === null;
  // Last resort when this process ends some other way: children in their own process group
  // would otherwise outlive it.
  const orphanGuard = () => {
    for (const c of mesh.components.values()) if (alive(c)) c.process.kill("SIGTERM");
  };
  process.on("exit", orphanGuard);

  const stop = async (code: number, why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    admin?.close();
    process.stderr.write(`\n${why}: stopping the mesh (gateways first, then the broker)…\n`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((ok) => (timer = setTimeout(() => ok("timeout"), STOP_TIMEOUT_MS)));
    const outcome = await Promise.race([mesh.stop("SIGTERM").then(() => "stopped" as const), timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      const left = [...mesh.components.values()].filter(alive);
      process.stderr.write(yellow(`${left.map((c) => c.spec.nodeId).join(", ")} did not stop within ${STOP_TIMEOUT_MS / 1000} s: killing\n`));
      await mesh.stop("SIGKILL");
    }
    // Last: the gateways may still have been handing messages to them while they drained.
    await peers?.stop();
    for (const c of mesh.components.values()) {
      const exit = c.process.exitCode;
      if (exit !== null && exit !== 0 && code === 0) process.stderr.write(yellow(`${c.spec.nodeId} exited with code ${exit}; see ${shown(c.logFile)}\n`));
    }
    const state = readState(stateDir);
    if (state?.pid === process.pid) removeState(stateDir);
    process.stderr.write(code === 0 ? `${green("stopped")}\n` : `${red("stopped")}\n`);
    settle(code);
  };

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      void stop(0, signal === "SIGINT" ? "Ctrl-C" : signal);
      return;
    }
    process.stderr.write(red("second signal: killing the mesh now\n"));
    for (const c of mesh.components.values()) if (alive(c)) c.process.kill("SIGKILL");
    removeState(stateDir);
    process.exit(1);
  };
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);

  const watch = (c: RunningComponent) =>
    c.process.once("exit", (code, signal) => {
      if (stopping) return;
      process.stderr.write(red(`\n${c.spec.nodeId} (${roles.get(c.spec.nodeId)}) exited unexpectedly with ${code ?? signal}; its log: ${shown(c.logFile)}\n`));
      void stop(1, `${c.spec.nodeId} died`);
    });

  const store = redisUrl !== undefined ? `Redis at ${redactUrl(redisUrl)}` : "the embedded store (one per process)";
  process.stdout.write(`${bold("uims")}: starting a local mesh on ${store}\n`);
  const nodeWidth = Math.max(10, ...specs.map((s) => s.nodeId.length));
  const roleWidth = Math.max(12, ...specs.map((s) => s.role.length));
  try {
    for (const s of specs) {
      if (stopping) break;
      const started = Date.now();
      process.stdout.write(`  ${s.nodeId.padEnd(nodeWidth)} ${dim(s.role.padEnd(roleWidth))} starting… `);
      const c = await mesh.startComponent({ nodeId: s.nodeId, kind: s.kind, ...(s.env ? { env: s.env } : {}) });
      watch(c);
      process.stdout.write(`${green("listening")} ${dim(`(${Date.now() - started} ms)`)}\n`);
    }
    if (stopping) return finished;

    admin = connectAdmin({ endpoint: mesh.broker.endpoint, token: mesh.secrets.UIMS_ADMIN_TOKEN }, ctx);
    await waitForRegistry(admin, specs.filter((s) => s.kind !== "broker").map((s) => s.nodeId));
    const state = meshState(mesh, redisUrl !== undefined, logDir);
    const imGateways = specs.filter((s) => s.kind === "im").map((s) => s.nodeId);
    for (const demo of DEMO_CLIENTS) {
      if (stopping) return finished;
      const token = await ensureProfile(admin, fullProfile(demo.profile));
      const home = imGateways.includes(demo.home) ? demo.home : imGateways[0]!;
      state.clients[demo.profile.clientId] = { token, gateway: home };
      await introduce(admin, ctx, demo.profile.clientId, mesh.components.get(home)!.clientEndpoint!, token, home);
    }
    if (stopping) return finished;
    if (peers) state.peers = { smsc: peers.smsc.url, smtpSink: peers.sink.url };
    writeState(stateDir, state);
    printReady(mesh, roles, state, stateDir, peers);
  } catch (err) {
    if (!stopping) {
      const { message, hint, expected } = describeError(err);
      // A server that fails to start is expected here, not a bug: no stack trace. Its message
      // carries the tail of the log; the file has all of it.
      const text = !expected && err instanceof Error ? err.message : message;
      process.stdout.write("\n");
      process.stderr.write(`${red("uims: error:")} ${text.split("\n")[0]}\n`);
      if (hint) process.stderr.write(`${dim(hint)}\n`);
      process.stderr.write(`${dim(`logs: ${shown(logDir)}${sep}`)}\n`);
      await stop(1, "start failed");
    }
  }
  return finished;
}

function nodeEntry(c: RunningComponent): NodeEntry {
  const smtp = smtpEndpoint(c);
  return {
    kind: c.spec.kind,
    endpoint: c.endpoint,
    ...(c.clientEndpoint ? { clientEndpoint: c.clientEndpoint } : {}),
    ...(smtp ? { smtpEndpoint: smtp } : {}),
    ...(c.process.pid !== undefined ? { pid: c.process.pid } : {}),
    logFile: c.logFile,
  };
}

function meshState(mesh: LocalMesh, redis: boolean, logDir: string): MeshState {
  const gateways: Record<string, NodeEntry> = {};
  for (const c of mesh.components.values()) if (c.spec.kind !== "broker") gateways[c.spec.nodeId] = nodeEntry(c);
  return {
    version: 1,
    pid: process.pid,
    startedAtUnixMs: Date.now(),
    store: redis ? "redis" : "embedded",
    logDir,
    broker: { nodeId: mesh.broker.spec.nodeId, ...nodeEntry(mesh.broker) },
    adminToken: mesh.secrets.UIMS_ADMIN_TOKEN,
    gateways,
    clients: {},
  };
}

/** Commands, one a line, their comments aligned. */
function commandBlock(commands: ReadonlyArray<readonly [string, string?]>): string[] {
  const width = Math.max(...commands.filter(([, comment]) => comment).map(([line]) => line.length));
  return commands.map(([line, comment]) => `  ${cyan(comment ? line.padEnd(width) : line)}${comment ? `    ${dim(`# ${comment}`)}` : ""}`);
}

function printReady(mesh: LocalMesh, roles: Map<string, string>, state: MeshState, stateDir: string, peers: DevPeers | undefined): void {
  const out: string[] = [];
  out.push("");
  out.push(table(["node", "role", "endpoints", "pid", "log"], componentRows(mesh, roles, peers)));
  out.push("");
  const clients = Object.entries(state.clients).map(([id, c]) => `${id} on ${c.gateway}`);
  out.push(`${green("ready.")} Demo clients: ${clients.join(", ")}. State and tokens: ${shown(statePath(stateDir))} (mode 0600).`);
  out.push("");
  out.push(bold("Try it, in a second terminal:"));
  out.push(...invocation(stateDir).map((l) => `  ${cyan(l)}`));
  out.push(
    ...commandBlock([
      ["uims inbox --as bob", "bob's live inbox (leave it running)"],
      ['uims send --as alice --to bob "hello"', "in a third terminal"],
      ["uims status <message-id> --as alice --follow"],
      ["uims profiles list"],
      ["uims route --from alice --to bob"],
      ["uims gateways"],
    ]),
  );
  const smtp = Object.values(state.gateways).find((g) => g.smtpEndpoint)?.smtpEndpoint;
  if (peers && smtp) {
    out.push("");
    out.push(bold("Mail turns into SMS. bob is not online in im (stop his inbox first), so a mail for him goes to his phone:"));
    out.push(`  ${cyan(`swaks --server 127.0.0.1 --port ${smtp.split(":").pop()} --from friend@example.org --to bob@${MAIL_DOMAIN} --header "Subject: hello" --body "Mail turned into SMS"`)}`);
    out.push(
      ...commandBlock([
        ["uims tx <message-id>", `the id from swaks' "250 2.0.0 OK: queued as <message-id>"`],
        ["uims route --from alice --to bob --content-type message/rfc822", "why SMS: im is offline, sms reaches him now"],
        [`uims send --as alice --to sms:${BOB_PHONE} "hi"`, "im -> SMS; then uims status <message-id> --as alice"],
        ['uims send --as alice --to mailto:someone@example.org "hi"', "im -> mail"],
      ]),
    );
    out.push(
      dim(
        `This terminal shows each SMS the local SMSC receives (it answers each with a DELIVRD receipt after ${RECEIPT_DELAY_MS / 1000} s) and each mail the SMTP sink receives; nothing leaves this machine.`,
      ),
    );
  }
  out.push("");
  out.push(dim(`Logs (JSON lines): ${shown(state.logDir)}${sep}<node>.log. Ctrl-C stops everything.`));
  process.stdout.write(`${out.join("\n")}\n`);
}
