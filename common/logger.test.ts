import { context, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { createLogger, REDACTED, redactSecrets, redactValue, SECRET_KEYS } from "./logger";

function capture(level: "info" | "debug" = "info") {
  const lines: string[] = [];
  const logger = createLogger({ service: "broker", nodeId: "broker-0", level, destination: { write: (s: string) => void lines.push(s) } });
  const records = (): Array<Record<string, unknown>> => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, lines, records };
}

describe("createLogger", () => {
  test("JSON lines with service fields, ISO time, level label, message last", () => {
    const { logger, lines, records } = capture();
    logger.info({ messageId: "m-1", medium: "sms" }, "released");
    logger.debug({ messageId: "m-2" }, "not at info level");
    expect(lines).toHaveLength(1);
    const [record] = records();
    expect(record).toMatchObject({
      level: "info",
      "service.name": "broker",
      "service.instance.id": "broker-0",
      messageId: "m-1",
      medium: "sms",
      msg: "released",
    });
    expect(Number.isNaN(Date.parse(String(record?.["time"])))).toBe(false);
    expect(Object.keys(record ?? {}).at(-1)).toBe("msg");
  });

  test("secrets never appear, whatever the nesting", () => {
    const { logger, lines, records } = capture();
    const secrets = SECRET_KEYS.map((k, i) => `SECRET-${k}-${i}`);
    const bag = Object.fromEntries(SECRET_KEYS.map((k, i) => [k, secrets[i]]));
    logger.info(
      {
        ...bag,
        auth: { ...bag, nodeId: "gw-im-1" },
        request: { meta: { ...bag }, items: [{ ...bag }] },
        keyId: "k1",
      },
      "call",
    );
    logger.child({ component: "tscs" }).warn({ login: { mac: "SECRET-child-mac", key: { nonce: "n" } } }, "refused");
    const out = lines.join("");
    for (const s of [...secrets, "SECRET-child-mac"]) expect(out).not.toContain(s);
    const [first, second] = records();
    expect(first?.["token"]).toBe(REDACTED);
    expect((first?.["auth"] as Record<string, unknown>)["sessionKey"]).toBe(REDACTED);
    expect((first?.["auth"] as Record<string, unknown>)["nodeId"]).toBe("gw-im-1");
    expect(((first?.["request"] as Record<string, unknown>)["meta"] as Record<string, unknown>)["payload"]).toBe(REDACTED);
    expect(first?.["keyId"]).toBe("k1");
    expect(second).toMatchObject({ component: "tscs", login: { mac: REDACTED, key: REDACTED } });
  });

  test("secrets deep down, in arrays and in child bindings never appear; the logged object is untouched", () => {
    const { logger, lines, records } = capture();
    const request = { a: { b: { c: { d: { e: { token: "DEEP-TOKEN" } } } } }, list: [[{ password: "IN-ARRAY" }]], keyId: "k1" };
    logger.child({ component: "admin", authorization: "Bearer CHILD-SECRET" }).info({ request }, "call");
    const out = lines.join("");
    for (const s of ["DEEP-TOKEN", "IN-ARRAY", "CHILD-SECRET"]) expect(out).not.toContain(s);
    expect(records()[0]).toMatchObject({ component: "admin", authorization: REDACTED, request: { keyId: "k1" } });
    expect(request.a.b.c.d.e.token).toBe("DEEP-TOKEN");
    expect(request.list[0]?.[0]?.password).toBe("IN-ARRAY");
  });

  test("errors keep message and stack", () => {
    const { logger, records } = capture();
    logger.error({ err: new Error("store down") }, "failed");
    expect(records()[0]).toMatchObject({ err: { type: "Error", message: "store down" }, msg: "failed" });
    expect(String((records()[0]?.["err"] as Record<string, unknown>)["stack"])).toContain("store down");
  });

  test("Buffers under secret keys are redacted too", () => {
    const { logger, lines } = capture();
    const key = Buffer.from("0123456789abcdef0123456789abcdef");
    logger.info({ grant: { session_key: key, data: Buffer.from("hello payload") } }, "granted");
    expect(lines.join("")).not.toContain("48,49,50");
    expect(lines.join("")).not.toContain("hello payload");
  });

  test("adds trace_id and span_id of the active span", () => {
    const exporter = new InMemorySpanExporter();
    const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    provider.register();
    try {
      const { logger, records } = capture();
      logger.info("outside any span");
      const tracer = trace.getTracer("test");
      tracer.startActiveSpan("submit", (span) => {
        logger.info({ step: 1 }, "inside");
        span.end();
      });
      const [outside, inside] = records();
      expect(outside).not.toHaveProperty("trace_id");
      const spans = exporter.getFinishedSpans();
      expect(spans).toHaveLength(1);
      expect(inside).toMatchObject({
        trace_id: spans[0]?.spanContext().traceId,
        span_id: spans[0]?.spanContext().spanId,
        trace_flags: "01",
        step: 1,
      });
    } finally {
      void provider.shutdown();
      trace.disable();
      context.disable();
    }
  });
});

test("redactSecrets copies only what it changes", () => {
  const clean = { a: 1, b: { c: [1, 2] } };
  expect(redactSecrets(clean)).toBe(clean);
  const mixed = { keep: { x: 1 }, auth: { mac: "m" } };
  const out = redactSecrets(mixed);
  expect(out).toEqual({ keep: { x: 1 }, auth: { mac: REDACTED } });
  expect(out.keep).toBe(mixed.keep);
  expect(redactSecrets({ token: undefined })).toEqual({ token: undefined });
  expect(redactSecrets("plain")).toBe("plain");
});

test("redactValue describes without revealing", () => {
  expect(redactValue("hunter2")).toBe("[redacted 7 chars]");
  expect(redactValue(Buffer.alloc(32, 1))).toBe("[redacted 32 bytes]");
  expect(redactValue(new Uint8Array(16))).toBe("[redacted 16 bytes]");
  expect(redactValue({ a: 1 })).toBe(REDACTED);
  expect(redactValue(undefined)).toBe("undefined");
  expect(redactValue(null)).toBe("null");
});
