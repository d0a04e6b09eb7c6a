import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { swaks } from "../test/support/smtp";
import { processAlive, statePath, type MeshState } from "./state";

/**
 * The command line as people use it: `uims up` in one process, the other commands as separate
 * processes against the mesh it started, from the built dist/ (make test builds it first).
 */

const MAIN = resolve(__dirname, "..", "dist", "cli", "main.js");

function requireBuild(): void {
  if (!existsSync(MAIN)) throw new Error("dist/cli/main.js is missing: run `make build` first (make test does)");
}

function cliEnv(): NodeJS.ProcessEnv {
  // The embedded store, plain output, and nothing from a developer's shell steering the CLI.
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  for (const name of ["REDIS_URL", "UIMS_STATE_DIR", "UIMS_GATEWAY", "UIMS_TOKEN", "UIMS_BROKER", "UIMS_ADMIN_TOKEN", "FORCE_COLOR"]) delete env[name];
  return env;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function uims(args: string[], timeoutMs = 10_000): Promise<Result> {
  return new Promise((ok) => {
    execFile(process.execPath, [MAIN, ...args], { env: cliEnv(), timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : null) : 0;
      ok({ code, stdout, stderr });
    });
  });
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((ok) => child.once("exit", (code) => ok(code)));
}

/** A `uims up` process and what it printed so far. */
interface UpRun {
  up: ChildProcess;
  stateDir: string;
  state: MeshState;
  out: string;
  err: string;
  /** The servers it started. */
  childPids: number[];
}

/** Starts `uims up` with these arguments in a fresh state dir; resolves once it printed its ready block. */
async function startUp(args: string[]): Promise<UpRun> {
  const stateDir = mkdtempSync(join(tmpdir(), "uims-cli-"));
  const up = spawn(process.execPath, [MAIN, "up", "--state-dir", stateDir, ...args], { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const run: Omit<UpRun, "state"> = { up, stateDir, out: "", err: "", childPids: [] };
  up.stdout!.on("data", (c: Buffer) => (run.out += c.toString()));
  up.stderr!.on("data", (c: Buffer) => (run.err += c.toString()));
  const state = await until(
    () => {
      if (up.exitCode !== null) throw new Error(`uims up exited with ${up.exitCode}:\n${run.out}\n${run.err}`);
      return existsSync(statePath(stateDir)) ? (JSON.parse(readFileSync(statePath(stateDir), "utf8")) as MeshState) : undefined;
    },
    20_000,
    "mesh.json",
  );
  // mesh.json is written just before the ready block.
  await until(() => (run.out.includes("Ctrl-C stops everything") ? true : undefined), 5_000, "the ready block");
  run.childPids.push(state.broker.pid!, ...Object.values(state.gateways).map((g) => g.pid!));
  return Object.assign(run, { state });
}

/** Only after a failure: the tests themselves stop the mesh. */
function killLeftovers(run: UpRun | undefined): void {
  if (!run || run.up.exitCode !== null || run.up.signalCode !== null) return;
  run.up.kill("SIGKILL");
  for (const pid of run.childPids) if (processAlive(pid)) process.kill(pid, "SIGKILL");
}

/** SIGTERM to `uims up`: it exits 0, every server it started is gone, and so is mesh.json. */
async function stopUp(run: UpRun): Promise<void> {
  run.up.kill("SIGTERM");
  expect(await exited(run.up)).toBe(0);
  expect(run.err).toContain("stopped");
  expect(run.childPids.filter(processAlive)).toEqual([]);
  expect(existsSync(statePath(run.stateDir))).toBe(false);
}

describe("uims command line against a mesh started by `uims up --no-peers`", () => {
  let run: UpRun | undefined;
  let stateDir: string;
  let state: MeshState;
  let childPids: number[];
  const upOut = () => run!.out;

  beforeAll(async () => {
    requireBuild();
    run = await startUp(["--no-peers"]);
    ({ stateDir, state, childPids } = run);
  }, 30_000);

  afterAll(() => killLeftovers(run));

  test("up prints the components and what to try, and writes mesh.json for its clients", () => {
    expect(upOut()).toMatch(/broker-0\s+broker\s+mesh\+admin 127\.0\.0\.1:\d+\s+\d+/);
    expect(upOut()).toMatch(/gw-im-1\s+im gateway\s+client 127\.0\.0\.1:\d+, mesh 127\.0\.0\.1:\d+/);
    expect(upOut()).toMatch(/gw-im-2\s+im gateway/);
    expect(upOut()).toMatch(/proc-1\s+processor/);
    expect(upOut()).toContain('uims send --as alice --to bob "hello"');
    expect(upOut()).toContain("uims inbox --as bob");
    // --no-peers: no email or sms gateway, no local SMSC or SMTP sink, no mail demo.
    expect(Object.keys(state.gateways).sort()).toEqual(["gw-im-1", "gw-im-2", "proc-1"]);
    expect(state.peers).toBeUndefined();
    expect(upOut()).not.toContain("swaks");
    expect(Object.keys(state.clients).sort()).toEqual(["alice", "bob", "carol"]);
    expect(state.clients.alice!.gateway).toBe("gw-im-1");
    expect(state.clients.bob!.gateway).toBe("gw-im-2");
    expect(state.clients.carol!.gateway).toBe("gw-im-2");
    expect(childPids.every(processAlive)).toBe(true);
  });

  test("send, inbox, status and profiles through the CLI; SIGTERM stops everything", async () => {
    const dir = ["--state-dir", stateDir];
    const sent = await uims([...dir, "send", "--as", "alice", "--to", "bob", "hi from the command line"]);
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
    const messageId = /^message\s+(\S+)/m.exec(sent.stdout)?.[1];
    expect(messageId).toBeDefined();
    expect(sent.stdout).toMatch(/status\s+ROUTED/);

    // bob was not connected when alice sent: the message waits in his inbox on his gateway.
    const inbox = spawn(process.execPath, [MAIN, ...dir, "inbox", "--as", "bob"], { env: cliEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let inboxOut = "";
    inbox.stdout!.on("data", (c: Buffer) => (inboxOut += c.toString()));
    try {
      await until(() => (inboxOut.includes("hi from the command line") ? true : undefined), 10_000, "the message in bob's inbox");
    } finally {
      inbox.kill("SIGTERM");
    }
    expect(await exited(inbox)).toBe(0);
    expect(inboxOut).toMatch(/alice\s+via im · id \S+ · cursor \d+-\d+/);

    const delivered = await until(
      async () => {
        const r = await uims([...dir, "status", messageId!, "--as", "alice"]);
        return /^state\s+DELIVERED on im/m.test(r.stdout) ? r : undefined;
      },
      10_000,
      "DELIVERED",
    );
    expect(delivered.stdout).toMatch(/^trace\s+[0-9a-f]{32}$/m);
    for (const step of ["ACCEPTED", "ROUTED", "TRANSMITTED", "DELIVERED"]) expect(delivered.stdout).toMatch(new RegExp(`^\\S+\\s+${step}\\s+im`, "m"));

    const list = await uims([...dir, "profiles", "list"]);
    expect(list.code).toBe(0);
    for (const id of ["alice", "bob", "carol"]) expect(list.stdout).toMatch(new RegExp(`^${id}\\s`, "m"));

    const refused = await uims([...dir, "status", "no-such-message", "--as", "alice"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^uims: error: NOT_FOUND: /);
    expect(refused.stderr).not.toMatch(/\bat .*\.js:\d+/);

    await stopUp(run!);
  }, 45_000);
});

describe("the demo of `uims up`: email and sms gateways with a local SMSC and SMTP sink", () => {
  let run: UpRun | undefined;
  let smtpPort: number;
  const dir = () => ["--state-dir", run!.stateDir];

  beforeAll(async () => {
    requireBuild();
    run = await startUp([]);
    smtpPort = Number(run.state.gateways["gw-email-1"]?.smtpEndpoint?.split(":")[1]);
  }, 30_000);

  afterAll(() => killLeftovers(run));

  test("up starts the email and sms gateways and the local peers, and prints the mail demo with its port", () => {
    const out = run!.out;
    expect(out).toMatch(/gw-email-1\s+email gateway\s+smtp 127\.0\.0\.1:\d+, mesh 127\.0\.0\.1:\d+\s+\d+/);
    expect(out).toMatch(/gw-sms-1\s+sms gateway\s+mesh 127\.0\.0\.1:\d+/);
    expect(out).toMatch(new RegExp(`smsc\\s+local SMSC\\s+smpp 127\\.0\\.0\\.1:\\d+\\s+${run!.up.pid}\\s+this terminal`));
    expect(out).toMatch(/smtp-sink\s+SMTP sink\s+smtp 127\.0\.0\.1:\d+/);
    expect(smtpPort).toBeGreaterThan(0);
    expect(out).toContain(`swaks --server 127.0.0.1 --port ${smtpPort} --from friend@example.org --to bob@uims.local --header "Subject: hello" --body "Mail turned into SMS"`);
    expect(out).toContain('uims send --as alice --to sms:+491701234567 "hi"');
    expect(out).toContain('uims send --as alice --to mailto:someone@example.org "hi"');
    expect(Object.keys(run!.state.gateways).sort()).toEqual(["gw-email-1", "gw-im-1", "gw-im-2", "gw-sms-1", "proc-1"]);
    expect(run!.state.peers?.smsc).toMatch(/^smpp:\/\/127\.0\.0\.1:\d+$/);
  });

  test("a mail for bob, who is not online in im, becomes an SMS to his phone, DELIVERED by the SMSC's receipt", async () => {
    const mail = await swaks(smtpPort, ["--from", "friend@example.org", "--to", "bob@uims.local", "--header", "Subject: hello", "--body", "Mail turned into SMS"]);
    expect(mail.exitCode).toBe(0);
    const messageId = /^250 2\.0\.0 OK: queued as (\S+)$/.exec(mail.decisive)?.[1];
    expect(messageId).toBeDefined();

    await until(() => (run!.out.includes('local SMSC SMS to +491701234567 from +4915550000, GSM 7-bit, 1 segment: "hello\\nMail turned into SMS"') ? true : undefined), 10_000, "the SMS at the local SMSC");
    const tx = await until(
      async () => {
        const r = await uims([...dir(), "tx", messageId!]);
        return /^state\s+DELIVERED on sms$/m.test(r.stdout) ? r : undefined;
      },
      10_000,
      "DELIVERED on sms",
    );
    expect(tx.stdout).toMatch(/^sender\s+mailto:friend@example\.org$/m);
    expect(tx.stdout).toMatch(/^\S+\s+ROUTED\s+sms\s+1\s+gw-sms-1\s+sms to \+491701234567 via proc-1/m);
    expect(run!.out).toMatch(/local SMSC receipt DELIVRD for \w+ sent, the gateway answered ESME_ROK/);
  }, 30_000);

  test("im to mail reaches the SMTP sink, im to SMS the local SMSC; SIGTERM stops everything", async () => {
    const mail = await uims([...dir(), "send", "--as", "alice", "--to", "mailto:x@example.org", "-q", "hi by mail"]);
    expect(mail.stderr).toBe("");
    const mailId = mail.stdout.trim();
    await until(() => (run!.out.includes(`SMTP sink  mail to x@example.org from alice@uims.local, subject "Message from alice", message ${mailId}: "hi by mail"`) ? true : undefined), 10_000, "the mail at the sink");

    const sms = await uims([...dir(), "send", "--as", "alice", "--to", "sms:+491709999999", "-q", "hi by SMS"]);
    expect(sms.stderr).toBe("");
    await until(() => (run!.out.includes('local SMSC SMS to +491709999999 from +4915550000, GSM 7-bit, 1 segment: "hi by SMS"') ? true : undefined), 10_000, "the SMS at the SMSC");

    await stopUp(run!);
  }, 30_000);
});

describe("uims without a mesh", () => {
  beforeAll(requireBuild);

  test("a missing mesh is one line of advice and exit code 1, no stack trace", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "uims-cli-"));
    const r = await uims(["--state-dir", stateDir, "send", "--as", "alice", "--to", "bob", "hi"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^uims: error: no mesh state at .*mesh\.json/);
    expect(r.stderr).toContain("make run");
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  test("keys prints a full set of secrets", async () => {
    const r = await uims(["keys", "--key-id", "k1"]);
    expect(r.code).toBe(0);
    const names = r.stdout.trim().split("\n").map((l) => l.split("=")[0]);
    expect(names).toEqual(["UIMS_K1_KEYS", "UIMS_K2_KEYS", "UIMS_RELEASE_SIGNING_KEY", "UIMS_RELEASE_VERIFY_KEYS", "UIMS_ADMIN_TOKEN"]);
    expect(r.stdout).toMatch(/^UIMS_K1_KEYS=k1:[A-Za-z0-9+/]{43}=$/m);
  });

  test("usage errors name the problem", async () => {
    const r = await uims(["send", "--as", "alice", "hi"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/required option '--to <recipient>' not specified/);
    const ttl = await uims(["send", "--as", "alice", "--to", "bob", "--ttl", "60", "hi"]);
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toMatch(/--ttl "60" is not a duration/);
  });
});
