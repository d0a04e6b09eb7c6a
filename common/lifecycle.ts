import type * as grpc from "@grpc/grpc-js";
import type { HealthStatus } from "./grpc-server";
import type { Logger } from "./logger";

/** How long one closer (store, telemetry flush) may take before shutdown moves on. */
export const DEFAULT_CLOSER_TIMEOUT_MS = 5_000;

export interface ShutdownOptions {
  logger: Logger;
  health?: Pick<HealthStatus, "setAll">;
  server: Pick<grpc.Server, "tryShutdown" | "forceShutdown">;
  /** Time for in-flight calls and `onDrain` to finish before calls are cancelled. */
  graceMs: number;
  /** Finishes in-flight work that is not a server call (queues, outbound transmissions). */
  onDrain?: () => Promise<void>;
  /**
   * `onDrain` covers every request in progress, streamed ones included: once it resolves, open
   * streams are idle and are cut instead of holding the shutdown for the whole grace time.
   */
  cutIdleStreamsAfterDrain?: boolean;
  /** Run in order once calls are done: e.g. close the store, then flush telemetry. */
  closers?: Array<() => Promise<void>>;
  closerTimeoutMs?: number;
}

export interface ShutdownResult {
  /** In-flight calls did not finish within the grace time and were cancelled. */
  forced: boolean;
  /** `onDrain` finished (or there was none) within the grace time. */
  drained: boolean;
  /** Closers that threw or timed out. */
  failedClosers: number;
  elapsedMs: number;
}

/**
 * The shutdown sequence, without signals or exiting:
 * 1. every health status NOT_SERVING;
 * 2. the server stops accepting calls (`tryShutdown`: new connections refused, GOAWAY on open
 *    ones) while in-flight calls finish; after `graceMs` the rest are cancelled (`forceShutdown`);
 * 3. meanwhile `onDrain` finishes other in-flight work, within the same grace time;
 * 4. closers run one after the other, each bounded by `closerTimeoutMs`.
 * Failures are logged and never stop the sequence.
 */
export async function gracefulShutdown(opts: ShutdownOptions): Promise<ShutdownResult> {
  const { logger } = opts;
  const started = Date.now();
  opts.health?.setAll("NOT_SERVING");

  let forced = false;
  let graceTimer: NodeJS.Timeout | undefined;
  // Not unref'd: it must keep the process alive until the sequence is over.
  const graceOver = new Promise<"grace-over">((resolve) => {
    graceTimer = setTimeout(() => resolve("grace-over"), opts.graceMs);
  });

  const serverStopped = new Promise<void>((resolve) => {
    opts.server.tryShutdown((err) => {
      if (err) logger.warn({ err }, "server shutdown reported an error");
      resolve();
    });
  });
  const serverDone = Promise.race([serverStopped, graceOver]).then((outcome) => {
    if (outcome === "grace-over") {
      forced = true;
      logger.warn({ graceMs: opts.graceMs }, "in-flight calls outlived the grace time, cancelling them");
      opts.server.forceShutdown();
    }
  });

  let drained = true;
  const drainDone = (async () => {
    if (!opts.onDrain) return;
    const drain = opts.onDrain().then(
      () => "done" as const,
      (err: unknown) => {
        logger.error({ err }, "draining in-flight work failed");
        return "failed" as const;
      },
    );
    const outcome = await Promise.race([drain, graceOver]);
    if (outcome !== "done") drained = false;
    if (outcome === "grace-over") logger.warn({ graceMs: opts.graceMs }, "in-flight work outlived the grace time");
    else if (opts.cutIdleStreamsAfterDrain) {
      // Every request is answered; what still holds the server open are idle long-lived streams
      // (peers' multiplexed streams, inbox streams) whose clients reconnect elsewhere.
      const stopped = await Promise.race([serverStopped.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      if (!stopped) opts.server.forceShutdown();
    }
  })();

  await Promise.all([serverDone, drainDone]);
  clearTimeout(graceTimer);

  let failedClosers = 0;
  const closerTimeoutMs = opts.closerTimeoutMs ?? DEFAULT_CLOSER_TIMEOUT_MS;
  for (const [index, close] of (opts.closers ?? []).entries()) {
    const closer = close.name || `closer ${index + 1}`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${closerTimeoutMs} ms`)), closerTimeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(close), timeout]);
    } catch (err) {
      failedClosers++;
      logger.error({ err, closer }, "closer failed");
    } finally {
      clearTimeout(timer);
    }
  }

  const result: ShutdownResult = { forced, drained, failedClosers, elapsedMs: Date.now() - started };
  logger.info(result, "shutdown complete");
  return result;
}

/** The parts of `process` the signal wiring uses; tests pass a stand-in. */
export interface SignalProcess {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  removeListener(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  exit(code: number): void;
}

export interface RunUntilSignalOptions extends ShutdownOptions {
  /** Default SIGTERM and SIGINT. */
  signals?: NodeJS.Signals[];
  process?: SignalProcess;
}

/**
 * Waits for SIGTERM or SIGINT, runs `gracefulShutdown` and exits 0. A second signal while
 * shutting down cancels everything and exits 1 at once. Resolves with the exit code (only
 * observable when `process` is a stand-in).
 */
export function runUntilSignal(opts: RunUntilSignalOptions): Promise<number> {
  const proc: SignalProcess = opts.process ?? process;
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  const { logger } = opts;
  return new Promise((resolve) => {
    let shuttingDown = false;
    let exited = false;
    const exit = (code: number): void => {
      if (exited) return;
      exited = true;
      for (const s of signals) proc.removeListener(s, onSignal);
      logger.flush();
      proc.exit(code);
      resolve(code);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (shuttingDown) {
        logger.error({ signal }, "second signal during shutdown, exiting now");
        opts.server.forceShutdown();
        exit(1);
        return;
      }
      shuttingDown = true;
      logger.info({ signal, graceMs: opts.graceMs }, "shutting down");
      gracefulShutdown(opts).then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          exit(1);
        },
      );
    };
    for (const s of signals) proc.on(s, onSignal);
  });
}
