import { spawn, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVER_NODE_FLAGS } from "../../cli/local-mesh";

/**
 * The image cannot be built on this machine (no container engine), so these check what can be
 * checked without one: the entry script the image runs, and the Dockerfile's promises.
 */

const ROOT = join(__dirname, "..", "..");
const SCRIPT = join(ROOT, "bin", "uims-server");

function run(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(script, args, { encoding: "utf8", env: { PATH: process.env.PATH, ...env }, timeout: 15_000 });
}

/** A copy of the script in a fake image root whose broker entry point reports how it was started. */
function fakeImage(withTelemetry: boolean): string {
  const root = mkdtempSync(join(tmpdir(), "uims-image-"));
  mkdirSync(join(root, "bin"));
  mkdirSync(join(root, "dist", "broker"), { recursive: true });
  mkdirSync(join(root, "dist", "common"), { recursive: true });
  copyFileSync(SCRIPT, join(root, "bin", "uims-server"));
  chmodSync(join(root, "bin", "uims-server"), 0o755);
  writeFileSync(join(root, "dist", "broker", "main.js"), "process.stdout.write(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv: process.argv.slice(2), preloaded: !!globalThis.preloaded }));\n");
  if (withTelemetry) writeFileSync(join(root, "dist", "common", "telemetry.js"), "globalThis.preloaded = true;\n");
  return root;
}

describe("the image entry script bin/uims-server", () => {
  test("is executable and POSIX sh", () => {
    expect(readFileSync(SCRIPT, "utf8").split("\n")[0]).toBe("#!/bin/sh");
    expect(run("sh", ["-n", SCRIPT]).status).toBe(0);
    expect(spawnSync("test", ["-x", SCRIPT]).status).toBe(0);
  });

  test("without a known component it prints its usage and exits 64", () => {
    for (const args of [[], ["nonsense"]]) {
      const r = run(SCRIPT, args);
      expect(r.status).toBe(64);
      expect(r.stderr).toContain("usage: uims-server broker|gateway-im|gateway-email|gateway-sms|processor|cli");
    }
  });

  test("starts the real broker build: with no environment, the broker's configuration check answers", () => {
    if (!existsSync(join(ROOT, "dist", "broker", "main.js"))) throw new Error("dist/ is missing: run `make build` (make test does it first)");
    const r = run(SCRIPT, ["broker"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("NODE_ID is not set");
    expect(r.stderr).toContain("UIMS_K2_KEYS is not set");
  });

  test("adds the telemetry preload only when the build has it, passes arguments on, and execs node in its own place", async () => {
    for (const withTelemetry of [true, false]) {
      const root = fakeImage(withTelemetry);
      try {
        const child = spawn(join(root, "bin", "uims-server"), ["broker", "--flag", "x y"], { env: { PATH: process.env.PATH } });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        const code = await new Promise<number | null>((ok) => child.on("exit", ok));
        expect(code).toBe(0);
        const seen = JSON.parse(out) as { pid: number; execArgv: string[]; argv: string[]; preloaded: boolean };
        // Same pid: node replaced the shell, so the kubelet's SIGTERM reaches the server itself.
        expect(seen.pid).toBe(child.pid);
        expect(seen.argv).toEqual(["--flag", "x y"]);
        expect(seen.preloaded).toBe(withTelemetry);
        // The same node flags as the servers `uims up` starts.
        expect(seen.execArgv).toEqual([...SERVER_NODE_FLAGS, ...(withTelemetry ? ["--require", join(root, "dist", "common", "telemetry.js")] : [])]);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  });

  test("a component missing from the build is named, not a node stack trace", () => {
    const root = fakeImage(false);
    try {
      const r = run(join(root, "bin", "uims-server"), ["processor"]);
      expect(r.status).toBe(66);
      expect(r.stderr.trim()).toBe("uims-server: dist/processor/main.js is not in this build");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const lines = dockerfile.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const runtime = stages[stages.length - 1]!;

  test("multi-stage: a build stage compiles, the runtime stage has production dependencies only", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/RUN npm ci\b(?!.*--omit=dev)/);
    expect(dockerfile).toMatch(/npx tsc -p tsconfig\.json/);
    expect(dockerfile).toMatch(/RUN npm ci --omit=dev/);
    expect(runtime).not.toMatch(/RUN npm ci(?!.*--omit=dev)/);
  });

  test("the runtime stage ships dist/, proto/ (reflection loads it), package.json and the entry script, runs as 10001, exec-form entry point", () => {
    expect(runtime).toMatch(/^COPY --from=build \/src\/dist \.\/dist$/m);
    expect(runtime).toMatch(/^COPY proto\/uims \.\/proto\/uims$/m);
    expect(runtime).toMatch(/^COPY package\.json \.\/$/m);
    expect(runtime).toMatch(/^COPY --chmod=0555 bin\/uims-server \.\/bin\/uims-server$/m);
    expect(runtime).toMatch(/^USER 10001:10001$/m);
    const entry = lines.filter((l) => l.startsWith("ENTRYPOINT"));
    expect(entry).toEqual(['ENTRYPOINT ["/app/bin/uims-server"]']);
    expect(runtime).toMatch(/^WORKDIR \/app$/m);
  });

  test("every file it copies from the context exists and is not excluded by .dockerignore", () => {
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    const sources = lines
      .filter((l) => l.startsWith("COPY ") && !l.includes("--from="))
      .flatMap((l) => l.replace(/--chmod=\S+\s+/, "").split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      expect([src, existsSync(join(ROOT, src))]).toEqual([src, true]);
      expect([src, ignored.some((pattern) => src === pattern || src.startsWith(`${pattern}/`))]).toEqual([src, false]);
    }
    for (const excluded of ["node_modules", "dist", "test", ".git", "**/*.test.ts"]) expect(ignored).toContain(excluded);
  });
});
