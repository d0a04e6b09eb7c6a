import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Medium } from "../../gen/uims/common/v1/types";
import { shutdownTelemetry, startTelemetry } from "../../common/telemetry";
import { callUnary } from "../../common/mesh/peer";
import { startProcessor, type RunningProcessor } from "../../processor/testing";
import { createProfile, generateMeshSecrets, startBroker, startImGateway, testStore, type RunningBroker, type RunningImGateway } from "../support/mesh";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";


describe("a converted message keeps one trace", () => {
  const exporter = new InMemorySpanExporter();
  const secrets = generateMeshSecrets();
  let broker: RunningBroker;
  let proc: RunningProcessor;
  let gw1: RunningImGateway;
  let gw2: RunningImGateway;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    startTelemetry({ OTEL_SERVICE_NAME: "uims-test" }, [new SimpleSpanProcessor(exporter)]);
    broker = await startBroker(secrets, testStore("memory"));
    proc = await startProcessor(secrets, broker.endpoint, "proc-1", testStore("memory"));
    gw1 = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore("memory"));
    gw2 = await startImGateway(secrets, broker.endpoint, "gw-im-2", testStore("memory"));
    for (const id of ["alice", "bob"]) {
      tokens[id] = (await createProfile(broker, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    }
  });

  afterAll(async () => {
    await Promise.all([gw1.stop(), gw2.stop(), proc.stop()]);
    await broker.stop();
    await shutdownTelemetry();
  });

  test("the processor's step is a child of the message's root span, without content in it", async () => {
    const alice = gw1.clientFor(tokens.alice!);
    const bob = gw2.clientFor(tokens.bob!);
    const { received, cancel: cancelInbox } = followInbox(bob);
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":true') || undefined);
    const mail = "Subject: secret subject 17\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsecret content 42\r\n";
    const sent = await callUnary(
      alice.client.send.bind(alice.client),
      { recipient: "bob", payload: { contentType: "message/rfc822", body: Buffer.from(mail), attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
      5_000,
      alice.metadata,
    );
    await until(() => (received.some((r) => r.message?.messageId === sent.messageId) ? true : undefined));
    await until(() => (exporter.getFinishedSpans().some((s) => s.name === "uims.process") ? true : undefined));
    cancelInbox();

    const spans = exporter.getFinishedSpans().filter((s) => s.attributes["uims.message_id"] === sent.messageId);
    const root = spans.find((s) => s.name === "uims.send")!;
    const processing = spans.find((s) => s.name === "uims.process")!;
    expect(processing.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(processing.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(processing.attributes).toMatchObject({ "uims.processor": "proc-1", "uims.conversion": "message/rfc822 -> text/plain", "uims.destination": "gw-im-2", "uims.segments": 0 });
    const receive = spans.find((s) => s.name === "uims.receive" && s.attributes["uims.converted_by"] === "proc-1");
    expect(receive?.spanContext().traceId).toBe(root.spanContext().traceId);

    const dump = JSON.stringify(exporter.getFinishedSpans().map((s) => ({ a: s.attributes, e: s.events })));
    expect(dump).not.toContain("secret content 42");
    expect(dump).not.toContain("secret subject 17");
  });
});
