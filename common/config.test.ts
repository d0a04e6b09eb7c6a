import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  ConfigError,
  DEFAULT_GRPC_PORT,
  EnvReader,
  loadCommonConfig,
  parseDurationMs,
  parseHostPort,
  readCommonConfig,
  type Env,
} from "./config";

const KEY_A = Buffer.alloc(32, 0xa1);
const KEY_B = Buffer.alloc(48, 0xb2);
const SHORT_KEY = Buffer.alloc(16, 0xc3);
const keyringValue = (...entries: Array<[string, Buffer]>): string => entries.map(([id, k]) => `${id}:${k.toString("base64")}`).join(",");

function problemsOf(fn: () => void): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.message);
    throw err;
  }
  throw new Error("expected a ConfigError");
}

function read<T>(env: Env, fn: (r: EnvReader) => T): { value: T; problems: string[] } {
  const r = new EnvReader(env);
  const value = fn(r);
  let problems: string[] = [];
  try {
    r.finish();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems = err.problems.map((p) => p.message);
  }
  return { value, problems };
}

describe("EnvReader", () => {
  test("string: required, default, pattern, blank counts as unset", () => {
    expect(read({ A: " x " }, (r) => r.string("A")).value).toBe("x");
    expect(read({}, (r) => r.string("A", { default: "d" })).value).toBe("d");
    expect(read({ A: "   " }, (r) => r.string("A", { default: "d" })).value).toBe("d");
    expect(read({}, (r) => r.string("A")).problems).toEqual(["A is not set: expected a value"]);
    expect(read({ A: "UPPER" }, (r) => r.string("A", { pattern: /^[a-z]+$/ })).problems).toEqual([
      'A="UPPER": expected a value matching ^[a-z]+$',
    ]);
    expect(read({}, (r) => r.optionalString("A")).value).toBeUndefined();
  });

  test("string: secret values are never shown", () => {
    const { problems } = read({ S: "hunter2-secret" }, (r) => r.string("S", { pattern: /^\d+$/, secret: true }));
    expect(problems).toEqual(["S=<secret, not shown>: expected a value matching ^\\d+$"]);
    expect(problems.join()).not.toContain("hunter2");
  });

  test("int with min and max", () => {
    expect(read({ N: "42" }, (r) => r.int("N", { min: 1, max: 100 })).value).toBe(42);
    expect(read({ N: "-3" }, (r) => r.int("N")).value).toBe(-3);
    expect(read({}, (r) => r.int("N", { default: 7 })).value).toBe(7);
    expect(read({ N: "4.5" }, (r) => r.int("N", { min: 1, max: 10 })).problems).toEqual(['N="4.5": expected an integer from 1 to 10']);
    expect(read({ N: "0" }, (r) => r.int("N", { min: 1 })).problems).toEqual(['N="0": expected an integer >= 1']);
    expect(read({ N: "12abc" }, (r) => r.int("N", { max: 5 })).problems).toEqual(['N="12abc": expected an integer <= 5']);
    expect(read({ N: "99999999999999999999" }, (r) => r.int("N")).problems).toHaveLength(1);
  });

  test("port: 1-65535, zero only when allowed", () => {
    expect(read({ P: "8080" }, (r) => r.port("P")).value).toBe(8080);
    expect(read({}, (r) => r.port("P", 50051)).value).toBe(50051);
    expect(read({ P: "0" }, (r) => r.port("P", 1, { allowZero: true })).value).toBe(0);
    expect(read({ P: "0" }, (r) => r.port("P")).problems).toEqual(['P="0": expected an integer from 1 to 65535']);
    expect(read({ P: "70000" }, (r) => r.port("P")).problems).toEqual(['P="70000": expected an integer from 1 to 65535']);
    expect(read({ P: "http" }, (r) => r.port("P", 80)).problems).toHaveLength(1);
    expect(read({}, (r) => r.optionalPort("P")).value).toBeUndefined();
  });

  test("durationMs: plain ms and units", () => {
    expect(parseDurationMs("1500")).toBe(1500);
    expect(parseDurationMs("500ms")).toBe(500);
    expect(parseDurationMs("30s")).toBe(30_000);
    expect(parseDurationMs("1.5s")).toBe(1500);
    expect(parseDurationMs("2m")).toBe(120_000);
    expect(parseDurationMs("1h")).toBe(3_600_000);
    expect(parseDurationMs("0.5ms")).toBeUndefined();
    expect(parseDurationMs("10 days")).toBeUndefined();
    expect(parseDurationMs("-5s")).toBeUndefined();
    expect(read({ D: "30s" }, (r) => r.durationMs("D")).value).toBe(30_000);
    expect(read({}, (r) => r.durationMs("D", 10_000)).value).toBe(10_000);
    expect(read({ D: "soon" }, (r) => r.durationMs("D", 1)).problems).toEqual([
      'D="soon": expected a duration in ms ("1500") or with a unit ("500ms", "30s", "2m", "1h")',
    ]);
    expect(read({ D: "20m" }, (r) => r.durationMs("D", 1, { min: 1000, max: 600_000 })).problems).toEqual([
      'D="20m": expected a duration in ms ("1500") or with a unit ("500ms", "30s", "2m", "1h") from 1000 ms to 600000 ms',
    ]);
  });

  test("bool: true/false/1/0", () => {
    for (const [text, value] of [
      ["true", true],
      ["TRUE", true],
      ["1", true],
      ["false", false],
      ["False", false],
      ["0", false],
    ] as const) {
      expect(read({ B: text }, (r) => r.bool("B")).value).toBe(value);
    }
    expect(read({}, (r) => r.bool("B", true)).value).toBe(true);
    expect(read({ B: "yes" }, (r) => r.bool("B", false)).problems).toEqual(['B="yes": expected one of "true", "false", "1", "0"']);
    expect(read({}, (r) => r.bool("B")).problems).toEqual(['B is not set: expected one of "true", "false", "1", "0"']);
  });

  test("enum", () => {
    const modes = ["fast", "safe"] as const;
    expect(read({ M: "safe" }, (r) => r.enum("M", modes)).value).toBe("safe");
    expect(read({}, (r) => r.enum("M", modes, "fast")).value).toBe("fast");
    expect(read({ M: "SAFE" }, (r) => r.enum("M", modes, "fast")).problems).toEqual(['M="SAFE": expected one of "fast", "safe"']);
  });

  test("url: scheme check, passwords masked", () => {
    expect(read({ U: "redis://localhost:6379/0" }, (r) => r.url("U", ["redis:", "rediss:"])).value).toBe("redis://localhost:6379/0");
    expect(read({}, (r) => r.optionalUrl("U")).value).toBeUndefined();
    expect(read({}, (r) => r.url("U", undefined, "http://x")).value).toBe("http://x");
    const wrongScheme = read({ U: "http://user:s3cr3t@cache:6379" }, (r) => r.optionalUrl("U", ["redis:", "rediss:"]));
    expect(wrongScheme.problems).toEqual(['U="http://***@cache:6379": expected a URL with scheme redis or rediss']);
    const unparsable = read({ U: "redis://:pa ss@" }, (r) => r.optionalUrl("U", ["redis:"]));
    expect(unparsable.problems).toHaveLength(1);
    expect(unparsable.problems[0]).not.toContain("pa ss");
    expect(read({ U: "not a url" }, (r) => r.url("U")).problems).toEqual(['U="not a url": expected an absolute URL']);
  });

  test("list: comma separated, trimmed, items checked", () => {
    expect(read({ L: " a, b ,,c " }, (r) => r.list("L")).value).toEqual(["a", "b", "c"]);
    expect(read({}, (r) => r.list("L", { default: ["x"] })).value).toEqual(["x"]);
    expect(read({}, (r) => r.list("L")).value).toEqual([]);
    expect(read({ L: "sms,FAX,im" }, (r) => r.list("L", { pattern: /^[a-z]+$/, expected: "media" })).problems).toEqual([
      'L="sms,FAX,im": expected a comma-separated list of media (bad: "FAX")',
    ]);
  });

  test("hostPort", () => {
    expect(parseHostPort("broker:50051")).toEqual({ host: "broker", port: 50051, address: "broker:50051" });
    expect(parseHostPort("[::1]:50051")).toEqual({ host: "::1", port: 50051, address: "[::1]:50051" });
    expect(parseHostPort("broker")).toBeUndefined();
    expect(parseHostPort("broker:0")).toBeUndefined();
    expect(parseHostPort("::1:50051")).toBeUndefined();
    expect(read({ A: "10.0.0.1:7000" }, (r) => r.hostPort("A")).value.address).toBe("10.0.0.1:7000");
    expect(read({}, (r) => r.hostPort("A", "localhost:1")).value.port).toBe(1);
    expect(read({ A: "broker:99999" }, (r) => r.hostPort("A")).problems).toEqual([
      'A="broker:99999": expected an address "host:port" with a port 1-65535 (IPv6 as "[::1]:port")',
    ]);
    expect(read({}, (r) => r.hostPort("A")).problems).toEqual(['A is not set: expected an address "host:port"']);
  });

  test("keyring: first is current, all verify, base64 and base64url", () => {
    const urlSafe = Buffer.alloc(32, 0xfb);
    const { value, problems } = read({ K: `k2:${KEY_B.toString("base64")}, k1:${urlSafe.toString("base64url")}` }, (r) => r.keyring("K"));
    expect(problems).toEqual([]);
    expect(value.current.id).toBe("k2");
    expect(value.current.key.equals(KEY_B)).toBe(true);
    expect([...value.all.keys()]).toEqual(["k2", "k1"]);
    expect(value.all.get("k1")?.equals(urlSafe)).toBe(true);
  });

  test("keyring: never reveals key material, in errors or when printed", () => {
    const secret = SHORT_KEY.toString("base64");
    const { problems } = read({ K: keyringValue(["k1", KEY_A], ["k0", SHORT_KEY]) }, (r) => r.keyring("K"));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('key "k0" decodes to 16 bytes, at least 32 are required');
    expect(problems[0]).not.toContain(secret);
    expect(problems[0]).not.toContain(KEY_A.toString("base64"));

    // Key and id swapped: the key must not be echoed as if it were an id.
    for (const key of [KEY_A.toString("base64"), KEY_A.toString("base64url")]) {
      const swapped = read({ K: `${key}:k1` }, (r) => r.keyring("K")).problems.join();
      expect(swapped).not.toContain(key);
      expect(swapped).toContain("entry 1 has an invalid key id");
    }

    const ring = read({ K: keyringValue(["k1", KEY_A]) }, (r) => r.keyring("K")).value;
    expect(JSON.stringify({ ring })).toBe('{"ring":"Keyring(current=k1, ids=[k1])"}');
    expect(inspect(ring)).toBe("Keyring(current=k1, ids=[k1])");
    expect(JSON.stringify(ring.current)).toBe('{"id":"k1"}');
  });

  test("keyring: malformed entries", () => {
    const messages = read({ K: `k1:${KEY_A.toString("base64")},k1:${KEY_A.toString("base64")},k2:!!notbase64!!,nocolon` }, (r) =>
      r.keyring("K"),
    ).problems;
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('key id "k1" appears twice');
    expect(messages[0]).toContain('key "k2" is not valid base64');
    expect(messages[0]).toContain('entry 4 is not "id:base64key"');
    expect(read({ K: "," }, (r) => r.keyring("K")).problems[0]).toContain("no keys");
    expect(read({}, (r) => r.keyring("K")).problems[0]).toMatch(/^K is not set: expected a keyring/);
    expect(read({}, (r) => r.optionalKeyring("K")).value).toBeUndefined();
  });

  test("file: must exist and be a regular file", () => {
    const dir = mkdtempSync(join(tmpdir(), "uims-config-"));
    try {
      const path = join(dir, "cert.pem");
      writeFileSync(path, "x");
      expect(read({ F: path }, (r) => r.file("F")).value).toBe(path);
      expect(read({ F: join(dir, "missing.pem") }, (r) => r.file("F")).problems[0]).toContain("(no such file)");
      expect(read({ F: dir }, (r) => r.file("F")).problems[0]).toContain("not a regular file");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("collects every problem and throws once", () => {
    const r = new EnvReader({ A: "x", P: "http", D: "later" });
    r.int("A");
    r.port("P");
    r.durationMs("D");
    r.string("MISSING");
    r.problem("X, Y", "must be set together");
    let caught: unknown;
    try {
      r.finish();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.problems.map((p) => p.name)).toEqual(["A", "P", "D", "MISSING", "X, Y"]);
    expect(err.message).toBe(
      [
        "invalid configuration (5 problems):",
        '  - A="x": expected an integer',
        '  - P="http": expected an integer from 1 to 65535',
        '  - D="later": expected a duration in ms ("1500") or with a unit ("500ms", "30s", "2m", "1h")',
        "  - MISSING is not set: expected a value",
        "  - X, Y: must be set together",
      ].join("\n"),
    );
  });
});

describe("loadCommonConfig", () => {
  const minimal: Env = { NODE_ID: "broker-0", UIMS_K1_KEYS: keyringValue(["k1", KEY_A]) };

  test("defaults", () => {
    const config = loadCommonConfig(minimal);
    expect(config).toMatchObject({
      nodeId: "broker-0",
      grpcHost: "0.0.0.0",
      grpcPort: DEFAULT_GRPC_PORT,
      shutdownGraceMs: 10_000,
      logLevel: "info",
      tscsWindowMs: 30_000,
    });
    expect(config.metricsPort).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.tls).toBeUndefined();
    expect(config.k1.current.id).toBe("k1");
  });

  test("every variable set", () => {
    const dir = mkdtempSync(join(tmpdir(), "uims-config-"));
    try {
      const files = ["cert.pem", "key.pem", "ca.pem"].map((f) => join(dir, f));
      for (const f of files) writeFileSync(f, "pem");
      const config = loadCommonConfig({
        ...minimal,
        GRPC_HOST: "127.0.0.1",
        GRPC_PORT: "0",
        METRICS_PORT: "9464",
        REDIS_URL: "rediss://redis.uims.svc:6380",
        SHUTDOWN_GRACE_MS: "25s",
        LOG_LEVEL: "debug",
        TSCS_WINDOW_MS: "1m",
        TLS_CERT_FILE: files[0],
        TLS_KEY_FILE: files[1],
        TLS_CA_FILE: files[2],
      });
      expect(config).toMatchObject({
        grpcHost: "127.0.0.1",
        grpcPort: 0,
        metricsPort: 9464,
        redisUrl: "rediss://redis.uims.svc:6380",
        shutdownGraceMs: 25_000,
        logLevel: "debug",
        tscsWindowMs: 60_000,
        tls: { certFile: files[0], keyFile: files[1], caFile: files[2] },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("one error lists every problem, secrets not echoed", () => {
    const leakedKey = SHORT_KEY.toString("base64");
    const problems = problemsOf(() =>
      loadCommonConfig({
        NODE_ID: "Broker_0",
        GRPC_PORT: "65536",
        REDIS_URL: "http://:redispass@cache:6379",
        UIMS_K1_KEYS: `k1:${leakedKey}`,
        SHUTDOWN_GRACE_MS: "forever",
        LOG_LEVEL: "verbose",
        TLS_CERT_FILE: "/nonexistent/cert.pem",
      }),
    );
    expect(problems).toEqual([
      'NODE_ID="Broker_0": expected 1-63 of a-z, 0-9, -',
      'GRPC_PORT="65536": expected an integer from 0 to 65535',
      'REDIS_URL="http://***@cache:6379": expected a URL with scheme redis or rediss',
      expect.stringMatching(/^UIMS_K1_KEYS=<secret, not shown>: key "k1" decodes to 16 bytes, at least 32 are required/),
      'SHUTDOWN_GRACE_MS="forever": expected a duration in ms ("1500") or with a unit ("500ms", "30s", "2m", "1h") from 0 ms to 600000 ms',
      'LOG_LEVEL="verbose": expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent"',
      "TLS_KEY_FILE, TLS_CA_FILE: mTLS needs TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE together, but only TLS_CERT_FILE is set",
    ]);
    const all = problems.join("\n");
    expect(all).not.toContain(leakedKey);
    expect(all).not.toContain("redispass");
  });

  test("required variables missing", () => {
    expect(problemsOf(() => loadCommonConfig({}))).toEqual([
      "NODE_ID is not set: expected 1-63 of a-z, 0-9, -",
      'UIMS_K1_KEYS is not set: expected a keyring "id1:base64key1,id2:base64key2" (current key first)',
    ]);
  });

  test("TLS files must exist", () => {
    const problems = problemsOf(() =>
      loadCommonConfig({ ...minimal, TLS_CERT_FILE: "/nonexistent/a", TLS_KEY_FILE: "/nonexistent/b", TLS_CA_FILE: "/nonexistent/c" }),
    );
    expect(problems).toEqual([
      'TLS_CERT_FILE="/nonexistent/a": expected a path to a readable file (no such file)',
      'TLS_KEY_FILE="/nonexistent/b": expected a path to a readable file (no such file)',
      'TLS_CA_FILE="/nonexistent/c": expected a path to a readable file (no such file)',
    ]);
  });

  test("a server's own loader shares the reader", () => {
    const r = new EnvReader({ ...minimal, NODE_ID: "" });
    readCommonConfig(r);
    r.hostPort("BROKER_ADDR");
    expect(problemsOf(() => r.finish())).toEqual([
      "NODE_ID is not set: expected 1-63 of a-z, 0-9, -",
      'BROKER_ADDR is not set: expected an address "host:port"',
    ]);
  });
});
