import type * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { simpleParser } from "mailparser";
import MailComposer from "nodemailer/lib/mail-composer";
import type { ClientServiceClient, InboxResponse } from "../../gen/uims/client/v1/client";
import type { InstantMessage, MetaInformation, Payload } from "../../gen/uims/common/v1/message";
import { Medium, MessageState, type MessageStatus } from "../../gen/uims/common/v1/types";
import { decodeGsm7 } from "../../common/content/gsm7";
import { decodeSmsContent, SMS_CONTENT_TYPE } from "../../common/content/sms";
import { payloadDigest } from "../../common/crypto/fields";
import { generateSigningKey, randomKeyring } from "../../common/crypto/keys";
import { makeRelease } from "../../common/crypto/release";
import { createLogger } from "../../common/logger";
import { BrokerClient } from "../../common/mesh/broker-client";
import { callUnary } from "../../common/mesh/peer";
import { ProcessorClient } from "../../common/mesh/processor-client";
import type { Store } from "../../common/store";
import { loadGatewayConfig } from "../../gateways/core/config";
import { createGateway, type Gateway } from "../../gateways/core/gateway";
import type { InboundMessage } from "../../gateways/core/types";
import { startProcessor, type RunningProcessor } from "../../processor/testing";
import {
  createProfile,
  generateMeshSecrets,
  identityFor,
  metaFor,
  startBroker,
  startImGateway,
  STORE_KINDS,
  testStore,
  type RunningBroker,
  type RunningImGateway,
} from "../support/mesh";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";

const PERMISSION_DENIED = 7;
const FAILED_PRECONDITION = 9;


/** A gateway core for a medium that has no gateway yet in this process: it records what it is given and reports it delivered. */
interface RecordingDestination {
  gateway: Gateway;
  store: Store;
  delivered: InboundMessage[];
  stop(): Promise<void>;
}

async function startRecordingDestination(secrets: ReturnType<typeof generateMeshSecrets>, brokerEndpoint: string, nodeId: string, medium: Medium, store: Store): Promise<RecordingDestination> {
  const config = loadGatewayConfig({
    NODE_ID: nodeId,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    BROKER_ADDR: brokerEndpoint,
    UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
    UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
  });
  const delivered: InboundMessage[] = [];
  const gateway = createGateway({
    config,
    store,
    logger: createLogger({ service: "gw", nodeId, level: "silent" }),
    createAdapter: () => ({
      medium,
      async deliver(message) {
        delivered.push(message);
        return { kind: "delivered", ...(message.segments ? { segments: message.segments } : {}) };
      },
      async onStatus() {},
      health: () => ({ healthy: true, detail: "" }),
    }),
  });
  await gateway.start();
  return {
    gateway,
    store,
    delivered,
    async stop() {
      gateway.mesh.server.forceShutdown();
      await gateway.close();
    },
  };
}

describe.each(STORE_KINDS)("conversions through the processor (%s stores)", (kind) => {
  const secrets = generateMeshSecrets();
  let broker: RunningBroker;
  let gw1: RunningImGateway;
  let gw2: RunningImGateway;
  let proc: RunningProcessor;
  let sms: RecordingDestination;
  let email: RecordingDestination;
  let aliceToken = "";
  let bobToken = "";
  let alice: { client: ClientServiceClient; metadata: grpc.Metadata };
  const aliceInbox: InboxResponse[] = [];
  let aliceStream: grpc.ClientReadableStream<InboxResponse> | undefined;

  const send = async (recipient: string, payload: Payload): Promise<string> => {
    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient, payload, idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    expect(sent.status?.state).toBe(MessageState.MESSAGE_STATE_ROUTED);
    return sent.messageId;
  };
  const statusOf = async (messageId: string): Promise<MessageStatus> =>
    (await callUnary(alice.client.getStatus.bind(alice.client), { messageId }, 5_000, alice.metadata)).status!;
  const reaches = (messageId: string, state: MessageState) => until(async () => ((await statusOf(messageId)).state === state ? statusOf(messageId) : undefined));

  beforeAll(async () => {
    broker = await startBroker(secrets, testStore(kind));
    proc = await startProcessor(secrets, broker.endpoint, "proc-1", testStore(kind));
    gw1 = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore(kind));
    gw2 = await startImGateway(secrets, broker.endpoint, "gw-im-2", testStore(kind));
    sms = await startRecordingDestination(secrets, broker.endpoint, "gw-sms-1", Medium.MEDIUM_SMS, testStore(kind));
    email = await startRecordingDestination(secrets, broker.endpoint, "gw-email-1", Medium.MEDIUM_EMAIL, testStore(kind));
    aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    bobToken = (await createProfile(broker, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    await createProfile(broker, {
      clientId: "carol",
      addresses: [{ medium: Medium.MEDIUM_SMS, address: "+491701234567" }],
      preferredMedia: [Medium.MEDIUM_SMS],
      limits: { maxMessagesPerDay: 0, maxSmsSegments: 2, maxPayloadBytes: 0 },
    });
    alice = gw1.clientFor(aliceToken);
    aliceStream = alice.client.inbox({ afterCursor: "", manualAck: false }, alice.metadata);
    aliceStream.on("data", (r: InboxResponse) => aliceInbox.push(r));
    aliceStream.on("error", () => undefined);
  });

  afterAll(async () => {
    aliceStream?.cancel();
    await Promise.all([gw1.stop(), gw2.stop(), sms.stop(), email.stop(), proc.stop()]);
    await broker.stop();
    await Promise.all([gw1.store, gw2.store, sms.store, email.store, proc.store, broker.store].map((s) => s.close()));
  });

  test("a MIME mail sent to an im recipient arrives as text with its subject and attachments", async () => {
    const bob = gw2.clientFor(bobToken);
    const { received, cancel: cancelInbox } = followInbox(bob);
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":true') || undefined);

    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), randomBytes(20_000)]);
    const raw = await new MailComposer({
      from: "Alice <alice@example.org>",
      to: "bob@example.org",
      subject: "Grüße: the report",
      text: "Hi Bob,\nthe report is attached.\n",
      html: "<p>Hi Bob,<br>the report is attached.</p>",
      attachments: [{ filename: "report.pdf", contentType: "application/pdf", content: pdf }],
    })
      .compile()
      .build();
    const messageId = await send("bob", { contentType: "message/rfc822", body: raw, attachments: [], subject: "" });

    const arrived = await until(() => received.find((r) => r.message?.messageId === messageId)?.message);
    expect(arrived.sender).toBe("alice");
    expect(arrived.payload?.contentType).toBe("text/plain; charset=utf-8");
    expect(arrived.payload?.subject).toBe("Grüße: the report");
    expect(arrived.payload?.body.toString("utf8")).toBe("Hi Bob,\nthe report is attached.");
    expect(arrived.payload?.attachments.map((a) => [a.filename, a.contentType])).toEqual([["report.pdf", "application/pdf"]]);
    expect(arrived.payload?.attachments[0]?.data.equals(pdf)).toBe(true);

    const status = await reaches(messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(status.events.map((e) => e.state)).toEqual(
      expect.arrayContaining([MessageState.MESSAGE_STATE_ROUTED, MessageState.MESSAGE_STATE_TRANSMITTED, MessageState.MESSAGE_STATE_DELIVERED]),
    );
    cancelInbox();
  });

  test("text to an SMS recipient is encoded and concatenated; the segments are counted", async () => {
    const text = `Treffen um 5? ${"Bitte bestätigen. ".repeat(9)}`.trim();
    const messageId = await send("carol", { contentType: "text/plain; charset=utf-8", body: Buffer.from(text), attachments: [], subject: "" });
    const status = await reaches(messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(status.medium).toBe(Medium.MEDIUM_SMS);
    expect(status.segments).toBe(2);
    const delivered = sms.delivered.find((m) => m.messageId === messageId)!;
    expect(delivered.payload.contentType).toBe(SMS_CONTENT_TYPE);
    expect(delivered.segments).toBe(2);
    expect(delivered.meta.targetAddress).toBe("+491701234567");
    const content = decodeSmsContent(delivered.payload.body);
    expect(content).toMatchObject({ encoding: "gsm7", dataCoding: 0, udhi: true, text });
    const userData = content.segments.map((s) => Buffer.from(s, "base64").subarray(6));
    expect(userData.map((d) => decodeGsm7(d)).join("")).toBe(text);
  });

  test("text to a mail address becomes a MIME mail from the sender's mesh address", async () => {
    const messageId = await send("mailto:dave@example.org", {
      contentType: "text/plain; charset=utf-8",
      body: Buffer.from("Hello Dave"),
      attachments: [{ filename: "a.txt", contentType: "text/plain", data: Buffer.from("attached") }],
      subject: "",
    });
    await reaches(messageId, MessageState.MESSAGE_STATE_DELIVERED);
    const delivered = email.delivered.find((m) => m.messageId === messageId)!;
    expect(delivered.payload.contentType).toBe("message/rfc822");
    const mail = await simpleParser(delivered.payload.body);
    expect(mail.from?.value[0]).toEqual({ name: "alice", address: "alice@uims.local" });
    expect(mail.subject).toBe("Message from alice");
    expect(mail.messageId).toBe(`<${messageId}@uims.local>`);
    expect(mail.text?.trimEnd()).toBe("Hello Dave");
    expect(mail.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([["a.txt", "attached"]]);
  });

  test.each([
    ["content the processor cannot convert", { contentType: "application/octet-stream", body: randomBytes(64), attachments: [], subject: "" }, "conversion failed: no conversion from application/octet-stream to application/vnd.uims.sms"],
    ["text longer than the recipient allows", { contentType: "text/plain", body: Buffer.from("z".repeat(400)), attachments: [], subject: "" }, "conversion failed: needs 3 segments, the recipient allows 2"],
  ])("%s ends FAILED with the reason in the sender's status and an NDR in her inbox", async (_what, payload, reason) => {
    const before = sms.delivered.length;
    const messageId = await send("carol", payload);
    const status = await reaches(messageId, MessageState.MESSAGE_STATE_FAILED);
    const failure = status.events.find((e) => e.state === MessageState.MESSAGE_STATE_FAILED)!;
    expect(failure.reason).toContain(reason);
    expect(status.events.some((e) => e.state === MessageState.MESSAGE_STATE_TRANSMITTED)).toBe(false);
    const ndr = await until(() => aliceInbox.find((r) => r.message?.messageId === `ndr-${messageId}`)?.message);
    expect(ndr.payload?.body.toString()).toContain(reason);
    expect(sms.delivered.length).toBe(before);
  });

  describe("transmissions straight to the processor", () => {
    let asGw1: ProcessorClient;
    let asGw2: ProcessorClient;
    let submitter: BrokerClient;

    beforeAll(() => {
      asGw1 = new ProcessorClient("proc-1", proc.endpoint, identityFor("gw-im-1", secrets));
      asGw2 = new ProcessorClient("proc-1", proc.endpoint, identityFor("gw-im-2", secrets));
      submitter = new BrokerClient(broker.endpoint, identityFor("gw-im-1", secrets));
    });

    afterAll(() => {
      asGw1.close();
      asGw2.close();
      submitter.close();
    });

    // Content the processor would refuse with FAILED_PRECONDITION if it got as far as converting.
    const unconvertible: Payload = { contentType: "application/octet-stream", body: Buffer.from("opaque"), attachments: [], subject: "" };

    /** A release as the broker would make it, but signed with a key that is not the broker's. */
    function forged(payload: Payload): InstantMessage {
      const meta: MetaInformation = metaFor("gw-im-1", {
        sender: "alice",
        senderAddress: "im:alice",
        recipient: "carol",
        contentType: payload.contentType,
        contentDigest: payloadDigest(payload),
        targetMedium: Medium.MEDIUM_SMS,
        targetAddress: "+491701234567",
        destinationGatewayId: "gw-sms-1",
        destinationEndpoint: "127.0.0.1:1",
        conversion: { sourceContentType: payload.contentType, targetMedium: Medium.MEDIUM_SMS, targetContentType: SMS_CONTENT_TYPE, maxSegments: 0 },
        processorId: "proc-1",
        processorEndpoint: proc.endpoint,
        attempt: 1,
        recipientId: "carol",
        releasedAtUnixMs: Date.now(),
      });
      const realKeyId = secrets.UIMS_RELEASE_SIGNING_KEY.split(":")[0]!;
      const release = makeRelease({ k1: identityFor("x", secrets).k1, k2: randomKeyring("k2"), signing: generateSigningKey(realKeyId).key }, meta, randomBytes(32));
      return { release, payload, convertedBy: "", segments: 0 };
    }

    test("a release signed by anyone but the broker is refused before any conversion", async () => {
      const message = forged(unconvertible);
      await expect(asGw1.transmit(message, payloadDigest(unconvertible))).rejects.toMatchObject({ code: PERMISSION_DENIED, details: "the release does not carry a valid broker signature" });
      const unsigned = { ...message, release: { ...message.release!, signature: Buffer.alloc(0) } };
      await expect(asGw1.transmit(unsigned, payloadDigest(unconvertible))).rejects.toMatchObject({ code: PERMISSION_DENIED, details: "the release does not carry a valid broker signature" });
    });

    test("a genuine release: only its originator, only its content, only its fields", async () => {
      const meta = metaFor("gw-im-1", { sender: "alice", senderAddress: "im:alice", recipient: "carol", contentType: unconvertible.contentType, contentDigest: payloadDigest(unconvertible), contentSize: 6 });
      const release = await submitter.submit(meta);
      expect(release.meta).toMatchObject({ processorId: "proc-1", destinationGatewayId: "gw-sms-1" });
      const message: InstantMessage = { release, payload: unconvertible, convertedBy: "", segments: 0 };

      await expect(asGw2.transmit(message, payloadDigest(unconvertible))).rejects.toMatchObject({ code: PERMISSION_DENIED, details: 'only the originating gateway "gw-im-1" may transmit this message' });
      const other = { ...unconvertible, body: Buffer.from("swapped") };
      await expect(asGw1.transmit({ ...message, payload: other }, payloadDigest(other))).rejects.toMatchObject({ code: PERMISSION_DENIED, details: "the content is not the content the broker released" });
      const redirected = { ...message, release: { ...release, meta: { ...release.meta!, destinationEndpoint: "127.0.0.1:9" } } };
      await expect(asGw1.transmit(redirected, payloadDigest(unconvertible))).rejects.toMatchObject({ code: PERMISSION_DENIED, details: "the release does not carry a valid broker signature" });
      // Everything checks out: only now is the content looked at.
      await expect(asGw1.transmit(message, payloadDigest(unconvertible))).rejects.toMatchObject({
        code: FAILED_PRECONDITION,
        details: "conversion failed: no conversion from application/octet-stream to application/vnd.uims.sms",
      });
    });
  });
});
