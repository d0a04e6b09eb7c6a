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

const SECRET_KEY_SET: ReadonlySet<string> = new Set(SECRET_KEYS);
const MAX_REDACT_DEPTH = 8;

/**
 * A copy of `value` with every property named in SECRET_KEYS replaced by REDACTED, at any depth
 * up to 8; objects without secrets are returned as they are, not copied.
 *
 * Used instead of pino's wildcard redact paths: with these keys as paths four levels deep, a
 * small line took about 46 µs against about 3 µs unredacted; with this walk about 4.5 µs, and
 * secrets are found deeper too.
 */
export function redactSecrets<T>(value: T, depth = 0): T {
  if (typeof value !== "object" || value === null || depth > MAX_REDACT_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item: unknown, i) => {
      const redacted = redactSecrets(item, depth + 1);
      if (redacted !== item) (copy ??= [...value])[i] = redacted;
    });
    return (copy ?? value) as T;
  }
  // Leaves: bytes, errors (pino's serializer shows their message and stack), and objects that
  // choose their own JSON form (dates, keyrings).
  if (value instanceof Uint8Array || value instanceof Error || typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    const redacted = SECRET_KEY_SET.has(key) && item !== undefined ? REDACTED : redactSecrets(item, depth + 1);
    if (redacted !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = redacted;
  }
  return (copy ?? value) as T;
}

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
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactSecrets(obj),
        bindings: (bindings) => redactSecrets(bindings),
      },
      // pino skips the bindings formatter for child loggers; top-level paths (cheap, unlike
      // wildcards) cover secrets bound with `logger.child({ ... })`.
      redact: { paths: [...SECRET_KEYS], censor: REDACTED },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Describes a secret without revealing it, for places where its presence or size matters:
 * `log.debug({ granted: redactValue(key) }, ...)` gives "[redacted 32 bytes]" (under a key from
 * SECRET_KEYS it would be replaced by "[redacted]" anyway).
 */
export function redactValue(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === "string") return `[redacted ${value.length} chars]`;
  if (value instanceof Uint8Array) return `[redacted ${value.byteLength} bytes]`;
  return REDACTED;
}
