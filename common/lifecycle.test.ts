import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import {
  ClientServiceClient,
  ClientServiceService,
  type GetStatusRequest,
  type GetStatusResponse,
  type InboxRequest,
  type InboxResponse,
} from "../gen/uims/client/v1/client";
import { channelOptions, clientCredentials, deadlineIn } from "./grpc-client";
import { bindServer, createGrpcServer, serverCredentials, type GrpcServer } from "./grpc-server";
import { gracefulShutdown, runUntilSignal, type ShutdownOptions, type SignalProcess } from "./lifecycle";
import { createLogger, type Logger } from "./logger";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function testLogger(): { logger: Logger; messages: () => string[] } {
  const lines: string[] = [];
  const logger = createLogger({ service: "test", nodeId: "test-0", destination: { write: (s: string) => void lines.push(s) } });
  return { logger, messages: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

/** A server with ClientService: GetStatus answers after `unaryDelayMs`; Inbox never ends on its own. */
async function startServer(unaryDelayMs: number): Promise<{ grpcServer: GrpcServer; client: ClientServiceClient; inboxCancelled: Promise<void> }> {
  const grpcServer = createGrpcServer({ maxMessageBytes: 64 * 1024, services: [ClientServiceService] });
  let markCancelled: () => void = () => undefined;
  const inboxCancelled = new Promise<void>((resolve) => (markCancelled = resolve));
  grpcServer.server.addService(ClientServiceService, {
    getStatus: (_call: grpc.ServerUnaryCall<GetStatusRequest, GetStatusResponse>, callback: grpc.sendUnaryData<GetStatusResponse>) => {
      setTimeout(() => callback(null, {}), unaryDelayMs);
    },
    inbox: (call: grpc.ServerWritableStream<InboxRequest, InboxResponse>) => {
      call.write({ cursor: "1" });
      call.on("cancelled", markCancelled);
    },
  });
  const port = await bindServer(grpcServer.server, "127.0.0.1", 0, serverCredentials());
  const client = new ClientServiceClient(`127.0.0.1:${port}`, clientCredentials(), channelOptions({ maxMessageBytes: 64 * 1024 }));
  return { grpcServer, client, inboxCancelled };
}

function getStatus(client: ClientServiceClient): Promise<GetStatusResponse> {
  return new Promise((resolve, reject) =>
    client.getStatus({ messageId: "m-1" }, new grpc.Metadata(), { deadline: deadlineIn(5_000) }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

/** Wraps the pieces of a shutdown so the test sees the order in which they are used. */
function recorded(grpcServer: GrpcServer, events: string[]): Pick<ShutdownOptions, "health" | "server"> {
  return {
    health: {
      setAll: (status) => {
        events.push(`health ${status}`);
        grpcServer.health.setAll(status);
      },
    },
    server: {
      tryShutdown: (cb) => {
        events.push("tryShutdown");
        grpcServer.server.tryShutdown(cb);
      },
      forceShutdown: () => {
        events.push("forceShutdown");
        grpcServer.server.forceShutdown();
      },
    },
  };
}

describe("gracefulShutdown", () => {
  test("runs in order and lets in-flight calls finish", async () => {
    const { grpcServer, client } = await startServer(150);
    const { logger, messages } = testLogger();
    const events: string[] = [];
    try {
      await getStatus(client); // connected
      const inFlight = getStatus(client);
      await sleep(20);

      const result = await gracefulShutdown({
        logger,
        ...recorded(grpcServer, events),
        graceMs: 5_000,
        onDrain: async () => {
          events.push("drain start");
          await sleep(50);
          events.push("drain end");
        },
        closers: [
          async function closeStore() {
            events.push("close store");
          },
          async function flushTelemetry() {
            events.push("flush telemetry");
          },
        ],
      });

      await expect(inFlight).resolves.toEqual({});
      expect(events).toEqual(["health NOT_SERVING", "tryShutdown", "drain start", "drain end", "close store", "flush telemetry"]);
      expect(result).toMatchObject({ forced: false, drained: true, failedClosers: 0 });
      expect(result.elapsedMs).toBeGreaterThanOrEqual(100);
      expect(grpcServer.health.get("")).toBe("NOT_SERVING");
      expect(grpcServer.health.get("uims.client.v1.ClientService")).toBe("NOT_SERVING");
      await expect(getStatus(client)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(messages()).toContain("shutdown complete");
    } finally {
      client.close();
      grpcServer.server.forceShutdown();
    }
  });

  test("cancels a hanging server stream once the grace time is over", async () => {
    const { grpcServer, client, inboxCancelled } = await startServer(0);
    const { logger, messages } = testLogger();
    const events: string[] = [];
    try {
      const inbox = client.inbox({ afterCursor: "", manualAck: false });
      const streamEnded = new Promise<grpc.ServiceError>((resolve) => inbox.on("error", resolve));
      await new Promise<void>((resolve) => inbox.once("data", () => resolve()));

      const started = Date.now();
      const result = await gracefulShutdown({
        logger,
        ...recorded(grpcServer, events),
        graceMs: 300,
        closers: [async () => void events.push("close store")],
      });
      const elapsed = Date.now() - started;

      expect(result.forced).toBe(true);
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(3_000);
      expect(events).toEqual(["health NOT_SERVING", "tryShutdown", "forceShutdown", "close store"]);
      const err = await streamEnded;
      expect([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL]).toContain(err.code);
      await inboxCancelled;
      expect(messages()).toContain("in-flight calls outlived the grace time, cancelling them");
    } finally {
      client.close();
      grpcServer.server.forceShutdown();
    }
  });

  test("slow drains, failing and hanging closers do not stop the sequence", async () => {
    const { logger, messages } = testLogger();
    const events: string[] = [];
    const server = { tryShutdown: (cb: (err?: Error) => void) => setImmediate(cb), forceShutdown: () => events.push("force") };
    const result = await gracefulShutdown({
      logger,
      server,
      graceMs: 100,
      onDrain: () => new Promise(() => undefined),
      closerTimeoutMs: 100,
      closers: [
        async () => {
          throw new Error("store quit failed");
        },
        () => new Promise(() => undefined),
        () => {
          throw new Error("thrown synchronously");
        },
        async () => void events.push("last closer"),
      ],
    });
    expect(result).toMatchObject({ forced: false, drained: false, failedClosers: 3 });
    expect(events).toEqual(["last closer"]);
    expect(messages()).toEqual(
      expect.arrayContaining(["in-flight work outlived the grace time", "closer failed", "shutdown complete"]),
    );
  });
});

class FakeProcess extends EventEmitter implements SignalProcess {
  exits: number[] = [];
  override on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): this {
    return super.on(signal, listener);
  }
  override removeListener(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): this {
    return super.removeListener(signal, listener);
  }
  exit(code: number): void {
    this.exits.push(code);
  }
}

describe("runUntilSignal", () => {
  test("SIGTERM runs the shutdown and exits 0", async () => {
    const proc = new FakeProcess();
    const { logger } = testLogger();
    const events: string[] = [];
    const server = {
      tryShutdown: (cb: (err?: Error) => void) => {
        events.push("tryShutdown");
        setImmediate(cb);
      },
      forceShutdown: () => events.push("force"),
    };
    const done = runUntilSignal({ logger, server, graceMs: 1_000, process: proc, closers: [async () => void events.push("closed")] });
    expect(proc.listenerCount("SIGTERM")).toBe(1);
    expect(proc.listenerCount("SIGINT")).toBe(1);
    proc.emit("SIGTERM", "SIGTERM");
    await expect(done).resolves.toBe(0);
    expect(proc.exits).toEqual([0]);
    expect(events).toEqual(["tryShutdown", "closed"]);
    expect(proc.listenerCount("SIGTERM")).toBe(0);
  });

  test("a second signal forces exit 1", async () => {
    const proc = new FakeProcess();
    const { logger, messages } = testLogger();
    const events: string[] = [];
    const server = { tryShutdown: () => events.push("tryShutdown"), forceShutdown: () => events.push("force") };
    const done = runUntilSignal({ logger, server, graceMs: 200, process: proc, onDrain: () => new Promise(() => undefined) });
    proc.emit("SIGINT", "SIGINT");
    await sleep(10);
    proc.emit("SIGTERM", "SIGTERM");
    await expect(done).resolves.toBe(1);
    expect(proc.exits).toEqual([1]);
    expect(events).toEqual(["tryShutdown", "force"]);
    expect(messages()).toContain("second signal during shutdown, exiting now");
    // The abandoned sequence finishes later without exiting a second time.
    await sleep(300);
    expect(proc.exits).toEqual([1]);
  });
});
