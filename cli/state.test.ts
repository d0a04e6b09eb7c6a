import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CliError } from "./errors";
import { DEFAULT_STATE_DIR, pickHomeGateway, readState, removeState, resolveAdmin, resolveClient, resolveStateDir, statePath, updateState, writeState, type MeshState } from "./state";

// A pid that cannot be running: above the kernel's pid_max.
const DEAD_PID = 2 ** 22 + 1;

function sampleState(pid = process.pid): MeshState {
  return {
    version: 1,
    pid,
    startedAtUnixMs: 1,
    store: "embedded",
    logDir: "/logs",
    broker: { nodeId: "broker-0", kind: "broker", endpoint: "127.0.0.1:4000" },
    adminToken: "adm_secret",
    gateways: {
      "gw-im-1": { kind: "im", endpoint: "127.0.0.1:4001", clientEndpoint: "127.0.0.1:5001" },
      "gw-im-2": { kind: "im", endpoint: "127.0.0.1:4002", clientEndpoint: "127.0.0.1:5002" },
    },
    clients: {
      alice: { token: "tok-alice", gateway: "gw-im-1" },
      bob: { token: "tok-bob", gateway: "gw-im-2" },
    },
  };
}

function dirWith(state?: MeshState): string {
  const dir = mkdtempSync(join(tmpdir(), "uims-state-"));
  if (state) writeState(dir, state);
  return dir;
}

describe("mesh.json", () => {
  test("is written readable by its owner only, atomically, and read back", () => {
    const dir = dirWith(sampleState());
    expect(statSync(statePath(dir)).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["mesh.json"]);
    expect(readState(dir)).toEqual(sampleState());
    expect(updateState(dir, (s) => (s.clients.carol = { token: "tok-carol", gateway: "gw-im-2" }))).toBe(true);
    expect(readState(dir)?.clients.carol?.token).toBe("tok-carol");
    expect(statSync(statePath(dir)).mode & 0o777).toBe(0o600);
    removeState(dir);
    expect(existsSync(statePath(dir))).toBe(false);
    expect(readState(dir)).toBeUndefined();
    expect(updateState(dir, () => undefined)).toBe(false);
  });

  test("a damaged or foreign file is refused with advice", () => {
    const dir = dirWith();
    writeFileSync(statePath(dir), "{not json");
    expect(() => readState(dir)).toThrow(/not valid JSON/);
    writeFileSync(statePath(dir), JSON.stringify({ version: 99 }));
    expect(() => readState(dir)).toThrow(/not a mesh state this version understands/);
  });

  test("the state dir: option, then UIMS_STATE_DIR, then .uims", () => {
    expect(resolveStateDir("/x/y", { UIMS_STATE_DIR: "/z" })).toBe("/x/y");
    expect(resolveStateDir(undefined, { UIMS_STATE_DIR: "/z" })).toBe("/z");
    expect(resolveStateDir(undefined, {})).toBe(resolve(DEFAULT_STATE_DIR));
  });

  test("a new client's home is the im gateway with the fewest clients", () => {
    const state = sampleState();
    expect(pickHomeGateway(state)).toBe("gw-im-1");
    state.clients.carol = { token: "t", gateway: "gw-im-1" };
    expect(pickHomeGateway(state)).toBe("gw-im-2");
    expect(pickHomeGateway({ ...state, gateways: {} })).toBeUndefined();
  });
});

describe("resolveClient", () => {
  test("--as reads endpoint and token from mesh.json", () => {
    const dir = dirWith(sampleState());
    expect(resolveClient({ as: "bob" }, dir, {})).toEqual({ endpoint: "127.0.0.1:5002", token: "tok-bob", clientId: "bob", gatewayNodeId: "gw-im-2", ownerPid: process.pid });
  });

  test("explicit flags win over --as and the environment", () => {
    const dir = dirWith(sampleState());
    expect(resolveClient({ as: "bob", gateway: "10.0.0.1:7000" }, dir, {})).toEqual({ endpoint: "10.0.0.1:7000", token: "tok-bob", clientId: "bob", gatewayNodeId: "gw-im-2" });
    expect(resolveClient({ gateway: "10.0.0.1:7000", token: "t" }, dir, { UIMS_GATEWAY: "10.0.0.2:1", UIMS_TOKEN: "e" })).toEqual({ endpoint: "10.0.0.1:7000", token: "t" });
  });

  test("without --as or flags: UIMS_GATEWAY and UIMS_TOKEN", () => {
    expect(resolveClient({}, dirWith(), { UIMS_GATEWAY: "gw.example:50061", UIMS_TOKEN: "env-token" })).toEqual({ endpoint: "gw.example:50061", token: "env-token" });
  });

  test("nothing to go on: says which options exist", () => {
    expect(() => resolveClient({}, dirWith(), {})).toThrow(/--as <client>.*--gateway host:port and --token/);
    expect(() => resolveClient({ gateway: "h:1" }, dirWith(), {})).toThrow(CliError);
  });

  test("--as without a running mesh, or for an unknown client", () => {
    const none = dirWith();
    expect(() => resolveClient({ as: "bob" }, none, {})).toThrow(/no mesh state at .*mesh\.json/);
    const stale = dirWith(sampleState(DEAD_PID));
    expect(() => resolveClient({ as: "bob" }, stale, {})).toThrow(/is not running/);
    const running = dirWith(sampleState());
    expect(() => resolveClient({ as: "zoe" }, running, {})).toThrow(/no client "zoe" .*known: alice, bob/);
  });

  test("a malformed endpoint is refused", () => {
    expect(() => resolveClient({ gateway: "nowhere", token: "t" }, dirWith(), {})).toThrow(/not host:port/);
  });
});

describe("resolveAdmin", () => {
  test("flags, then the environment, then mesh.json", () => {
    const dir = dirWith(sampleState());
    expect(resolveAdmin({}, dir, {})).toEqual({ endpoint: "127.0.0.1:4000", token: "adm_secret" });
    expect(resolveAdmin({}, dir, { UIMS_BROKER: "b:1", UIMS_ADMIN_TOKEN: "env" })).toEqual({ endpoint: "b:1", token: "env" });
    expect(resolveAdmin({ broker: "c:2" }, dir, { UIMS_BROKER: "b:1" })).toEqual({ endpoint: "c:2", token: "adm_secret" });
    expect(resolveAdmin({ broker: "c:2", adminToken: "flag" }, dirWith(), {})).toEqual({ endpoint: "c:2", token: "flag" });
  });

  test("no broker anywhere, or a mesh that has stopped", () => {
    expect(() => resolveAdmin({}, dirWith(), {})).toThrow(/no broker given/);
    expect(() => resolveAdmin({}, dirWith(sampleState(DEAD_PID)), {})).toThrow(/is not running/);
  });

  test("the file holds the admin token: never world-readable", () => {
    const dir = dirWith(sampleState());
    expect(readFileSync(statePath(dir), "utf8")).toContain("adm_secret");
    expect(statSync(statePath(dir)).mode & 0o077).toBe(0);
  });
});
