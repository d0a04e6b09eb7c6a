import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { ClientServiceClient, type InboxResponse } from "../gen/uims/client/v1/client";
import { summarize, type LatencySummary } from "./stats";

/**
 * The load generator: senders on one im gateway, receivers with live inbox streams on another.
 * Each message carries its sequence number and send time, so that its end-to-end latency is
 * measured on arrival on the receiver's stream, in this process, on one clock.
 */
export interface Party {
  clientId: string;
  token: string;
}

export interface LoadTarget {
  senderEndpoint: string;
  receiverEndpoint: string;
  senders: Party[];
  receivers: Party[];
}

export interface RunResult {
  sent: number;
  arrived: number;
  failed: number;
  elapsedMs: number;
  /** Arrivals per second. */
  rate: number;
  latency: LatencySummary;
}

const HEADER_BYTES = 16;
const CHANNELS = 2;

function metadataFor(token: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
}

export class MeshLoad {
  private readonly senderClients: ClientServiceClient[];
  private readonly receiverClient: ClientServiceClient;
  private readonly streams: grpc.ClientReadableStream<InboxResponse>[] = [];
  private readonly waiting = new Map<number, { start: number; resolve: () => void }>();
  private readonly senderMeta: grpc.Metadata[];
  private latencies: number[] = [];
  private arrivals = 0;
  private seq = 0;

  constructor(private readonly target: LoadTarget) {
    const options = { "grpc.max_receive_message_length": 64 << 20, "grpc.max_send_message_length": 64 << 20 };
    // Separate channels (a channel option makes them distinct): one grpc-js channel tops out
    // before the mesh does.
    this.senderClients = Array.from({ length: CHANNELS }, (_, i) => new ClientServiceClient(target.senderEndpoint, grpc.credentials.createInsecure(), { ...options, "grpc.channel_id": i }));
    this.receiverClient = new ClientServiceClient(target.receiverEndpoint, grpc.credentials.createInsecure(), options);
    this.senderMeta = target.senders.map((s) => metadataFor(s.token));
  }

  /** Opens every receiver's inbox stream and waits until the gateway has them online. */
  async open(): Promise<void> {
    for (const r of this.target.receivers) {
      const stream = this.receiverClient.inbox({ afterCursor: "", manualAck: false }, metadataFor(r.token));
      stream.on("data", (item: InboxResponse) => this.onArrival(item));
      stream.on("error", () => undefined);
      this.streams.push(stream);
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  close(): void {
    for (const s of this.streams) s.cancel();
    for (const c of this.senderClients) c.close();
    this.receiverClient.close();
  }

  /** Keeps `concurrency` messages in flight (sent, not yet arrived) for `durationMs`. */
  async closedLoop(opts: { concurrency: number; durationMs: number; size: number; maxMessages?: number }): Promise<RunResult> {
    this.reset();
    const started = performance.now();
    const stopAt = started + opts.durationMs;
    let sent = 0;
    let failed = 0;
    const worker = async () => {
      while (performance.now() < stopAt && (opts.maxMessages === undefined || sent < opts.maxMessages)) {
        sent++;
        if (!(await this.sendAndAwait(opts.size, performance.now()))) failed++;
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    return this.result(sent, failed, performance.now() - started);
  }

  /**
   * Sends at a constant rate whatever the answers (open loop), so queueing shows in the
   * latencies: each latency counts from the moment the message was due, not when it went out.
   */
  async openLoop(opts: { rate: number; durationMs: number; size: number }): Promise<RunResult> {
    this.reset();
    const started = performance.now();
    const total = Math.floor((opts.rate * opts.durationMs) / 1000);
    const interval = 1000 / opts.rate;
    const pending: Array<Promise<boolean>> = [];
    let failed = 0;
    for (let i = 0; i < total; i++) {
      const due = started + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      pending.push(this.sendAndAwait(opts.size, due));
    }
    for (const ok of await Promise.all(pending)) if (!ok) failed++;
    return this.result(total, failed, performance.now() - started);
  }

  private reset(): void {
    this.latencies = [];
    this.arrivals = 0;
  }

  private result(sent: number, failed: number, elapsedMs: number): RunResult {
    return { sent, arrived: this.arrivals, failed, elapsedMs, rate: (this.arrivals / elapsedMs) * 1000, latency: summarize(this.latencies) };
  }

  /** Sends one message and resolves true when it arrives (false when the send was refused or it never came). */
  private sendAndAwait(size: number, dueAt: number): Promise<boolean> {
    const seq = ++this.seq;
    const sender = seq % this.target.senders.length;
    const receiver = this.target.receivers[seq % this.target.receivers.length]!;
    const body = Buffer.alloc(Math.max(size, HEADER_BYTES), 0x61);
    body.writeUInt32BE(0x75696d73, 0);
    body.writeUInt32BE(seq, 4);
    const client = this.senderClients[seq % CHANNELS]!;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        resolve(false);
      }, 60_000);
      this.waiting.set(seq, {
        start: dueAt,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
      client.send(
        { recipient: receiver.clientId, payload: { contentType: "application/octet-stream", body, attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
        this.senderMeta[sender]!,
        { deadline: Date.now() + 30_000 },
        (err) => {
          if (!err) return;
          clearTimeout(timer);
          this.waiting.delete(seq);
          resolve(false);
        },
      );
    });
  }

  private onArrival(item: InboxResponse): void {
    const body = item.message?.payload?.body;
    if (!body || body.length < HEADER_BYTES || body.readUInt32BE(0) !== 0x75696d73) return;
    const waiter = this.waiting.get(body.readUInt32BE(4));
    if (!waiter) return;
    this.waiting.delete(body.readUInt32BE(4));
    this.arrivals++;
    this.latencies.push(performance.now() - waiter.start);
    waiter.resolve();
  }
}
