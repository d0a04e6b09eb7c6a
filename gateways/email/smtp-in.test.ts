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
import { OriginalMails, type BounceRequest } from "./bounce";
import { loadEmailGatewayConfig, type EmailGatewayConfig } from "./config";
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
  const smtp = new SmtpInbound({
    config: config(extra),
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
  return { smtp, port, accepted, bounces };
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
