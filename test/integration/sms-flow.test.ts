import type { InboxResponse } from "../../gen/uims/client/v1/client";
import { FailureKind, Medium, MessageState, type MessageStatus } from "../../gen/uims/common/v1/types";
import { decodeGsm7 } from "../../common/content/gsm7";
import { encodeSmsContent, SMS_CONTENT_TYPE } from "../../common/content/sms";
import { callUnary } from "../../common/mesh/peer";
import type { Store } from "../../common/store";
import { loadSmsGatewayConfig } from "../../gateways/sms/config";
import { createSmsGateway, type SmsGateway } from "../../gateways/sms/server";
import { Status } from "../../gateways/sms/smpp-status";
import { startProcessor, type RunningProcessor } from "../../processor/testing";
import {
  captureLogger,
  createProfile,
  generateMeshSecrets,
  startBroker,
  startImGateway,
  STORE_KINDS,
  testStore,
  type RunningBroker,
  type RunningImGateway,
  type StoreKind,
} from "../support/mesh";
import { TestSmsc } from "../support/smsc";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";

/**
 * The sms gateway in a mesh on loopback: broker, an im gateway, the processor and the sms
 * gateway in this process, and a real SMPP peer (the `smpp` package's server) as the SMSC.
 */

const SMSC_CREDENTIALS = { systemId: "uims-test", password: "pw-4711" };
const PHONE = "+491701234567";

type Secrets = ReturnType<typeof generateMeshSecrets>;


function text(body: string) {
  return { contentType: "text/plain; charset=utf-8", body: Buffer.from(body), attachments: [], subject: "" };
}

interface RunningSms {
  sms: SmsGateway;
  log: ReturnType<typeof captureLogger>;
  stop(): Promise<void>;
}

async function startSmsGateway(secrets: Secrets, brokerEndpoint: string, smsc: TestSmsc, store: Store, env: Record<string, string> = {}): Promise<RunningSms> {
  const config = loadSmsGatewayConfig({
    NODE_ID: "gw-sms-1",
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    BROKER_ADDR: brokerEndpoint,
    UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
    UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
    SMPP_URL: smsc.url,
    SMPP_SYSTEM_ID: SMSC_CREDENTIALS.systemId,
    SMPP_PASSWORD: SMSC_CREDENTIALS.password,
    SMPP_SOURCE_ADDR: "+4915550000",
    SMPP_RECONNECT_MIN_MS: "50",
    SMPP_RECONNECT_MAX_MS: "250",
    SMS_INBOUND_NUMBERS: "+4915550001:bob",
    DELIVERY_GIVE_UP_MS: "1500",
    ...env,
  });
  const log = captureLogger("gw-sms");
  const sms = createSmsGateway(config, store, log.logger);
  await sms.start();
  return {
    sms,
    log,
    async stop() {
      sms.gateway.mesh.server.forceShutdown();
      await sms.close();
    },
  };
}

describe.each(STORE_KINDS)("sms gateway in the mesh (%s stores)", (kind: StoreKind) => {
  const secrets = generateMeshSecrets();
  const smsc = new TestSmsc(SMSC_CREDENTIALS);
  let broker: RunningBroker;
  let im: RunningImGateway;
  let processor: RunningProcessor;
  let smsStore: Store;
  let gw: RunningSms;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    await smsc.start();
    // Heartbeats once a minute: the broker keeps routing to the sms gateway while its SMSC is
    // down, so that the gateway's retries and the fallback after them are what the tests see.
    broker = await startBroker(secrets, testStore(kind), { env: { HEARTBEAT_INTERVAL_MS: "60s" } });
    im = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore(kind));
    processor = await startProcessor(secrets, broker.endpoint, "proc-1", testStore(kind));
    smsStore = testStore(kind);
    gw = await startSmsGateway(secrets, broker.endpoint, smsc, smsStore);
    expect(await gw.sms.session.waitUntilBound(5_000)).toBe(true);
    const profile = async (clientId: string, media: Medium[], phone: string) => {
      const addresses = [
        { medium: Medium.MEDIUM_IM, address: clientId },
        { medium: Medium.MEDIUM_SMS, address: phone },
      ];
      tokens[clientId] = (await createProfile(broker, { clientId, addresses, preferredMedia: media })).clientToken;
    };
    await profile("alice", [Medium.MEDIUM_IM], "+4915550100");
    await profile("bob", [Medium.MEDIUM_IM, Medium.MEDIUM_SMS], "+4915550101");
    await profile("dora", [Medium.MEDIUM_SMS, Medium.MEDIUM_IM], "+4915550104");
    await profile("erin", [Medium.MEDIUM_SMS], "+4915550105");
  });

  afterAll(async () => {
    await gw.stop();
    await processor.stop();
    await im.stop();
    await broker.stop();
    await smsc.stop();
    await Promise.all([smsStore.close(), processor.store.close(), im.store.close(), broker.store.close()]);
  });

  async function send(recipient: string, payload: ReturnType<typeof text>): Promise<string> {
    const alice = im.clientFor(tokens.alice!);
    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient, payload, idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    return sent.messageId;
  }

  async function status(messageId: string): Promise<MessageStatus> {
    const alice = im.clientFor(tokens.alice!);
    const res = await callUnary(alice.client.getStatus.bind(alice.client), { messageId }, 5_000, alice.metadata);
    return res.status!;
  }

  const statusIn = (messageId: string, state: MessageState, timeoutMs?: number) => until(async () => {
    const s = await status(messageId);
    return s.state === state ? s : undefined;
  }, timeoutMs);

  function inbox(clientId: string): { received: InboxResponse[]; close(): void } {
    const client = im.clientFor(tokens[clientId]!);
    const { received, cancel } = followInbox(client);
    return { received, close: cancel };
  }

  test("text to a phone: the processor makes 3 segments, 3 submit_sm with their headers, receipts for all → DELIVERED, 3 segments", async () => {
    const body = "Hello from the mesh! ".repeat(19).trim(); // 398 GSM characters: 3 segments
    const before = smsc.submits.length;
    const messageId = await send("sms:+4915550123", text(body));
    await smsc.until(() => smsc.submits.length === before + 3);
    const parts = smsc.submits.slice(before);
    const reference = parts[0]!.shortMessage[3];
    parts.forEach((p, i) => {
      expect(p).toMatchObject({ destinationAddr: "4915550123", destTon: 1, destNpi: 1, sourceAddr: "4915550000", sourceTon: 1, esmClass: 0x40, dataCoding: 0, registeredDelivery: 1 });
      expect([...p.shortMessage.subarray(0, 6)]).toEqual([0x05, 0x00, 0x03, reference, 3, i + 1]);
    });
    expect(parts.map((p) => decodeGsm7(p.shortMessage.subarray(6))).join("")).toBe(body);
    expect((await status(messageId)).state).toBe(MessageState.MESSAGE_STATE_TRANSMITTED);

    // Receipts in any order; the last one settles the message (one in decimal id form, one TLVs only).
    expect(await smsc.sendReceipt(parts[2]!, "DELIVRD")).toBe(Status.ESME_ROK);
    expect(await smsc.sendReceipt(parts[0]!, "DELIVRD", { tlvs: false, decimalIdInText: true })).toBe(Status.ESME_ROK);
    expect((await status(messageId)).state).toBe(MessageState.MESSAGE_STATE_TRANSMITTED);
    expect(await smsc.sendReceipt(parts[1]!, "DELIVRD", { text: false })).toBe(Status.ESME_ROK);
    const delivered = await statusIn(messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(delivered.segments).toBe(3);
    expect(delivered.medium).toBe(Medium.MEDIUM_SMS);
    expect(delivered.events.map((e) => e.state)).toEqual([
      MessageState.MESSAGE_STATE_ACCEPTED,
      MessageState.MESSAGE_STATE_ROUTED,
      MessageState.MESSAGE_STATE_TRANSMITTED,
      MessageState.MESSAGE_STATE_DELIVERED,
    ]);
  });

  test("SMS content from the sender goes to the SMSC byte for byte (no conversion)", async () => {
    const segments = [Buffer.from([0x05, 0x00, 0x03, 0xa7, 0x02, 0x01, 0x04, 0x1f, 0xd8, 0x3d]), Buffer.from([0x05, 0x00, 0x03, 0xa7, 0x02, 0x02, 0xdc, 0x4b, 0x00, 0x21])];
    const body = Buffer.from(encodeSmsContent({ encoding: "ucs2", dataCoding: 8, udhi: true, text: "П👋!", segments: segments.map((s) => s.toString("base64")) }));
    const before = smsc.submits.length;
    const messageId = await send("sms:+4915550124", { contentType: SMS_CONTENT_TYPE, body, subject: "", attachments: [] });
    await smsc.until(() => smsc.submits.length === before + 2);
    expect(smsc.submits.slice(before).map((p) => [p.dataCoding, p.esmClass, p.shortMessage])).toEqual([
      [8, 0x40, segments[0]],
      [8, 0x40, segments[1]],
    ]);
    for (const p of smsc.submits.slice(before)) await smsc.sendReceipt(p, "DELIVRD");
    expect((await statusIn(messageId, MessageState.MESSAGE_STATE_DELIVERED)).segments).toBe(2);
  });

  test("a receipt UNDELIV for one part → FAILED, permanent, the reason names the part and the state", async () => {
    const before = smsc.submits.length;
    const messageId = await send("sms:+4915550125", text("x".repeat(200)));
    await smsc.until(() => smsc.submits.length === before + 2);
    const [first, second] = smsc.submits.slice(before);
    await smsc.sendReceipt(first!, "DELIVRD");
    await smsc.sendReceipt(second!, "UNDELIV", { err: "001" });
    const failed = await statusIn(messageId, MessageState.MESSAGE_STATE_FAILED);
    const last = failed.events[failed.events.length - 1]!;
    expect(last.failureKind).toBe(FailureKind.FAILURE_KIND_PERMANENT);
    expect(last.reason).toContain("part 2 of 2: UNDELIV");
    // A late receipt changes nothing.
    await smsc.sendReceipt(second!, "DELIVRD");
    expect((await status(messageId)).state).toBe(MessageState.MESSAGE_STATE_FAILED);
  });

  test("the SMSC refuses a submit with ESME_RINVDSTADR → FAILED, permanent", async () => {
    smsc.failNext(1, Status.ESME_RINVDSTADR);
    const refused = smsc.refusedSubmits;
    const messageId = await send("sms:+4915550126", text("to a number the SMSC does not know"));
    const failed = await statusIn(messageId, MessageState.MESSAGE_STATE_FAILED);
    const last = failed.events[failed.events.length - 1]!;
    expect(last.failureKind).toBe(FailureKind.FAILURE_KIND_PERMANENT);
    expect(last.reason).toContain("ESME_RINVDSTADR (0x0B)");
    expect(smsc.refusedSubmits).toBe(refused + 1);
  });

  test("a throttled part is submitted again later; parts the SMSC took are not sent twice", async () => {
    const before = smsc.submits.length;
    const messageId = await send("sms:+4915550127", text("y".repeat(400)));
    // Let the first part through, then throttle the second.
    await smsc.until(() => smsc.submits.length === before + 1);
    smsc.failNext(1, Status.ESME_RTHROTTLED);
    await smsc.until(() => smsc.submits.length === before + 3);
    await new Promise((r) => setTimeout(r, 300));
    const parts = smsc.submits.slice(before);
    expect(parts.map((p) => p.shortMessage[5])).toEqual([1, 2, 3]);
    for (const p of parts) await smsc.sendReceipt(p, "DELIVRD");
    expect((await statusIn(messageId, MessageState.MESSAGE_STATE_DELIVERED)).segments).toBe(3);
  });

  test("SMSC down: the gateway is unhealthy, the core retries, the broker falls back to im; each step in the sender's status", async () => {
    await smsc.stop();
    await until(() => (gw.sms.adapter.health().healthy ? undefined : true));
    expect(gw.sms.adapter.health()).toEqual({ healthy: false, detail: expect.stringContaining("SMSC not bound") });
    const messageId = await send("dora", text("are you there?"));
    const rerouted = await until(async () => {
      const s = await status(messageId);
      return s.medium === Medium.MEDIUM_IM && s.events.some((e) => e.attempt === 2) ? s : undefined;
    });
    const attempts = gw.log.lines().filter((l) => l.messageId === messageId && l.msg === "part not accepted by the SMSC");
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    const routed = rerouted.events.filter((e) => e.state === MessageState.MESSAGE_STATE_ROUTED);
    expect(routed.map((e) => [e.medium, e.attempt])).toEqual([
      [Medium.MEDIUM_SMS, 1],
      [Medium.MEDIUM_IM, 2],
    ]);
    expect(routed[1]!.reason).toContain("fallback after sms failed");
    expect(routed[1]!.reason).toContain("SMSC not bound");

    const dora = inbox("dora");
    await until(() => (dora.received.some((r) => r.message?.messageId === messageId) ? true : undefined));
    expect(Buffer.from(dora.received.find((r) => r.message?.messageId === messageId)!.message!.payload!.body).toString()).toBe("are you there?");
    const delivered = await statusIn(messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(delivered.events.map((e) => [e.state, e.attempt])).toEqual([
      [MessageState.MESSAGE_STATE_ACCEPTED, 0],
      [MessageState.MESSAGE_STATE_ROUTED, 1],
      [MessageState.MESSAGE_STATE_TRANSMITTED, 1],
      [MessageState.MESSAGE_STATE_FAILED, 1],
      [MessageState.MESSAGE_STATE_ROUTED, 2],
      [MessageState.MESSAGE_STATE_TRANSMITTED, 2],
      [MessageState.MESSAGE_STATE_DELIVERED, 2],
    ]);
    const failed = delivered.events.find((e) => e.state === MessageState.MESSAGE_STATE_FAILED)!;
    expect(failed.failureKind).toBe(FailureKind.FAILURE_KIND_TEMPORARY);
    expect(failed.reason).toContain("SMSC not bound");
    dora.close();

    await smsc.start();
    expect(await gw.sms.session.waitUntilBound(5_000)).toBe(true);
    expect(gw.sms.adapter.health().healthy).toBe(true);
  });

  test("a phone sends \"@bob hello\": bob's im inbox gets it as text from sms:+<number>", async () => {
    const bob = inbox("bob");
    // bob prefers im, then sms: online, he gets it in his inbox (offline, it would go to his phone).
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":true') || undefined);
    expect(await smsc.sendMo(PHONE, "+4915550009", "@bob hello from the phone", { encoding: "gsm7" })).toEqual([Status.ESME_ROK]);
    const got = await until(() => bob.received.find((r) => r.message?.senderAddress === `sms:${PHONE}`));
    expect(got.message).toMatchObject({ sender: "", senderAddress: `sms:${PHONE}`, sourceMedium: Medium.MEDIUM_SMS });
    expect(got.message!.payload!.contentType).toBe("text/plain; charset=utf-8");
    expect(Buffer.from(got.message!.payload!.body).toString()).toBe("hello from the phone");
    bob.close();
  });

  test("a concatenated UCS-2 message to bob's number arrives once, whole; an unknown number is refused permanently", async () => {
    const bob = inbox("bob");
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":true') || undefined);
    const long = "Привет, Боб! ".repeat(12) + "👋";
    expect(await smsc.sendMo(PHONE, "+4915550001", long, { encoding: "ucs2", parts: 3, reference: 0x77 })).toEqual([Status.ESME_ROK, Status.ESME_ROK, Status.ESME_ROK]);
    await until(() => (bob.received.some((r) => Buffer.from(r.message?.payload?.body ?? []).toString() === long) ? true : undefined));
    expect(await smsc.sendMo(PHONE, "+4915559999", "anyone?", { encoding: "gsm7" })).toEqual([Status.ESME_RX_P_APPN]);
    await new Promise((r) => setTimeout(r, 200));
    expect(bob.received.filter((r) => r.message?.senderAddress === `sms:${PHONE}` && Buffer.from(r.message.payload!.body).toString() === long)).toHaveLength(1);
    bob.close();
  });

  test("a phone's message that cannot be delivered gets a non-delivery SMS back", async () => {
    // erin is reachable by SMS only; the SMSC refuses her number.
    smsc.failNext(1, Status.ESME_RINVDSTADR);
    const before = smsc.submits.length;
    expect(await smsc.sendMo(PHONE, "+4915550009", "@erin are you coming?", { encoding: "gsm7" })).toEqual([Status.ESME_ROK]);
    await smsc.until(() => smsc.submits.length === before + 1);
    const ndr = smsc.submits[before]!;
    expect(ndr).toMatchObject({ destinationAddr: PHONE.slice(1), destTon: 1, dataCoding: 0, registeredDelivery: 0 });
    const words = decodeGsm7(ndr.shortMessage);
    expect(words).toMatch(/^Your SMS to erin could not be delivered: .*ESME_RINVDSTADR/);
    expect(ndr.shortMessage.length).toBeLessThanOrEqual(160);
  });

  test("a receipt that arrives after the gateway restarted (same store) still maps back", async () => {
    const before = smsc.submits.length;
    const messageId = await send("sms:+4915550128", text("see you after the restart"));
    await smsc.until(() => smsc.submits.length === before + 1);
    await statusIn(messageId, MessageState.MESSAGE_STATE_TRANSMITTED);
    await gw.stop();
    await smsc.until(() => smsc.boundSessions === 0);

    gw = await startSmsGateway(secrets, broker.endpoint, smsc, smsStore);
    expect(await gw.sms.session.waitUntilBound(5_000)).toBe(true);
    expect(await smsc.sendReceipt(smsc.submits[before]!, "DELIVRD")).toBe(Status.ESME_ROK);
    expect((await statusIn(messageId, MessageState.MESSAGE_STATE_DELIVERED)).segments).toBe(1);
  });

  test("the SMSC password never reaches the logs", () => {
    expect(gw.log.text()).not.toContain(SMSC_CREDENTIALS.password);
  });
});

describe("the broker routes around an sms gateway whose SMSC is down", () => {
  const secrets = generateMeshSecrets();
  const smsc = new TestSmsc(SMSC_CREDENTIALS);
  let broker: RunningBroker;
  let im: RunningImGateway;
  let processor: RunningProcessor;
  let gw: RunningSms;
  let aliceToken = "";

  beforeAll(async () => {
    await smsc.start();
    broker = await startBroker(secrets, testStore("memory"), { env: { HEARTBEAT_INTERVAL_MS: "200" } });
    im = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore("memory"));
    processor = await startProcessor(secrets, broker.endpoint, "proc-1", testStore("memory"));
    gw = await startSmsGateway(secrets, broker.endpoint, smsc, testStore("memory"));
    await gw.sms.session.waitUntilBound(5_000);
    aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    await createProfile(broker, {
      clientId: "dora",
      addresses: [
        { medium: Medium.MEDIUM_SMS, address: "+4915550104" },
        { medium: Medium.MEDIUM_IM, address: "dora" },
      ],
      preferredMedia: [Medium.MEDIUM_SMS, Medium.MEDIUM_IM],
    });
  });

  afterAll(async () => {
    await gw.stop();
    await processor.stop();
    await im.stop();
    await broker.stop();
    await smsc.stop();
  });

  const explain = () => callUnary(broker.admin.explainRoute.bind(broker.admin), { sender: "alice", recipient: "dora", contentType: "text/plain; charset=utf-8", contentSize: 14, sourceMedium: Medium.MEDIUM_IM }, 5_000, broker.adminMetadata);

  test("unbound: the heartbeat says unhealthy, routes skip sms; bound again: sms is back", async () => {
    await until(async () => ((await explain()).chosen?.medium === Medium.MEDIUM_SMS ? true : undefined));
    await smsc.stop();
    const around = await until(async () => {
      const plan = await explain();
      return plan.chosen?.medium === Medium.MEDIUM_IM ? plan : undefined;
    });
    expect(around.candidates.find((c) => c.medium === Medium.MEDIUM_SMS)).toMatchObject({ usable: false, reason: "no healthy sms gateway" });

    const alice = im.clientFor(aliceToken);
    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient: "dora", payload: text("straight to im"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    expect(sent.status?.medium).toBe(Medium.MEDIUM_IM);

    await smsc.start();
    await until(async () => ((await explain()).chosen?.medium === Medium.MEDIUM_SMS ? true : undefined));
  });
});
