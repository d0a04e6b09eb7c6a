import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { NatsBaseline, type BaselineResult } from "./baseline";
import { MeshLoad, type RunResult } from "./load";
import { startBenchMesh } from "./mesh";
import { delta, sampleProcess } from "./proc";

/**
 * `make bench`: the mesh's end-to-end rate and latency, and the broker's cost per message across
 * payload sizes, side by side with a store-and-forward baseline, in one run.
 */

interface SweepRow {
  size: number;
  mesh: { messages: number; rate: number; brokerCpuMsPerMessage: number; brokerBytesPerMessage: number };
  baseline?: BaselineResult;
}

interface CpuShare {
  role: string;
  cpuMsPerMessage: number;
}

interface Options {
  quick: boolean;
  seconds: number;
  out: string;
  sizes: number[];
  baseline: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULT_SIZES = [256, 4 * KiB, 64 * KiB, MiB, 4 * MiB];
/** Turns each payload size takes when the broker's cost per message is measured. */
const COST_ROUNDS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Messages in flight per payload size: enough to keep every process busy, few enough that
 * large payloads do not pile up in the gateways' memory (at 1 MiB, 8 in flight moved fewer
 * messages than 4: the receiving gateway spent its time collecting garbage).
 */
function concurrencyFor(size: number): number {
  if (size <= 4 * KiB) return 64;
  if (size <= 64 * KiB) return 32;
  return 4;
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}

function human(size: number): string {
  return size >= MiB ? `${size / MiB} MiB` : size >= KiB ? `${size / KiB} KiB` : `${size} B`;
}

function spread(values: number[]): number {
  const min = Math.min(...values);
  return min > 0 ? (Math.max(...values) - min) / min : NaN;
}

export async function runBenchmark(o: Options): Promise<Record<string, unknown>> {
  const ms = o.seconds * 1000;
  progress("starting the mesh (broker, two im gateways, Redis) ...");
  const bench = await startBenchMesh({ senders: 8, receivers: 8 });
  const load = new MeshLoad(bench.target);
  let baseline: NatsBaseline | undefined;
  try {
    await load.open();
    progress("warming up ...");
    await load.closedLoop({ concurrency: 32, durationMs: o.quick ? 300 : 2_000, size: 256 });

    let peak: RunResult | undefined;
    let peakConcurrency = 0;
    let peakCpu: CpuShare[] = [];
    // Every process of the machine's load shares the cores: what each spends per message says
    // where the peak's ceiling comes from.
    const processes: Array<{ role: string; pid: number }> = [
      { role: "broker", pid: bench.brokerPid },
      { role: "sending gateway", pid: bench.senderGatewayPid },
      { role: "receiving gateway", pid: bench.receiverGatewayPid },
      { role: "Redis", pid: bench.redis.pid },
      { role: "load generator", pid: process.pid },
    ];
    for (const concurrency of o.quick ? [16] : [64, 128, 256]) {
      progress(`peak rate, 256 B, ${concurrency} in flight ...`);
      const before = processes.map((p) => sampleProcess(p.pid));
      const run = await load.closedLoop({ concurrency, durationMs: ms, size: 256 });
      if (!peak || run.rate > peak.rate) {
        peak = run;
        peakConcurrency = concurrency;
        peakCpu = processes.map((p, i) => ({ role: p.role, cpuMsPerMessage: delta(before[i]!, sampleProcess(p.pid)).cpuMs / Math.max(1, run.arrived) }));
      }
    }
    const halfRate = Math.max(1, Math.floor(peak!.rate / 2));
    progress(`latency at half the peak (${halfRate} msgs/s, open loop) ...`);
    const latency = await load.openLoop({ rate: halfRate, durationMs: ms, size: 256 });
    // At a tenth of the peak the cores are mostly idle: what remains is the protocol's own
    // sequential path, the floor under the latency at any rate.
    const lightRate = Math.max(1, Math.floor(peak!.rate / 10));
    progress(`latency at a tenth of the peak (${lightRate} msgs/s, open loop) ...`);
    const lightLatency = await load.openLoop({ rate: lightRate, durationMs: ms, size: 256 });

    if (o.baseline && NatsBaseline.available()) {
      baseline = new NatsBaseline();
      await baseline.start();
    }
    // The broker has background work of its own (deadline and notice sweeps, registry refresh,
    // health checks, heartbeats): measured idle, it is subtracted so that the figures below are
    // the cost of the messages alone.
    progress("broker at rest ...");
    const idleMs = o.quick ? 500 : 3_000;
    const idleBefore = sampleProcess(bench.brokerPid);
    await new Promise((r) => setTimeout(r, idleMs));
    const idle = delta(idleBefore, sampleProcess(bench.brokerPid));
    const idlePerMs = { cpuMs: idle.cpuMs / idleMs, readBytes: idle.readBytes / idleMs };
    const sweep: SweepRow[] = [];
    // What one message costs the broker, measured for every size at the same rate (open loop):
    // at different rates the broker would batch its store and stream writes differently, and
    // the comparison would show the rate, not the payload size.
    const brokerCost = async (size: number, rate: number, durationMs: number): Promise<{ cpuMs: number; readBytes: number; messages: number }> => {
      const before = sampleProcess(bench.brokerPid);
      const started = Date.now();
      const run = await load.openLoop({ rate, durationMs, size });
      // Reports and notices trail the arrivals; let the broker finish before reading its counters.
      await new Promise((r) => setTimeout(r, 300));
      const raw = delta(before, sampleProcess(bench.brokerPid));
      const elapsed = Date.now() - started;
      return {
        cpuMs: Math.max(0, raw.cpuMs - idlePerMs.cpuMs * elapsed),
        readBytes: Math.max(0, raw.readBytes - idlePerMs.readBytes * elapsed),
        messages: Math.max(1, run.arrived),
      };
    };
    for (const size of o.sizes) {
      const concurrency = concurrencyFor(size);
      const maxMessages = o.quick ? 20 : undefined;
      progress(`payload sweep: ${human(size)} through the mesh ...`);
      const run = await load.closedLoop({ concurrency, durationMs: ms, size, ...(maxMessages ? { maxMessages } : {}) });
      const row: SweepRow = { size, mesh: { messages: run.arrived, rate: run.rate, brokerCpuMsPerMessage: NaN, brokerBytesPerMessage: NaN } };
      if (baseline) {
        progress(`payload sweep: ${human(size)} through NATS ...`);
        row.baseline = await baseline.run(size, { concurrency: 64, durationMs: ms, ...(maxMessages ? { maxMessages } : {}) });
      }
      sweep.push(row);
    }
    const costRate = Math.max(1, Math.floor(0.8 * Math.min(...sweep.map((r) => r.mesh.rate))));
    // Enough messages for the CPU clock's 10 ms ticks to round away.
    const costMs = o.quick ? 1_000 : Math.max(ms, Math.ceil((200 / costRate) * 1000));
    await load.openLoop({ rate: costRate, durationMs: o.quick ? 200 : 2_000, size: 256 });
    // At a few messages per second the broker's cost per message swings with everything else the
    // machine does. The sizes take turns in short rounds and each keeps its median, so that a
    // slow stretch of the machine does not land on one size alone.
    const rounds = o.quick ? 1 : COST_ROUNDS;
    const samples = new Map<number, Array<{ cpuMs: number; bytes: number }>>(sweep.map((r) => [r.size, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const row of sweep) {
        progress(`broker cost per message: ${human(row.size)} at ${costRate} msgs/s, round ${round} of ${rounds} ...`);
        const cost = await brokerCost(row.size, costRate, costMs / rounds);
        samples.get(row.size)!.push({ cpuMs: cost.cpuMs / cost.messages, bytes: cost.readBytes / cost.messages });
      }
    }
    for (const row of sweep) {
      const taken = samples.get(row.size)!;
      row.mesh.brokerCpuMsPerMessage = median(taken.map((t) => t.cpuMs));
      row.mesh.brokerBytesPerMessage = median(taken.map((t) => t.bytes));
    }
    progress("");
    const crossover = sweep.find((row, i) => row.baseline && sweep.slice(i).every((r) => r.baseline && r.mesh.rate > r.baseline.rate));
    return {
      machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? "", memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform },
      when: new Date().toISOString(),
      options: o,
      peak: { concurrency: peakConcurrency, ...peak! },
      peakCpu: { perProcess: peakCpu, totalMsPerMessage: peakCpu.reduce((sum, p) => sum + p.cpuMsPerMessage, 0), cores: cpus().length },
      latencyAtHalfPeak: { ...latency, targetRate: halfRate },
      latencyAtTenthOfPeak: { ...lightLatency, targetRate: lightRate },
      sweep,
      brokerIdle: { cpuMsPerSecond: idlePerMs.cpuMs * 1000, bytesPerSecond: idlePerMs.readBytes * 1000 },
      brokerCostRate: costRate,
      brokerCostRounds: rounds,
      brokerCostSpread: { cpu: spread(sweep.map((r) => r.mesh.brokerCpuMsPerMessage)), bytes: spread(sweep.map((r) => r.mesh.brokerBytesPerMessage)) },
      meshBeatsBaselineFrom: crossover?.size ?? null,
    };
  } finally {
    load.close();
    await baseline?.stop();
    await bench.stop();
  }
}

function printReport(r: Record<string, unknown>): void {
  const peak = r.peak as RunResult & { concurrency: number };
  const lat = r.latencyAtHalfPeak as RunResult & { targetRate: number };
  const light = r.latencyAtTenthOfPeak as RunResult & { targetRate: number };
  const cpu = r.peakCpu as { perProcess: CpuShare[]; totalMsPerMessage: number; cores: number };
  const sweep = r.sweep as SweepRow[];
  const spreadR = r.brokerCostSpread as { cpu: number; bytes: number };
  const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "-");
  const latencyLine = (label: string, run: RunResult & { targetRate: number }) =>
    `${label} ${run.targetRate} msgs/s (open loop): p50 ${f(run.latency.p50, 2)} ms  p95 ${f(run.latency.p95, 2)} ms  p99 ${f(run.latency.p99, 2)} ms  max ${f(run.latency.max, 2)} ms`;
  const lines = [
    "",
    `peak, 256 B end to end:        ${f(peak.rate, 0)} msgs/s (${peak.concurrency} in flight, ${peak.arrived} messages, ${peak.failed} failed)`,
    `CPU per message at the peak:   ${cpu.perProcess.map((p) => `${p.role} ${f(p.cpuMsPerMessage, 2)} ms`).join(", ")}`,
    `                               ${f(cpu.totalMsPerMessage, 2)} ms in all: ${cpu.cores} cores allow at most ${f((cpu.cores * 1000) / cpu.totalMsPerMessage, 0)} msgs/s`,
    latencyLine("latency at half the peak,", lat),
    latencyLine("latency at a tenth,       ", light),
    "",
    "payload   | mesh msgs/s | broker CPU/msg | broker bytes/msg | NATS msgs/s | NATS CPU/msg | NATS bytes/msg",
    "----------|-------------|----------------|------------------|-------------|--------------|---------------",
    ...sweep.map(
      (row) =>
        `${human(row.size).padEnd(9)} | ${f(row.mesh.rate, 0).padStart(11)} | ${f(row.mesh.brokerCpuMsPerMessage, 3).padStart(11)} ms | ${f(row.mesh.brokerBytesPerMessage, 0).padStart(16)} | ${
          row.baseline ? f(row.baseline.rate, 0).padStart(11) : "-".padStart(11)
        } | ${row.baseline ? `${f(row.baseline.brokerCpuMsPerMessage, 3).padStart(9)} ms` : "-".padStart(12)} | ${row.baseline ? f(row.baseline.brokerBytesPerMessage, 0).padStart(14) : "-".padStart(14)}`,
    ),
    "",
    `broker cost per message measured at ${r.brokerCostRate as number} msgs/s for every size (median of ${r.brokerCostRounds as number} interleaved rounds); spread 256 B to ${human(sweep[sweep.length - 1]?.size ?? 0)}: CPU ${f(spreadR.cpu * 100)} %, bytes ${f(spreadR.bytes * 100)} %`,
    `mesh beats the baseline end to end from: ${r.meshBeatsBaselineFrom === null ? "no size measured" : human(r.meshBeatsBaselineFrom as number)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** The benchmark's options, on `uims-bench` and on `uims bench`. */
export function withBenchOptions(command: Command): Command {
  return command
    .option("--quick", "a tiny load: checks that the benchmark runs, measures nothing meaningful", false)
    .option("--seconds <n>", "seconds per measurement", "5")
    .option("--sizes <list>", "payload sizes in bytes, comma separated", DEFAULT_SIZES.join(","))
    .option("--no-baseline", "skip the NATS baseline")
    .option("--out <dir>", "where the JSON result goes", join(resolve(__dirname, "..", ".."), "bench", "results"));
}

/** Runs the benchmark, prints the table and writes the JSON; resolves with the JSON's path. */
export async function benchAndReport(opts: { quick: boolean; seconds: string; sizes: string; baseline: boolean; out: string }): Promise<string> {
  const options: Options = {
    quick: opts.quick,
    seconds: opts.quick ? 1 : Number(opts.seconds),
    sizes: opts.sizes.split(",").map(Number),
    baseline: opts.baseline,
    out: opts.out,
  };
  const result = await runBenchmark(options);
  printReport(result);
  mkdirSync(options.out, { recursive: true });
  const file = join(options.out, `bench-${(result.when as string).replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  return file;
}

if (require.main === module) {
  const program = withBenchOptions(new Command().name("uims-bench").description("Measure the mesh end to end and against a store-and-forward baseline")).parse();
  benchAndReport(program.opts())
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
