import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import nodemailer from "nodemailer";
import { Medium, MessageState, Priority } from "../../gen/uims/common/v1/types";
import { generateMeshSecrets } from "../../common/crypto/secrets";
import { GrpcStatusError, RelayedRefusal } from "../../common/errors";
import { createLogger } from "../../common/logger";
import { createStore } from "../../common/store";
import { swaks } from "../../test/support/smtp";
import type { AcceptInput, SentMessage } from "../core/types";
import { composeBounce, OriginalMails, type BounceRequest } from "./bounce";
import { loadEmailGatewayConfig, type EmailGatewayConfig } from "./config";
import { ReturnPaths } from "./return-path";
import { SmtpInbound } from "./smtp-in";

/** The SMTP side alone, with a stand-in for the gateway core's accept. */

const logger = createLogger({ service: "test", nodeId: "test", level: "silent" });
const secrets = generateMeshSecrets();

function config(extra: Partial<EmailGatewayConfig> = {}): EmailGatewayConfig {
  return {
    ...loadEmailGatewayConfig({
      NODE_ID: "gw-email-1",
      BROKER_ADDR: "127.0.0.1:50051",
      UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
      UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
      SMTP_HOST: "127.0.0.1",
      SMTP_PORT: "0",
    }),
    ...extra,
  };
}

function sentMessage(input: AcceptInput): SentMessage {
  return { messageId: randomUUID(), sender: "", senderAddress: input.senderAddress, recipient: input.recipient, state: MessageState.MESSAGE_STATE_ROUTED, medium: Medium.MEDIUM_EMAIL, events: [], segments: 0, traceId: "", createdAtUnixMs: 0 };
}

async function start(extra: Partial<EmailGatewayConfig> = {}) {
  const accepted: AcceptInput[] = [];
  const bounces: Array<{ id: string; request: BounceRequest }> = [];
  const bounced: Array<{ messageId: string; reason: string }> = [];
  const cfg = config(extra);
  const returnPaths = new ReturnPaths(cfg.bounceAddress, cfg.k1);
  const smtp = new SmtpInbound({
    config: cfg,
    returnPaths,
    onBounce: async (messageId, reason) => {
      bounced.push({ messageId, reason });
      return true;
    },
    accept: async (input) => {
      if (input.recipient === "nobody") throw new RelayedRefusal(grpc.status.NOT_FOUND, 'recipient "nobody" is unknown');
      if (input.recipient === "down") throw new GrpcStatusError(grpc.status.UNAVAILABLE, "connect ECONNREFUSED");
      accepted.push(input);
      return { message: sentMessage(input), duplicate: false };
    },
    originals: new OriginalMails(createStore(), 60_000),
    bounces: {
      enqueue: async (id, request) => {
        bounces.push({ id, request });
        return true;
      },
    },
    logger,
  });
  const port = await smtp.listen();
  return { smtp, port, accepted, bounces, bounced, returnPaths };
}

const message = (headers: string[] = []) => Buffer.from([...headers, "From: x@example.org", "Subject: hello", "Message-ID: <m1@example.org>", "X-Priority: 1", "", "body", ""].join("\r\n"));

describe("SMTP in, with a stand-in core", () => {
  let env: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    env = await start();
  });
  afterAll(() => env.smtp.close());
  beforeEach(() => {
    env.accepted.length = 0;
    env.bounces.length = 0;
    env.bounced.length = 0;
  });

  describe("reports about mail the gateway sent", () => {
    const report = (status: string, diagnostic: string) =>
      composeBounce(
        { to: "postmaster@uims.local", subject: "hello", recipients: [{ address: "dave@example.org", status, diagnostic }], originalHeaders: "", originalMessageId: "", arrivedAtUnixMs: Date.now() },
        { from: "MAILER-DAEMON@mx.example.org", reportingMta: "mx.example.org", id: randomUUID(), now: new Date() },
      );

    test("swaks: a bounce to a message's return path fails that message, with the remote diagnostic; 250, nothing submitted", async () => {
      const messageId = randomUUID();
      const raw = await report("5.1.1", "550 5.1.1 <dave@example.org>: user unknown");
      const result = await swaks(env.port, ["--from", "<>", "--to", env.returnPaths.for(messageId), "--data", "-"], raw);
      expect(result.exitCode).toBe(0);
      expect(result.decisive).toBe("250 2.0.0 OK: report received");
      expect(env.bounced).toEqual([{ messageId, reason: "bounced by the recipient's mail system: 550 5.1.1 <dave@example.org>: user unknown" }]);
      expect(env.accepted).toEqual([]);
      expect(env.bounces).toEqual([]);
    });

    test("a delay, or a mail that is no report, changes nothing and is not answered with a report", async () => {
      const messageId = randomUUID();
      const delayed = Buffer.from(
        [
          'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
          "",
          "--b",
          "Content-Type: message/delivery-status",
          "",
          "Reporting-MTA: dns; mx.example.org",
          "",
          "Final-Recipient: rfc822; dave@example.org",
          "Action: delayed",
          "Status: 4.4.1",
          "",
          "--b--",
          "",
        ].join("\r\n"),
      );
      await client().sendMail({ envelope: { from: "", to: env.returnPaths.for(messageId) }, raw: delayed });
      await client().sendMail({ envelope: { from: "", to: env.returnPaths.for(messageId) }, raw: message() });
      expect(env.bounced).toEqual([]);
      expect(env.accepted).toEqual([]);
      expect(env.bounces).toEqual([]);
    });

    test("a return path with a forged tag is an unknown recipient: 550 at RCPT", async () => {
      const genuine = env.returnPaths.for(randomUUID());
      // The last digit of the tag changed.
      const forged = genuine.replace(/([0-9a-f])@/, (_, d: string) => `${d === "0" ? "1" : "0"}@`);
      expect(forged).not.toBe(genuine);
      const result = await swaks(env.port, ["--from", "<>", "--to", forged, "--quit-after", "RCPT"]);
      expect(result.decisive).toMatch(/^550 5\.1\.1 /);
      expect(env.bounced).toEqual([]);
    });
  });

  const client = () => nodemailer.createTransport({ host: "127.0.0.1", port: env.port, ignoreTLS: true });

  test("the core gets the raw mail as message/rfc822 from an outside sender, with a trace field on top", async () => {
    const c = client();
    const info = await c.sendMail({ envelope: { from: "x@example.org", to: ["Carol@uims.local", "carol@UIMS.local", "+491701234567@sms.uims.local"] }, raw: message() });
    c.close();
    expect(info.response).toMatch(/^250 2\.0\.0 OK: queued as \S+ \(\+1 more\)$/);
    // "Carol@" and "carol@" are one profile: one submission.
    expect(env.accepted.map((a) => a.recipient)).toEqual(["carol", "sms:+491701234567"]);
    const input = env.accepted[0]!;
    expect(input).toMatchObject({ sender: "", senderAddress: "mailto:x@example.org", priority: Priority.PRIORITY_HIGH, ttlMs: 0 });
    expect(input.payload).toMatchObject({ contentType: "message/rfc822", subject: "hello", attachments: [] });
    const body = input.payload.body.toString();
    expect(body).toMatch(/^Received: from \S+ \(\S+ \[127\.0\.0\.1\]\)\r\n\tby uims\.local with ESMTP id \S+;\r\n\t\w{3}, \d\d \w{3} \d{4} /);
    expect(body.endsWith(message().toString())).toBe(true);
    // Keyed by Message-ID and recipient: a resend is recognised, different recipients are not confused.
    expect(input.idempotencyKey).toMatch(/^[0-9a-f]{40}$/);
    expect(env.accepted[1]!.idempotencyKey).not.toBe(input.idempotencyKey);
  });

  test("the null sender is an outside sender without an address, and gets no report", async () => {
    const c = client();
    const info = await c.sendMail({ envelope: { from: "", to: ["carol@uims.local", "nobody@uims.local"] }, raw: message() });
    c.close();
    expect(info.response).toMatch(/^250 .*for 1 of 2 recipients/);
    expect(env.accepted[0]!.senderAddress).toBe("");
    expect(env.bounces).toEqual([]);
  });

  test("some accepted, some refused (for good or for now): 250, and one report lists the others", async () => {
    const c = client();
    const info = await c.sendMail({ envelope: { from: "x@example.org", to: ["carol@uims.local", "nobody@uims.local", "down@uims.local"] }, raw: message() });
    c.close();
    expect(info.response).toMatch(/^250 2\.0\.0 OK: queued as \S+ for 1 of 3 recipients; a report on the others follows$/);
    expect(env.bounces).toHaveLength(1);
    expect(env.bounces[0]!.request).toMatchObject({
      to: "x@example.org",
      subject: "hello",
      originalMessageId: "<m1@example.org>",
      recipients: [
        { address: "nobody@uims.local", status: "5.1.1", diagnostic: expect.stringMatching(/^550 5\.1\.1 <nobody@uims\.local>: user unknown/) },
        { address: "down@uims.local", status: "4.3.0", diagnostic: expect.stringMatching(/^451 4\.3\.0 /) },
      ],
    });
  });

  test("none accepted: the first refusal in recipient order", async () => {
    const c = client();
    await expect(c.sendMail({ envelope: { from: "x@example.org", to: ["down@uims.local", "nobody@uims.local"] }, raw: message() })).rejects.toMatchObject({ responseCode: 451 });
    c.close();
    expect(env.bounces).toEqual([]);
  });

  test("a mail that went through too many relays is a loop: 554 5.4.6", async () => {
    const hops = Array.from({ length: 31 }, (_, i) => `Received: from hop${i} by hop${i + 1}; Mon, 1 Jan 2024 00:00:00 +0000`);
    const c = client();
    await expect(c.sendMail({ envelope: { from: "x@example.org", to: ["carol@uims.local"] }, raw: message(hops) })).rejects.toMatchObject({ responseCode: 554, response: expect.stringContaining("5.4.6") });
    c.close();
    expect(env.accepted).toEqual([]);
  });

  test("without a certificate no STARTTLS is offered, and AUTH never is", async () => {
    const c = nodemailer.createTransport({ host: "127.0.0.1", port: env.port, requireTLS: true });
    await expect(c.verify()).rejects.toThrow(/STARTTLS/);
    c.close();
    const ehlo = await swaks(env.port, ["--quit-after", "EHLO"]);
    expect(ehlo.exitCode).toBe(0);
    expect(ehlo.transcript).toMatch(/250[- ]SIZE /);
    expect(ehlo.transcript).not.toMatch(/250[- ](STARTTLS|AUTH)/);
  });
});

const haveOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

(haveOpenssl ? describe : describe.skip)("SMTP in with STARTTLS configured", () => {
  const dir = mkdtempSync(join(tmpdir(), "uims-smtp-tls-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a client upgrades with STARTTLS and the mail is taken as before", async () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: dir, stdio: "pipe" });
    const tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
    const env = await start({ smtpTls: tls });
    const c = nodemailer.createTransport({ host: "127.0.0.1", port: env.port, requireTLS: true, tls: { ca: tls.cert } });
    const info = await c.sendMail({ envelope: { from: "x@example.org", to: ["carol@uims.local"] }, raw: message() });
    c.close();
    await env.smtp.close();
    expect(info.response).toMatch(/^250 /);
    expect(env.accepted[0]!.payload.body.toString()).toMatch(/ with ESMTPS id /);
  });
});
