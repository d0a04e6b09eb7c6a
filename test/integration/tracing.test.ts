import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { AckKind } from "../../gen/uims/client/v1/client";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { shutdownTelemetry, startTelemetry } from "../../common/telemetry";
import { callUnary } from "../../common/mesh/peer";
import { createProfile, generateMeshSecrets, startBroker, startImGateway, testStore, type RunningBroker, type RunningImGateway } from "../support/mesh";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";


describe("one trace per message", () => {
  const exporter = new InMemorySpanExporter();
  const secrets = generateMeshSecrets();
  let broker: RunningBroker;
  let gw1: RunningImGateway;
  let gw2: RunningImGateway;
  let tokens: Record<string, string>;

  beforeAll(async () => {
    startTelemetry({ OTEL_SERVICE_NAME: "uims-test" }, [new SimpleSpanProcessor(exporter)]);
    broker = await startBroker(secrets, testStore("memory"));
    gw1 = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore("memory"));
    gw2 = await startImGateway(secrets, broker.endpoint, "gw-im-2", testStore("memory"));
    tokens = {};
    for (const id of ["alice", "bob"]) {
      tokens[id] = (await createProfile(broker, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    }
  });

  afterAll(async () => {
    await gw1.stop();
    await gw2.stop();
    await broker.stop();
    await shutdownTelemetry();
  });

  test("send, release, transmit, receive, deliver, reports and notices (read receipt included) share the message's trace", async () => {
    const alice = gw1.clientFor(tokens.alice!);
    const bob = gw2.clientFor(tokens.bob!);
    const { received, cancel: cancelInbox } = followInbox(bob);
    await new Promise((r) => setTimeout(r, 200));
    const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    alice.metadata.set("traceparent", `00-${clientTrace}-00f067aa0ba902b7-01`);
    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: { contentType: "text/plain", body: Buffer.from("secret content 42"), attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    await until(() => (received.length > 0 ? true : undefined));
    await callUnary(bob.client.acknowledge.bind(bob.client), { messageId: sent.messageId, kind: AckKind.ACK_KIND_READ }, 5_000, bob.metadata);
    await until(async () => {
      const s = await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata);
      return s.status?.state === MessageState.MESSAGE_STATE_READ ? true : undefined;
    });
    await until(() => (exporter.getFinishedSpans().filter((s) => s.name === "uims.notice").length >= 2 ? true : undefined));
    cancelInbox();

    const spans = exporter.getFinishedSpans().filter((s) => s.attributes["uims.message_id"] === sent.messageId);
    const names = spans.map((s) => s.name);
    for (const name of ["uims.send", "uims.broker.release", "uims.transmit", "uims.receive", "uims.deliver", "uims.report", "uims.broker.report", "uims.broker.notify", "uims.notice"]) {
      expect(names).toContain(name);
    }
    // One trace: the client's own trace id, given in its traceparent, covers every step.
    expect(new Set(spans.map((s) => s.spanContext().traceId))).toEqual(new Set([clientTrace]));
    const status = await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata);
    expect(status.status?.traceId).toBe(clientTrace);

    // The tree: the send span is the child of the client's span; every later step hangs off it.
    const root = spans.find((s) => s.name === "uims.send")!;
    expect(parentOf(root)).toBe("00f067aa0ba902b7");
    for (const span of spans.filter((s) => s !== root)) expect(parentOf(span)).toBe(root.spanContext().spanId);
    // Two reports (delivered, then read) and two notices reached the originator.
    expect(names.filter((n) => n === "uims.report")).toHaveLength(2);
    expect(spans.filter((s) => s.name === "uims.notice").map((s) => s.attributes["uims.state"])).toEqual(expect.arrayContaining(["MESSAGE_STATE_DELIVERED", "MESSAGE_STATE_READ"]));
    expect(spans.find((s) => s.name === "uims.broker.release")?.attributes).toMatchObject({ "uims.medium.target": "im", "uims.destination": "gw-im-2", "uims.attempt": 1 });

    // No content and no key material in any span.
    const dump = JSON.stringify(exporter.getFinishedSpans().map((s) => ({ a: s.attributes, e: s.events })));
    expect(dump).not.toContain("secret content 42");
    for (const secret of Object.values(secrets)) expect(dump).not.toContain(secret.split(":").pop()!);
    expect(dump).not.toContain(tokens.alice!);
  });
});

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}
