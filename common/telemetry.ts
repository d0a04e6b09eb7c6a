/**
 * OpenTelemetry bootstrap, loaded before anything else with `node --require
 * ./dist/common/telemetry.js` (the grpc instrumentation must patch @grpc/grpc-js before any
 * generated client is built). Configured only by the standard variables:
 * - `OTEL_TRACES_EXPORTER`: `otlp` (default when an OTLP endpoint is set), `console`, or `none`
 *   (default otherwise: no spans are recorded, trace context still travels with each message);
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and the other
 *   `OTEL_EXPORTER_OTLP_*` variables, read by the OTLP gRPC exporter itself;
 * - `OTEL_SERVICE_NAME`.
 */
import { diag, DiagConsoleLogger, DiagLogLevel } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

export type TracesExporter = "otlp" | "console" | "none";

export function chosenExporter(env: NodeJS.ProcessEnv = process.env): TracesExporter {
  const named = (env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase();
  if (named === "otlp" || named === "console" || named === "none") return named;
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? "otlp" : "none";
}

let provider: NodeTracerProvider | undefined;

/** Registers the tracer provider and the grpc instrumentation; a no-op for "none". */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env, processors?: SpanProcessor[]): void {
  if (provider) return;
  const exporter = chosenExporter(env);
  if (exporter === "none" && !processors) return;
  if (env.OTEL_LOG_LEVEL === "debug") diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.DEBUG);
  const spanProcessors =
    processors ?? [exporter === "otlp" ? new BatchSpanProcessor(new OTLPTraceExporter()) : new SimpleSpanProcessor(new ConsoleSpanExporter())];
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME || "uims" }),
    spanProcessors,
  });
  // Registers the AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  registerInstrumentations({ instrumentations: [new GrpcInstrumentation()] });
}

/** Flushes and stops the exporter: the last closer of a graceful shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  await provider?.shutdown();
  provider = undefined;
}

// Loaded by --require: start at once. Under jest, tests start it themselves with in-memory export.
if (!process.env.JEST_WORKER_ID) startTelemetry();
