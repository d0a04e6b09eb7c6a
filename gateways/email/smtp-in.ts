import { createHash, randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";
import { Medium } from "../../gen/uims/common/v1/types";
import { addressProblem, CLIENT_ID_PATTERN } from "../../common/addresses";
import type { Logger } from "../../common/logger";
import type { AcceptInput, SentMessage } from "../core/types";
import type { BounceQueue, OriginalMails } from "./bounce";
import type { EmailGatewayConfig } from "./config";
import { readDeliveryStatus } from "./dsn";
import type { ReturnPaths } from "./return-path";
import { inspectMessage, type InspectedMail } from "./message";
import { formatReply, refusalReply, REPLIES, smtpError, type SmtpReply } from "./replies";

/**
 * Mail in: an SMTP server for our own domains only. `<profile>@MAIL_DOMAIN` reaches a profile,
 * `+E164@sms.MAIL_DOMAIN` a phone number by SMS; every other domain is refused at RCPT (no open
 * relay). At the end of DATA the message is checked, then handed to the gateway core once per
 * recipient; the core stores it and gets the broker's release before it answers. 250 is
 * answered only when the core holds the message for every recipient; when none was accepted
 * the first refusal is the answer; when some were, 250 (those are in flight already) and a
 * non-delivery report for the others goes to the sender.
 */

export type RecipientMapping = { ok: true; recipient: string } | { ok: false; reply: SmtpReply };

/** Maps an envelope recipient to a mesh recipient (profile id or `sms:` address). */
export function mapRecipient(address: string, mailDomain: string, smsDomain: string): RecipientMapping {
  const at = address.lastIndexOf("@");
  if (at <= 0) return { ok: false, reply: { code: 501, status: "5.1.3", text: `<${address}>: bad recipient address syntax` } };
  const local = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase().replace(/\.$/, "");
  if (domain === mailDomain) {
    const clientId = local.toLowerCase();
    if (!CLIENT_ID_PATTERN.test(clientId)) return { ok: false, reply: REPLIES.userUnknown(address, "not a client id") };
    return { ok: true, recipient: clientId };
  }
  if (domain === smsDomain) {
    if (addressProblem(Medium.MEDIUM_SMS, local)) return { ok: false, reply: REPLIES.userUnknown(address, `not a phone number in E.164 form, e.g. +491701234567@${smsDomain}`) };
    return { ok: true, recipient: `sms:${local}` };
  }
  return { ok: false, reply: REPLIES.relayDenied(address) };
}

/** Mail that went through more relays than this is taken for a loop (RFC 5321 §6.3). */
const MAX_HOPS = 30;

export interface SmtpInboundOptions {
  config: EmailGatewayConfig;
  /** The gateway core's `Originator.accept`. */
  accept: (input: AcceptInput) => Promise<{ message: SentMessage; duplicate: boolean }>;
  originals: OriginalMails;
  bounces: Pick<BounceQueue, "enqueue">;
  /** Recognises the return paths of mail this gateway sent. */
  returnPaths: Pick<ReturnPaths, "messageIdOf">;
  /** A bounce names a message sent earlier: it failed for good (the core's `markBounced`). */
  onBounce: (messageId: string, reason: string) => Promise<boolean>;
  logger: Logger;
  clock?: () => number;
}

interface Outcome {
  address: string;
  recipient: string;
  messageId?: string;
  refusal?: SmtpReply;
}

/** A trace field for the top of the message (RFC 5321 §4.4); values from the client are reduced to safe characters. */
function receivedField(session: SMTPServerSession, name: string, recipients: string[], now: Date): string {
  const safe = (s: unknown) => String(s ?? "").replace(/[^A-Za-z0-9.:\-[\]]/g, "").slice(0, 255) || "unknown";
  const forClause = recipients.length === 1 ? `\r\n\tfor <${recipients[0]!.replace(/[^\x21-\x7e]/g, "")}>` : "";
  return `Received: from ${safe(session.hostNameAppearsAs)} (${safe(session.clientHostname)} [${safe(session.remoteAddress)}])\r\n\tby ${name} with ${safe(session.transmissionType)} id ${safe(session.id)}${forClause};\r\n\t${now.toUTCString()}\r\n`;
}

export class SmtpInbound {
  readonly server: SMTPServer;
  private readonly clock: () => number;

  constructor(private readonly o: SmtpInboundOptions) {
    this.clock = o.clock ?? Date.now;
    const { config } = o;
    const disabled = ["AUTH"];
    if (!config.smtpTls) disabled.push("STARTTLS");
    this.server = new SMTPServer({
      name: config.mailDomain,
      banner: "uims mail gateway",
      size: config.smtpMaxBytes,
      maxRecipients: config.smtpMaxRecipients,
      // Nobody logs in: the server only takes mail for its own domains, so it relays nothing.
      authOptional: true,
      disabledCommands: disabled,
      disableReverseLookup: true,
      closeTimeout: config.shutdownGraceMs,
      logger: false,
      ...(config.smtpTls ? { key: config.smtpTls.key, cert: config.smtpTls.cert } : {}),
      onRcptTo: (address, _session, callback) => {
        // A report about mail we sent, addressed to that mail's return path.
        if (this.o.returnPaths.messageIdOf(address.address)) return callback();
        const mapped = mapRecipient(address.address, config.mailDomain, config.smsDomain);
        if (mapped.ok) return callback();
        this.o.logger.info({ rcpt: address.address, reply: formatReply(mapped.reply) }, "recipient refused");
        return callback(smtpError(mapped.reply));
      },
      onData: (stream, session, callback) => this.onData(stream, session, callback),
    });
    this.server.on("error", (err) => this.o.logger.warn({ err }, "smtp server error"));
  }

  /** Listens; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.server.once("error", onError);
      this.server.listen(this.o.config.smtpPort, this.o.config.smtpHost, () => {
        this.server.server.removeListener("error", onError);
        resolve((this.server.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops listening; open sessions may finish within the close timeout. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    const limit = this.o.config.smtpMaxBytes;
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    let answered = false;
    const answer = (err: Error | null, message?: string) => {
      if (answered) return;
      answered = true;
      callback(err, message);
    };
    stream.on("data", (chunk: Buffer) => {
      // Past the limit the rest is read and dropped: the answer is 552 anyway.
      if (truncated || kept + chunk.length > limit) {
        truncated = true;
        return;
      }
      chunks.push(chunk);
      kept += chunk.length;
    });
    stream.once("error", (err) => {
      this.o.logger.warn({ err, session: session.id }, "message stream failed");
      answer(smtpError(REPLIES.localError()));
    });
    stream.once("end", () => {
      if (truncated || stream.sizeExceeded) {
        this.o.logger.info({ session: session.id, bytes: stream.byteLength }, "message too big; refused");
        return answer(smtpError(REPLIES.tooBig(limit)));
      }
      this.take(Buffer.concat(chunks, kept), session).then(
        (reply) => (reply.code < 300 ? answer(null, `${reply.status} ${reply.text}`) : answer(smtpError(reply))),
        (err: unknown) => {
          this.o.logger.error({ err, session: session.id }, "message could not be taken");
          answer(smtpError(REPLIES.localError()));
        },
      );
    });
  }

  /** End of DATA: check the message, hand it to the core for each recipient, decide the reply. */
  private async take(raw: Buffer, session: SMTPServerSession): Promise<SmtpReply> {
    const inspection = await inspectMessage(raw);
    if (!inspection.ok) {
      this.o.logger.info({ session: session.id, reason: inspection.reason }, "malformed message refused");
      return REPLIES.malformed(inspection.reason);
    }
    const mail = inspection.mail;
    if (mail.hops > MAX_HOPS) return REPLIES.loop(mail.hops);

    const { config } = this.o;
    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
    // One submission per mesh recipient: "Bob@" and "bob@" are the same profile.
    const targets = new Map<string, string>();
    const bounced = new Set<string>();
    for (const rcpt of session.envelope.rcptTo) {
      const messageId = this.o.returnPaths.messageIdOf(rcpt.address);
      if (messageId) {
        bounced.add(messageId);
        continue;
      }
      const mapped = mapRecipient(rcpt.address, config.mailDomain, config.smsDomain);
      if (mapped.ok && !targets.has(mapped.recipient)) targets.set(mapped.recipient, rcpt.address);
    }
    if (bounced.size > 0) await this.takeReport(raw, [...bounced], session);
    if (targets.size === 0) return { code: 250, status: "2.0.0", text: "OK: report received" };
    const now = this.clock();
    const body = Buffer.concat([Buffer.from(receivedField(session, config.mailDomain, [...targets.values()], new Date(now))), raw]);

    const outcomes = await Promise.all([...targets].map(([recipient, address]) => this.acceptOne(recipient, address, from, body, mail)));
    const accepted = outcomes.filter((o) => o.messageId);
    const refused = outcomes.filter((o) => o.refusal);
    const log = { session: session.id, from, accepted: accepted.map((o) => ({ rcpt: o.address, messageId: o.messageId })) };

    if (refused.length === 0) {
      this.o.logger.info(log, "mail accepted");
      const first = accepted[0]?.messageId ?? "";
      return { code: 250, status: "2.0.0", text: `OK: queued as ${first}${accepted.length > 1 ? ` (+${accepted.length - 1} more)` : ""}` };
    }
    this.o.logger.info({ ...log, refused: refused.map((o) => ({ rcpt: o.address, reply: formatReply(o.refusal!) })) }, accepted.length ? "mail accepted for some recipients" : "mail refused");
    if (accepted.length === 0) return refused[0]!.refusal!;

    // Some recipients have the message already: a 4yz or 5yz now would make the sender send it
    // again to all of them. The others get a report instead.
    if (from) {
      try {
        await this.o.bounces.enqueue(`partial-${randomUUID()}`, {
          to: from,
          subject: mail.subject,
          recipients: refused.map((o) => ({ address: o.address, status: o.refusal!.status, diagnostic: formatReply(o.refusal!) })),
          originalHeaders: mail.headerSection,
          originalMessageId: mail.messageId,
          arrivedAtUnixMs: now,
        });
      } catch (err) {
        this.o.logger.error({ err, session: session.id }, "could not queue the non-delivery report for the refused recipients");
      }
    }
    return { code: 250, status: "2.0.0", text: `OK: queued as ${accepted[0]!.messageId} for ${accepted.length} of ${outcomes.length} recipients; a report on the others follows` };
  }

  /**
   * A report to the return path of mail we sent. A recipient that failed fails the message for
   * good (our mail has one recipient); delays and anything that is not a delivery status
   * notification are noted and dropped: a report is never answered with another.
   */
  private async takeReport(raw: Buffer, messageIds: string[], session: SMTPServerSession): Promise<void> {
    const statuses = await readDeliveryStatus(raw);
    const failure = statuses?.find((s) => s.action === "failed");
    if (!failure) {
      this.o.logger.info({ session: session.id, messageIds, actions: statuses?.map((s) => s.action) ?? "not a delivery status notification" }, "report without a failure; nothing changes");
      return;
    }
    const detail = failure.diagnostic || "no diagnostic";
    const reason = `bounced by the recipient's mail system: ${detail}${failure.status && !detail.includes(failure.status) ? ` (${failure.status})` : ""}`;
    for (const messageId of messageIds) {
      const changed = await this.o.onBounce(messageId, reason);
      this.o.logger.info({ session: session.id, messageId, status: failure.status, changed }, changed ? "bounce: message failed" : "bounce for a message already final or unknown");
    }
  }

  private async acceptOne(recipient: string, address: string, from: string, body: Buffer, mail: InspectedMail): Promise<Outcome> {
    // A sender that did not see our 250 (a dropped connection) sends the same mail again: keyed
    // by its Message-ID, the second copy is recognised instead of delivered twice.
    const idempotencyKey = mail.messageId ? createHash("sha256").update(`${mail.messageId}\n${recipient}`).digest("hex").slice(0, 40) : "";
    try {
      const { message } = await this.o.accept({
        sender: "",
        senderAddress: from ? `mailto:${from}` : "",
        recipient,
        payload: { contentType: "message/rfc822", body, subject: mail.subject, attachments: [] },
        idempotencyKey,
        priority: mail.priority,
        ttlMs: 0,
      });
      try {
        await this.o.originals.remember(message.messageId, { address, subject: mail.subject, messageId: mail.messageId, headers: mail.headerSection, arrivedAtUnixMs: this.clock() });
      } catch (err) {
        // The message is accepted; only a later report would lack the original's headers.
        this.o.logger.warn({ err, messageId: message.messageId }, "could not keep the original's headers for a report");
      }
      return { address, recipient, messageId: message.messageId };
    } catch (err) {
      return { address, recipient, refusal: refusalReply(err, address) };
    }
  }
}
