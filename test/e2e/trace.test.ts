import { AckKind } from "../../gen/uims/client/v1/client";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { callUnary } from "../../common/mesh/peer";
import { startOtlpReceiver, type ReceivedSpan } from "../support/otlp-receiver";
import { addProfile, connectClient, followInbox, startE2EMesh, until, type E2EMesh } from "../support/e2e";

const MAIL = [
  "From: Alice <alice@example.org>",
  "To: bob@example.org",
  "Subject: the plan",
  "Content-Type: text/plain; charset=utf-8",
  "",
  "Meet at noon.",
  "",
].join("\r\n");

/**
 * One trace per message across separate processes: every server exports to an OTLP receiver in
 * this test, and the spans of one message, from the originating gateway through the broker, the
 * processor and the destination to the read receipt, share one trace and hang off its root.
 */
describe("tracing across processes", () => {
  let e: E2EMesh;
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const otel = (service: string) => ({ OTEL_SERVICE_NAME: service });
    e = await startE2EMesh(
      [
        { nodeId: "broker-0", kind: "broker", env: otel("uims-broker") },
        { nodeId: "gw-im-1", kind: "im", env: otel("uims-gw-im-1") },
        { nodeId: "gw-im-2", kind: "im", env: otel("uims-gw-im-2") },
        { nodeId: "proc-1", kind: "processor", env: otel("uims-processor") },
      ],
      { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_TRACES_EXPORTER: "otlp", OTEL_BSP_SCHEDULE_DELAY: "200" },
    );
  }, 60_000);

  afterAll(async () => {
    await e?.stop();
    receiver?.stop();
  });

  test("a converted message and its read receipt form one trace rooted at the originating gateway", async () => {
    const tokens: Record<string, string> = {};
    for (const id of ["alice", "bob"]) tokens[id] = await addProfile(e, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] });
    const alice = connectClient(e.mesh.components.get("gw-im-1")!.clientEndpoint!, tokens.alice!);
    const bob = connectClient(e.mesh.components.get("gw-im-2")!.clientEndpoint!, tokens.bob!);
    const inbox = followInbox(bob);
    await new Promise((r) => setTimeout(r, 500));
    // A MIME mail to an im user: the route converts it to text through the processor.
    const sent = await callUnary(
      alice.client.send.bind(alice.client),
      { recipient: "bob", payload: { contentType: "message/rfc822", body: Buffer.from(MAIL), attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
      5_000,
      alice.metadata,
    );
    const arrived = await until(() => inbox.received.find((r) => r.message?.messageId === sent.messageId), 15_000, "arrival");
    expect(arrived.message?.payload?.contentType).toContain("text/plain");
    await callUnary(bob.client.acknowledge.bind(bob.client), { messageId: sent.messageId, kind: AckKind.ACK_KIND_READ }, 5_000, bob.metadata);
    const status = await until(async () => {
      const s = (await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata)).status;
      return s?.state === MessageState.MESSAGE_STATE_READ ? s : undefined;
    }, 15_000, "read");
    inbox.cancel();
    alice.close();
    bob.close();
    // A graceful stop flushes every exporter.
    await e.mesh.stop("SIGTERM");

    const spans = receiver.spans.filter((s) => s.attributes["uims.message_id"] === sent.messageId);
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const root = byName("uims.send")[0]!;
    expect(root).toBeDefined();
    expect(status.traceId).toBe(root.traceId);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));

    const expected: Array<[string, string]> = [
      ["uims.send", "uims-gw-im-1"],
      ["uims.broker.release", "uims-broker"],
      ["uims.transmit", "uims-gw-im-1"],
      ["uims.process", "uims-processor"],
      ["uims.receive", "uims-gw-im-2"],
      ["uims.deliver", "uims-gw-im-2"],
      ["uims.report", "uims-gw-im-2"],
      ["uims.broker.report", "uims-broker"],
      ["uims.broker.notify", "uims-broker"],
      ["uims.notice", "uims-gw-im-1"],
    ];
    for (const [name, service] of expected) {
      expect(byName(name).map((s) => s.service)).toContain(service);
    }
    // Every step of the message hangs off its root, whichever process took it.
    for (const span of spans.filter((s: ReceivedSpan) => s !== root)) expect(span.parentSpanId).toBe(root.spanId);
    // The read receipt hours later would join the same way: here, two reports and two notices.
    expect(byName("uims.report").map((s) => s.attributes["uims.outcome"]).sort()).toEqual(["delivered", "read"]);
    expect(byName("uims.notice").length).toBeGreaterThanOrEqual(2);
    // The gRPC instrumentation adds its own spans to the same processes.
    expect(receiver.spans.some((s) => s.name.startsWith("grpc."))).toBe(true);
  }, 60_000);
});
