import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { stepDuration } from "./metrics";

// Even with no exporter configured (no tracer provider), the W3C propagator lets each step's
// span carry the message's trace id, so logs and statuses name one trace per message.
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

/**
 * One trace per message. The originating gateway starts the message's root span and puts its
 * W3C context into the meta information; every later step of the message — in the broker,
 * the processor, the destination, a report or a read receipt hours later — starts its span as a
 * child of that context, whatever process it runs in. No key material and no content goes into
 * span attributes: only ids, media, routes and outcomes (`uims.*`).
 */

const tracer = () => trace.getTracer("uims");

export const Attr = {
  messageId: "uims.message_id",
  sourceMedium: "uims.medium.source",
  targetMedium: "uims.medium.target",
  destination: "uims.destination",
  processor: "uims.processor",
  attempt: "uims.attempt",
  outcome: "uims.outcome",
  node: "uims.node",
} as const;

/** The context a traceparent names, or the active context when it names none. */
export function contextOf(traceparent: string | undefined, tracestate = ""): Context {
  if (!traceparent) return context.active();
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier.tracestate = tracestate;
  return propagation.extract(context.active(), carrier);
}

/** The W3C traceparent of a span (or "" when tracing is off and the span is not recording). */
export function traceparentOf(span: Span): { traceparent: string; tracestate: string } {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return { traceparent: carrier.traceparent ?? "", tracestate: carrier.tracestate ?? "" };
}

export interface StepOptions {
  /** The message's traceparent (from its meta information); the step becomes its child. */
  traceparent?: string | undefined;
  kind?: SpanKind;
  attributes?: Attributes;
}

/**
 * Runs one step of a message's life in a span: ended when the work ends, marked as an error
 * (with the error recorded) when it throws.
 */
export async function step<T>(name: string, opts: StepOptions, work: (span: Span) => Promise<T>): Promise<T> {
  const parent = contextOf(opts.traceparent);
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  const timer = stepDuration.startTimer({ step: name });
  try {
    const result = await context.with(trace.setSpan(parent, span), () => work(span));
    timer({ outcome: "ok" });
    return result;
  } catch (err) {
    timer({ outcome: "error" });
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}

/** Starts a root span for a new message (child of the client's traceparent when it sent one). */
export function startMessageSpan(name: string, clientTraceparent: string | undefined, attributes: Attributes): Span {
  return tracer().startSpan(name, { kind: SpanKind.SERVER, attributes }, contextOf(clientTraceparent));
}

export { SpanKind };
