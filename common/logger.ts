import { isSpanContextValid, trace } from "@opentelemetry/api";
import pino from "pino";

export type Logger = pino.Logger;

/** What a redacted value is replaced with. */
export const REDACTED = "[redacted]";

/** Keys whose values never reach a log line: key material, credentials and message content. */
export const SECRET_KEYS = [
  "token",
  "key",
  "session_key",
  "sessionKey",
  "mac",
  "password",
  "authorization",
  "body",
  "payload",
  "content",
  "data",
] as const;

// pino's redaction takes explicit paths, and a leading wildcard stands for one level only, so
// each key is listed at the top level and up to three levels down. Deeper secrets must not be
// logged as whole objects: log the fields that matter, or pass values through redactValue().
export const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export interface LoggerOptions {
  /** Component name, logged as `service.name` (e.g. "broker", "gateway-im"). */
  service: string;
  /** Mesh node id, logged as `service.instance.id`. */
  nodeId: string;
  level?: pino.LevelWithSilent;
  /** Where JSON lines go; stdout by default. */
  destination?: pino.DestinationStream;
}

/**
 * The trace of the active OpenTelemetry span, so log lines join the message's trace.
 * Returns a fresh object each time: pino merges the line's fields into it.
 */
function traceFields(): object {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  if (!isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId, trace_flags: `0${ctx.traceFlags.toString(16)}`.slice(-2) };
}

/**
 * The root logger of a process: JSON lines on stdout, fields first and the message last
 * (`log.info({ messageId }, "released")`), secrets redacted, trace ids of the active span added.
 * Components derive children with `logger.child({ component: "..." })`.
 */
export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level ?? "info",
      // service.name and the node id never change for a process, so they go in `base`, serialized
      // once, rather than in the mixin, which runs for every line.
      base: { "service.name": opts.service, "service.instance.id": opts.nodeId, pid: process.pid },
      mixin: traceFields,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Describes a secret without revealing it, for places where its presence or size matters:
 * `log.debug({ sessionKey: redactValue(key) }, ...)` gives "[redacted 32 bytes]".
 */
export function redactValue(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === "string") return `[redacted ${value.length} chars]`;
  if (value instanceof Uint8Array) return `[redacted ${value.byteLength} bytes]`;
  return REDACTED;
}
