import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { connect, type NatsConnection } from "nats";
import { freeLoopbackPort } from "../cli/local-mesh";
import { delta, sampleProcess, type ProcSample } from "./proc";

/**
 * The store-and-forward baseline: the same messages through a broker that carries the whole
 * payload — a NATS server of our own (so that its CPU and bytes are ours to measure), producer
 * and consumer in this process, each message acknowledged by the consumer's reply.
 */
export interface BaselineResult {
  size: number;
  messages: number;
  rate: number;
  brokerCpuMsPerMessage: number;
  brokerBytesPerMessage: number;
}

const NATS_BINARIES = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

export class NatsBaseline {
  private server: ChildProcess | null = null;
  private producer: NatsConnection | null = null;
  private consumer: NatsConnection | null = null;

  static available(): string | undefined {
    return NATS_BINARIES.find((p) => existsSync(p));
  }

  async start(): Promise<void> {
    const binary = NatsBaseline.available();
    if (!binary) throw new Error("nats-server is not installed");
    const port = await freeLoopbackPort();
    const dir = mkdtempSync(join(tmpdir(), "uims-nats-"));
    const config = join(dir, "nats.conf");
    // Large enough for the biggest payload of the sweep (the default is 1 MiB).
    writeFileSync(config, `listen: 127.0.0.1:${port}\nmax_payload: 8MB\nmax_pending: 256MB\n`);
    this.server = spawn(binary, ["-c", config], { stdio: "ignore" });
    const servers = `127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        this.producer = await connect({ servers });
        this.consumer = await connect({ servers });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.consumer.subscribe("bench", { callback: (_err, msg) => msg.respond() });
    await this.consumer.flush();
  }

  /** Keeps `concurrency` requests in flight for `durationMs` (or `maxMessages`). */
  async run(size: number, opts: { concurrency: number; durationMs: number; maxMessages?: number }): Promise<BaselineResult> {
    const producer = this.producer!;
    const payload = new Uint8Array(size).fill(0x61);
    const before: ProcSample = sampleProcess(this.server!.pid!);
    const started = performance.now();
    const stopAt = started + opts.durationMs;
    let done = 0;
    let sent = 0;
    const worker = async () => {
      while (performance.now() < stopAt && (opts.maxMessages === undefined || sent < opts.maxMessages)) {
        sent++;
        await producer.request("bench", payload, { timeout: 30_000 });
        done++;
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    const elapsed = performance.now() - started;
    const used = delta(before, sampleProcess(this.server!.pid!));
    return { size, messages: done, rate: (done / elapsed) * 1000, brokerCpuMsPerMessage: used.cpuMs / done, brokerBytesPerMessage: used.readBytes / done };
  }

  async stop(): Promise<void> {
    await this.producer?.close();
    await this.consumer?.close();
    this.server?.kill("SIGTERM");
  }
}
