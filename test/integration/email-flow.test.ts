import { randomBytes } from "node:crypto";
import nodemailer from "nodemailer";
import MailComposer from "nodemailer/lib/mail-composer";
import type { StatusEvent } from "../../gen/uims/common/v1/types";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { createLogger } from "../../common/logger";
import { callUnary } from "../../common/mesh/peer";
import type { Store } from "../../common/store";
import { composeBounce } from "../../gateways/email/bounce";
import { loadEmailGatewayConfig } from "../../gateways/email/config";
import { createEmailGateway, type EmailGateway } from "../../gateways/email/server";
import { startProcessor, type RunningProcessor } from "../../processor/testing";
import {
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
import { SmtpSink, swaks, type ReceivedMail } from "../support/smtp";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";

/**
 * The email gateway in a mesh on loopback: a broker, an im gateway and the email gateway in
 * this process, a relay played by an SMTP sink, and swaks and nodemailer as outside clients.
 * The first mesh has no processor, so that every route it takes passes content unconverted (and
 * routes that need a conversion are refused); the second adds one for mail to and from im.
 */

type MeshSecrets = ReturnType<typeof generateMeshSecrets>;

const MAX_BYTES = 256 * 1024;


interface RunningEmailGateway {
  email: EmailGateway;
  smtpPort: number;
  store: Store;
  stop(): Promise<void>;
}

async function startEmailGateway(secrets: MeshSecrets, brokerEndpoint: string, relayUrl: string, store: Store): Promise<RunningEmailGateway> {
  const config = loadEmailGatewayConfig({
    NODE_ID: "gw-email-1",
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    SMTP_HOST: "127.0.0.1",
    SMTP_PORT: "0",
    SMTP_RELAY_URL: relayUrl,
    SMTP_RELAY_TIMEOUT_MS: "5s",
    SMTP_MAX_BYTES: String(MAX_BYTES),
    BROKER_ADDR: brokerEndpoint,
    UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
    UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
  });
  const logger = createLogger({ service: "gw-email", nodeId: config.nodeId, level: process.env.UIMS_TEST_LOG_LEVEL === "debug" ? "debug" : "silent" });
  const email = createEmailGateway(config, store, logger);
  const { smtpPort } = await email.start();
  return {
    email,
    smtpPort,
    store,
    async stop() {
      email.gateway.mesh.server.forceShutdown();
      await email.close();
    },
  };
}

/** An RFC 5322 message built by nodemailer's composer. */
async function composed(fields: { from: string; to: string; subject: string; text: string }): Promise<Buffer> {
  return new MailComposer(fields).compile().build();
}

function smtpClient(port: number) {
  return nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true, connectionTimeout: 10_000 });
}

interface Mesh {
  secrets: MeshSecrets;
  sink: SmtpSink;
  broker: RunningBroker;
  im: RunningImGateway;
  gw: RunningEmailGateway;
  processor?: RunningProcessor;
  aliceToken: string;
  bobToken: string;
  stop(): Promise<void>;
}

async function startMesh(kind: StoreKind, opts: { processor?: boolean } = {}): Promise<Mesh> {
  const secrets = generateMeshSecrets();
  const sink = new SmtpSink();
  await sink.start();
  const broker = await startBroker(secrets, testStore(kind));
  const processor = opts.processor ? await startProcessor(secrets, broker.endpoint, "processor-1", testStore(kind)) : undefined;
  const im = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore(kind));
  const gw = await startEmailGateway(secrets, broker.endpoint, sink.url, testStore(kind));
  const aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
  const bobToken = (await createProfile(broker, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
  // carol reads her messages by mail elsewhere: mail to carol@uims.local goes out again unconverted.
  await createProfile(broker, { clientId: "carol", addresses: [{ medium: Medium.MEDIUM_EMAIL, address: "carol@example.net" }], preferredMedia: [Medium.MEDIUM_EMAIL] });
  let brokerStopped = false;
  return {
    secrets,
    sink,
    broker: {
      ...broker,
      async stop() {
        if (brokerStopped) return;
        brokerStopped = true;
        await broker.stop();
      },
    },
    im,
    gw,
    ...(processor ? { processor } : {}),
    aliceToken,
    bobToken,
    async stop() {
      await gw.stop();
      await im.stop();
      await processor?.stop();
      if (!brokerStopped) await broker.stop();
      await sink.stop();
      await Promise.all([gw.store.close(), im.store.close(), broker.store.close(), processor?.store.close()]);
    },
  };
}

async function aliceSends(mesh: Mesh, recipient: string, payload: { contentType: string; body: Buffer; subject?: string }) {
  const alice = mesh.im.clientFor(mesh.aliceToken);
  return callUnary(
    alice.client.send.bind(alice.client),
    { recipient, payload: { attachments: [], subject: "", ...payload }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
    5_000,
    alice.metadata,
  );
}

async function aliceStatus(mesh: Mesh, messageId: string, state: MessageState, timeoutMs = 10_000) {
  const alice = mesh.im.clientFor(mesh.aliceToken);
  return until(async () => {
    const s = await callUnary(alice.client.getStatus.bind(alice.client), { messageId }, 5_000, alice.metadata);
    return s.status?.state === state ? s.status : undefined;
  }, timeoutMs);
}

const forSink = (to: string) => (m: ReceivedMail) => m.envelope.to.includes(to);

describe.each(STORE_KINDS)("email gateway in a mesh without a processor (%s stores)", (kind) => {
  let mesh: Mesh;
  let gw: RunningEmailGateway;
  let sink: SmtpSink;

  const outKeys = () => gw.store.scanKeys("out:*");
  const rfc822 = (body: Buffer) => ({ contentType: "message/rfc822", body });

  beforeAll(async () => {
    mesh = await startMesh(kind);
    gw = mesh.gw;
    sink = mesh.sink;
  });

  afterAll(async () => {
    await mesh.stop();
  });

  test("swaks to carol@uims.local: 250 once stored, then relayed to carol's own address", async () => {
    const result = await swaks(gw.smtpPort, ["--to", "Carol@uims.local", "--from", "x@example.org", "--header", "Subject: hi carol", "--body", "hello from outside"]);
    expect(result.exitCode).toBe(0);
    expect(result.decisive).toMatch(/^250 2\.0\.0 OK: queued as [0-9a-f-]{36}$/);
    const messageId = /queued as (\S+)/.exec(result.decisive)![1]!;

    const mail = await sink.waitForMail(forSink("carol@example.net"));
    // The return path names the message, for a bounce that may come later.
    expect(mail.envelope.from).toMatch(/^postmaster\+[0-9a-f]{44}@uims\.local$/);
    expect(mail.envelope.from.slice("postmaster+".length, "postmaster+".length + 32)).toBe(messageId.replace(/-/g, ""));
    expect(mail.parsed.subject).toBe("hi carol");
    expect(mail.parsed.text).toContain("hello from outside");
    expect(mail.parsed.from?.value[0]?.address).toBe("x@example.org");
    // This gateway added its trace field on top, as an MTA does.
    expect(mail.raw.toString().split("\r\n")[0]).toMatch(/^Received: from /);

    // The sender of a mail has no status API; the gateway's own record shows the delivery.
    await until(async () => ((await gw.email.gateway.origin.get(messageId))?.state === MessageState.MESSAGE_STATE_DELIVERED ? true : undefined));
  });

  test("the same mail sent twice (same Message-ID) is accepted twice but kept once", async () => {
    const raw = await composed({ from: "x@example.org", to: "carol@uims.local", subject: "once", text: "only once" });
    const client = smtpClient(gw.smtpPort);
    const first = await client.sendMail({ envelope: { from: "x@example.org", to: ["carol@uims.local"] }, raw });
    const second = await client.sendMail({ envelope: { from: "x@example.org", to: ["carol@uims.local"] }, raw });
    client.close();
    const id = (r: string) => /queued as (\S+)/.exec(r)?.[1];
    expect(id(first.response)).toBeDefined();
    expect(id(second.response)).toBe(id(first.response));
    await sink.waitForMail((m) => m.parsed.subject === "once");
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.mails.filter((m) => m.parsed.subject === "once")).toHaveLength(1);
  });

  test("alice (im) sends a mail to mailto:dave@example.org: relayed as it is, alice's status DELIVERED", async () => {
    const raw = await composed({ from: "alice@uims.local", to: "dave@example.org", subject: "from alice", text: "hi dave" });
    const sent = await aliceSends(mesh, "mailto:dave@example.org", rfc822(raw));
    const mail = await sink.waitForMail(forSink("dave@example.org"));
    expect(mail.parsed.subject).toBe("from alice");
    expect(mail.parsed.text?.trim()).toBe("hi dave");
    expect(mail.raw.equals(raw)).toBe(true);
    const status = await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(status.events.map((e: StatusEvent) => e.state)).toEqual(expect.arrayContaining([MessageState.MESSAGE_STATE_TRANSMITTED, MessageState.MESSAGE_STATE_DELIVERED]));
  });

  test("the relay answers 4xx twice: the gateway retries and delivers when the relay recovers", async () => {
    sink.refuseNext(2, 451, "4.3.0 try again later");
    const before = sink.replies.length;
    const raw = await composed({ from: "alice@uims.local", to: "erin@example.org", subject: "retried", text: "third time lucky" });
    const sent = await aliceSends(mesh, "mailto:erin@example.org", rfc822(raw));
    await sink.waitForMail(forSink("erin@example.org"));
    expect(sink.replies.slice(before)).toEqual(["451 4.3.0 try again later", "451 4.3.0 try again later", "250 OK"]);
    await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_DELIVERED);
    expect(gw.email.relay.health().healthy).toBe(true);
  });

  test("the relay answers 5xx: permanent failure, alice's status FAILED with the relay's reply as reason", async () => {
    sink.refuseNext(1, 550, "5.1.1 mailbox unavailable");
    const raw = await composed({ from: "alice@uims.local", to: "frank@example.org", subject: "refused", text: "no such mailbox" });
    const sent = await aliceSends(mesh, "mailto:frank@example.org", rfc822(raw));
    const status = await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_FAILED);
    const failed = status.events.find((e: StatusEvent) => e.state === MessageState.MESSAGE_STATE_FAILED);
    expect(failed?.reason).toBe("550 5.1.1 mailbox unavailable");
    expect(sink.mails.some((m) => m.envelope.to.includes("frank@example.org"))).toBe(false);
  });

  test("the relay takes alice's mail, the recipient's system bounces it later: alice's status turns FAILED with its diagnostic", async () => {
    const raw = await composed({ from: "alice@uims.local", to: "ivan@example.org", subject: "bounces later", text: "hi ivan" });
    const sent = await aliceSends(mesh, "mailto:ivan@example.org", rfc822(raw));
    const mail = await sink.waitForMail(forSink("ivan@example.org"));
    await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_DELIVERED);

    const report = await composeBounce(
      { to: mail.envelope.from, subject: "bounces later", recipients: [{ address: "ivan@example.org", status: "5.1.1", diagnostic: "550 5.1.1 <ivan@example.org>: no such user" }], originalHeaders: "", originalMessageId: "", arrivedAtUnixMs: Date.now() },
      { from: "MAILER-DAEMON@mx.example.org", reportingMta: "mx.example.org", id: "dsn-1", now: new Date() },
    );
    const result = await swaks(gw.smtpPort, ["--from", "<>", "--to", mail.envelope.from, "--data", "-"], report);
    expect(result.decisive).toBe("250 2.0.0 OK: report received");

    const status = await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_FAILED);
    const states = status.events.map((e: StatusEvent) => e.state);
    expect(states.indexOf(MessageState.MESSAGE_STATE_FAILED)).toBeGreaterThan(states.indexOf(MessageState.MESSAGE_STATE_DELIVERED));
    const failed = status.events.find((e: StatusEvent) => e.state === MessageState.MESSAGE_STATE_FAILED);
    expect(failed?.reason).toBe("bounced by the recipient's mail system: 550 5.1.1 <ivan@example.org>: no such user");
    // The same report again changes nothing.
    expect((await swaks(gw.smtpPort, ["--from", "<>", "--to", mail.envelope.from, "--data", "-"], report)).decisive).toBe("250 2.0.0 OK: report received");
    expect((await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_FAILED)).events.filter((e: StatusEvent) => e.state === MessageState.MESSAGE_STATE_FAILED)).toHaveLength(1);
  });

  test("a mail from outside that the relay refuses for good ends in a non-delivery report to its sender", async () => {
    sink.refuseNext(1, 550, "5.7.1 carol does not take mail from you");
    const result = await swaks(gw.smtpPort, ["--to", "carol@uims.local", "--from", "gina@example.org", "--header", "Subject: will bounce", "--body", "x"]);
    expect(result.decisive).toMatch(/^250 /);
    const report = await sink.waitForMail(forSink("gina@example.org"));
    expect(report.envelope.from).toBe("");
    expect(report.parsed.subject).toBe("Undeliverable: will bounce");
    expect(report.parsed.headers.get("content-type")).toMatchObject({ value: "multipart/report", params: { "report-type": "delivery-status" } });
    expect(report.parsed.headers.get("auto-submitted")).toBe("auto-replied");
    expect(report.parsed.text).toContain("<carol@uims.local>: 550 5.7.1 carol does not take mail from you");
    const raw = report.raw.toString();
    expect(raw).toContain("Content-Type: message/delivery-status");
    expect(raw).toContain("Final-Recipient: rfc822; carol@uims.local");
    expect(raw).toContain("Status: 5.7.1");
    expect(raw).toContain("Diagnostic-Code: smtp; 550 5.7.1 carol does not take mail from you");
    expect(raw).toContain("Content-Type: text/rfc822-headers");
  });

  test("several recipients, some refused: 250 for the others and a report on the refused ones", async () => {
    const result = await swaks(gw.smtpPort, ["--to", "carol@uims.local,nobody@uims.local", "--from", "hank@example.org", "--header", "Subject: partly", "--body", "x"]);
    expect(result.decisive).toMatch(/^250 2\.0\.0 OK: queued as \S+ for 1 of 2 recipients/);
    await sink.waitForMail((m) => m.envelope.to.includes("carol@example.net") && m.parsed.subject === "partly");
    const report = await sink.waitForMail(forSink("hank@example.org"));
    expect(report.parsed.subject).toBe("Undeliverable: partly");
    expect(report.parsed.text).toContain("<nobody@uims.local>: 550 5.1.1");
    expect(report.raw.toString()).toContain("Final-Recipient: rfc822; nobody@uims.local");
  });

  test("several recipients, all refused: the first refusal is the answer and nothing is stored", async () => {
    const before = (await outKeys()).length;
    const result = await swaks(gw.smtpPort, ["--to", "nobody@uims.local,noone@uims.local", "--from", "x@example.org", "--body", "x"]);
    expect(result.exitCode).toBe(26);
    expect(result.decisive).toMatch(/^550 5\.1\.1 <nobody@uims\.local>: user unknown/);
    expect(await outKeys()).toHaveLength(before);
  });

  describe("refusals during the SMTP dialogue", () => {
    test("swaks: an unknown recipient gets 550 5.1.1 and nothing is stored", async () => {
      const before = (await outKeys()).length;
      const result = await swaks(gw.smtpPort, ["--to", "nobody@uims.local", "--from", "x@example.org", "--body", "x"]);
      expect(result.exitCode).toBe(26);
      expect(result.decisive).toMatch(/^550 5\.1\.1 <nobody@uims\.local>: user unknown \(recipient "nobody" is unknown\)$/);
      expect(await outKeys()).toHaveLength(before);
    });

    test("swaks: a foreign domain is refused at RCPT with 550 5.7.1 (no open relay)", async () => {
      const result = await swaks(gw.smtpPort, ["--to", "someone@example.com", "--from", "x@example.org", "--body", "x"]);
      expect(result.exitCode).toBe(24);
      expect(result.decisive).toBe("550 5.7.1 <someone@example.com>: relaying denied");
    });

    test("swaks: a message above SMTP_MAX_BYTES gets 552", async () => {
      const before = (await outKeys()).length;
      const result = await swaks(gw.smtpPort, ["--to", "carol@uims.local", "--from", "x@example.org", "--body", "-"], "x".repeat(MAX_BYTES + 1024));
      expect(result.exitCode).toBe(26);
      expect(result.decisive).toBe(`552 5.3.4 message exceeds the fixed maximum message size of ${MAX_BYTES} bytes`);
      expect(await outKeys()).toHaveLength(before);
    });

    test("swaks: garbage bytes and a message without header/body separation get 554 5.6.0", async () => {
      const before = (await outKeys()).length;
      const garbage = Buffer.concat([randomBytes(2048).map((b) => (b === 0x0a || b === 0x0d || b === 0x2e ? 0x41 : b)), Buffer.from("\r\n")]);
      const junk = await swaks(gw.smtpPort, ["--to", "carol@uims.local", "--from", "x@example.org", "--data", "-"], garbage);
      expect(junk.exitCode).toBe(26);
      expect(junk.decisive).toMatch(/^554 5\.6\.0 malformed message: /);
      const noSeparation = await swaks(gw.smtpPort, ["--to", "carol@uims.local", "--from", "x@example.org", "--data", "-"], "Subject: hi\r\nthis line should have been the body\r\n");
      expect(noSeparation.decisive).toMatch(/^554 5\.6\.0 malformed message: header line 2 is not a "Name: value" field/);
      expect(await outKeys()).toHaveLength(before);
    });

    test("nodemailer as a client: the same refusals arrive as SMTP errors", async () => {
      const client = smtpClient(gw.smtpPort);
      const send = (to: string, raw: Buffer | string) => client.sendMail({ envelope: { from: "x@example.org", to: [to] }, raw });
      const ok = await composed({ from: "x@example.org", to: "nobody@uims.local", subject: "s", text: "t" });
      const before = (await outKeys()).length;

      await expect(send("nobody@uims.local", ok)).rejects.toMatchObject({ responseCode: 550, response: expect.stringMatching(/^550 5\.1\.1 <nobody@uims\.local>: user unknown/) });
      await expect(send("x@example.com", ok)).rejects.toMatchObject({ code: "EENVELOPE", responseCode: 550, response: expect.stringContaining("5.7.1") });
      await expect(send("carol@uims.local", Buffer.concat([ok, Buffer.alloc(MAX_BYTES, 0x61)]))).rejects.toMatchObject({ responseCode: 552 });
      const brokenBoundary = 'From: x@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="abc"\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n';
      await expect(send("carol@uims.local", brokenBoundary)).rejects.toMatchObject({ responseCode: 554, response: expect.stringContaining('the multipart boundary "abc" never occurs in the body') });
      client.close();
      expect(await outKeys()).toHaveLength(before);
    });

    test("swaks: mail for an im user without a processor in the mesh is deferred (451 4.4.4), nothing stored", async () => {
      const before = (await outKeys()).length;
      const result = await swaks(gw.smtpPort, ["--to", "bob@uims.local", "--from", "x@example.org", "--body", "x"]);
      expect(result.decisive).toMatch(/^451 4\.4\.4 <bob@uims\.local>: no route to the recipient now \(.*no processor is healthy.*\); try again later$/);
      expect(await outKeys()).toHaveLength(before);
    });

    // Last: it stops the broker.
    test("broker down: 451 4.3.0 and nothing stored", async () => {
      await mesh.broker.stop();
      const before = (await outKeys()).length;
      const result = await swaks(gw.smtpPort, ["--to", "carol@uims.local", "--from", "x@example.org", "--body", "x"]);
      expect(result.exitCode).toBe(26);
      expect(result.decisive).toBe("451 4.3.0 <carol@uims.local>: temporarily unable to accept the message; try again later");
      expect(await outKeys()).toHaveLength(before);
    });
  });

});

describe("email gateway in a mesh with a processor", () => {
  let mesh: Mesh;

  beforeAll(async () => {
    mesh = await startMesh("memory", { processor: true });
  });

  afterAll(async () => {
    await mesh.stop();
  });

  test("swaks to bob@uims.local: 250, and the mail arrives in bob's im inbox as text", async () => {
    const bob = mesh.im.clientFor(mesh.bobToken);
    const { received, cancel: cancelInbox } = followInbox(bob);

    const result = await swaks(mesh.gw.smtpPort, ["--to", "bob@uims.local", "--from", "x@example.org", "--header", "Subject: hi bob", "--body", "hello bob, by mail"]);
    expect(result.decisive).toMatch(/^250 2\.0\.0 OK: queued as \S+$/);
    const arrived = await until(() => received.find((r) => r.message)?.message);
    expect(arrived.payload?.contentType).toMatch(/^text\/plain/);
    expect(arrived.payload?.body.toString()).toContain("hello bob, by mail");
    expect(arrived.senderAddress).toBe("mailto:x@example.org");
    expect(arrived.sourceMedium).toBe(Medium.MEDIUM_EMAIL);
    cancelInbox();
  });

  test("alice's text to mailto:ida@example.org is converted to a well-formed mail and relayed; alice DELIVERED", async () => {
    const sent = await aliceSends(mesh, "mailto:ida@example.org", { contentType: "text/plain; charset=utf-8", body: Buffer.from("hi ida, grüße"), subject: "from alice" });
    const mail = await mesh.sink.waitForMail(forSink("ida@example.org"));
    expect(mail.envelope.from).toMatch(/^postmaster\+[0-9a-f]{44}@uims\.local$/);
    expect(mail.parsed.subject).toBe("from alice");
    expect(mail.parsed.text?.trim()).toBe("hi ida, grüße");
    expect(mail.parsed.from?.value[0]?.address).toBe("alice@uims.local");
    expect(mail.parsed.to).toMatchObject({ value: [{ address: "ida@example.org" }] });
    expect(mail.parsed.messageId).toBeTruthy();
    expect(mail.parsed.date).toBeInstanceOf(Date);
    await aliceStatus(mesh, sent.messageId, MessageState.MESSAGE_STATE_DELIVERED);
  });
});
