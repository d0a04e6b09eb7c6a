import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT, requireBuild } from "../support/e2e";

const run = promisify(execFile);

/** The benchmark runs end to end and writes its results; the figures themselves are not judged here. */
test("make bench, with a tiny load, produces a complete result", async () => {
  requireBuild();
  const out = mkdtempSync(join(tmpdir(), "uims-bench-"));
  const { stdout } = await run(process.execPath, [join(REPO_ROOT, "dist", "bench", "main.js"), "--quick", "--sizes", "256,65536", "--out", out], { timeout: 120_000 });
  expect(stdout).toContain("peak, 256 B end to end");
  const [file] = readdirSync(out);
  const result = JSON.parse(readFileSync(join(out, file!), "utf8")) as {
    machine: { cores: number; node: string };
    peak: { rate: number; arrived: number };
    peakCpu: { perProcess: Array<{ role: string; cpuMsPerMessage: number }>; totalMsPerMessage: number };
    latencyAtHalfPeak: { latency: { count: number } };
    latencyAtTenthOfPeak: { latency: { count: number } };
    sweep: Array<{ size: number; mesh: { messages: number; brokerCpuMsPerMessage: number; brokerBytesPerMessage: number } }>;
  };
  expect(result.machine.cores).toBeGreaterThan(0);
  expect(result.peak.arrived).toBeGreaterThan(0);
  expect(result.peakCpu.perProcess.map((p) => p.role)).toEqual(["broker", "sending gateway", "receiving gateway", "Redis", "load generator"]);
  for (const p of result.peakCpu.perProcess) expect(p.cpuMsPerMessage).toBeGreaterThan(0);
  expect(stdout).toContain("CPU per message at the peak");
  expect(result.latencyAtHalfPeak.latency.count).toBeGreaterThan(0);
  expect(result.latencyAtTenthOfPeak.latency.count).toBeGreaterThan(0);
  expect(result.sweep.map((r) => r.size)).toEqual([256, 65536]);
  for (const row of result.sweep) {
    expect(row.mesh.messages).toBeGreaterThan(0);
    expect(row.mesh.brokerBytesPerMessage).toBeGreaterThan(0);
  }
}, 150_000);
