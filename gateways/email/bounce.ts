import MimeNode from "nodemailer/lib/mime-node";
import type { Logger } from "../../common/logger";
import type { Store } from "../../common/store";
import { backoffMs } from "../core/backoff";
import { WorkQueue } from "../core/work-queue";
import type { SmtpRelay } from "./smtp-out";

/**
 * Non-delivery reports (RFC 3464, loosely): a multipart/report with a human-readable part, a
 * message/delivery-status part and the original header section, sent from the null sender so
 * that a report that cannot be delivered never produces another one. Reports wait in the store
 * until the relay takes them, so a relay outage delays them but loses none.
 */

export interface BouncedRecipient {
  /** The recipient as the sender wrote it, e.g. "bob@uims.local". */
  address: string;
  /** RFC 3463 status, e.g. "5.1.1". */
  status: string;
  /** Why: an SMTP reply ("550 5.1.1 ...") or the mesh's reason. */
  diagnostic: string;
}

export interface BounceRequest {
  /** The original envelope sender: where the report goes. */
  to: string;
  subject: string;
  recipients: BouncedRecipient[];
  /** Header section of the original message; "" when unknown. */
  originalHeaders: string;
  /** Message-ID of the original, angle brackets included; "" when unknown. */
  originalMessageId: string;
  arrivedAtUnixMs: number;
}

export interface ComposeOptions {
  /** From of the report and the Reporting-MTA's domain part. */
  from: string;
  reportingMta: string;
  /** Stable per report, so a report re-sent after a crash keeps its Message-ID. */
  id: string;
  now: Date;
}

/** A value for one line of a delivery-status field: US-ASCII, no line breaks. */
function fieldValue(text: string, max = 900): string {
  const flat = text.replace(/[\r\n]+/g, " ").replace(/[^\x20-\x7e]/g, "?").trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/** "smtp; 550 5.1.1 ..." for an SMTP reply, "x-uims; ..." for the mesh's own reasons. */
export function diagnosticCode(diagnostic: string): string {
  return /^[245]\d\d[ -]/.test(diagnostic.trim()) ? `smtp; ${fieldValue(diagnostic)}` : `x-uims; ${fieldValue(diagnostic)}`;
}

/** The enhanced status code inside a reason (e.g. from a relay's reply), or the fallback. */
export function statusFrom(reason: string, fallback: string): string {
  return /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(reason)?.[1] ?? fallback;
}

function humanText(req: BounceRequest, reportingMta: string): string {
  const lines = [
    `This is the mail system at ${reportingMta}.`,
    "",
    req.recipients.length === 1 ? "Your message could not be delivered to this recipient:" : "Your message could not be delivered to these recipients:",
    "",
    ...req.recipients.map((r) => `  <${r.address}>: ${r.diagnostic}`),
    "",
    `Subject of your message: ${req.subject || "(no subject)"}`,
    "",
    "No further attempts will be made. The delivery report and the headers of your message are attached.",
    "",
  ];
  return lines.join("\r\n");
}

function deliveryStatus(req: BounceRequest, reportingMta: string): string {
  const perMessage = [`Reporting-MTA: dns; ${fieldValue(reportingMta)}`, `Arrival-Date: ${new Date(req.arrivedAtUnixMs).toUTCString()}`];
  const perRecipient = req.recipients.map((r) =>
    [`Final-Recipient: rfc822; ${fieldValue(r.address)}`, "Action: failed", `Status: ${fieldValue(r.status)}`, `Diagnostic-Code: ${diagnosticCode(r.diagnostic)}`].join("\r\n"),
  );
  return [perMessage.join("\r\n"), ...perRecipient].join("\r\n\r\n") + "\r\n";
}

/** Builds the report with nodemailer's MIME tree. */
export function composeBounce(req: BounceRequest, opts: ComposeOptions): Promise<Buffer> {
  const root = new MimeNode("multipart/report; report-type=delivery-status", { hostname: opts.reportingMta, newline: "windows" });
  root.setHeader({
    From: { name: "Mail Delivery System", address: opts.from },
    To: req.to,
    Subject: `Undeliverable: ${req.subject || "(no subject)"}`.slice(0, 250),
    Date: opts.now,
    "Message-ID": `<${opts.id}@${opts.reportingMta}>`,
    // RFC 3834: an automatic reply; well-behaved software answers none of these.
    "Auto-Submitted": "auto-replied",
  });
  if (req.originalMessageId) root.setHeader({ "In-Reply-To": req.originalMessageId, References: req.originalMessageId });
  root.createChild("text/plain; charset=utf-8").setContent(humanText(req, opts.reportingMta));
  root.createChild("message/delivery-status").setContent(deliveryStatus(req, opts.reportingMta));
  if (req.originalHeaders) root.createChild("text/rfc822-headers").setContent(`${req.originalHeaders.replace(/\r?\n/g, "\r\n")}\r\n`);
  return root.build();
}

/** Facts about a mail taken in over SMTP that a later report about it needs (the core's records do not keep them). */
export interface OriginalMail {
  /** The recipient as the sender wrote it. */
  address: string;
  subject: string;
  messageId: string;
  headers: string;
  arrivedAtUnixMs: number;
}

export class OriginalMails {
  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  async remember(messageId: string, mail: OriginalMail): Promise<void> {
    await this.store.set(`mail-origin:${messageId}`, JSON.stringify(mail), this.ttlMs);
  }

  async get(messageId: string): Promise<OriginalMail | null> {
    const raw = await this.store.get(`mail-origin:${messageId}`);
    return raw === null ? null : (JSON.parse(raw) as OriginalMail);
  }
}

interface BounceRecord {
  /** Dropped once done. */
  request?: BounceRequest;
  createdAtUnixMs: number;
  tries: number;
  /** Set once the report left (or was given up): the record stays a while, so a repeated status change sends nothing twice. */
  done?: "sent" | "refused" | "given-up";
}

export interface BounceQueueOptions {
  store: Store;
  relay: Pick<SmtpRelay, "send">;
  logger: Logger;
  nodeId: string;
  /** Envelope-less From of the reports. */
  from: string;
  reportingMta: string;
  /** How long a report is retried while the relay does not take it. */
  giveUpMs: number;
  clock?: () => number;
}

const KEY = (id: string) => `bounce:${id}`;

export class BounceQueue {
  readonly queue: WorkQueue;
  private readonly clock: () => number;
  private readonly starting = new Set<Promise<void>>();

  constructor(private readonly o: BounceQueueOptions) {
    this.clock = o.clock ?? Date.now;
    this.queue = new WorkQueue(o.store, `bounce-due:${o.nodeId}`, (id) => this.send(id), o.logger, this.clock);
  }

  /** Queues a report once per id (a repeated status change sends none twice). Returns whether it was new. */
  async enqueue(id: string, request: BounceRequest): Promise<boolean> {
    const record: BounceRecord = { request, createdAtUnixMs: this.clock(), tries: 0 };
    if (!(await this.o.store.setIfAbsent(KEY(id), JSON.stringify(record), this.o.giveUpMs * 2))) return false;
    // The first attempt runs now, in the background; the queue retries it if this process dies.
    const first = this.queue.runNow(id);
    this.starting.add(first);
    void first.finally(() => this.starting.delete(first));
    return true;
  }

  start(): void {
    this.queue.start(1_000);
  }

  async stop(): Promise<void> {
    await this.queue.stop();
    await Promise.allSettled([...this.starting]);
  }

  /** Waits for the reports being sent (graceful shutdown). */
  async idle(): Promise<void> {
    while (this.starting.size > 0) await Promise.allSettled([...this.starting]);
    await this.queue.idle();
  }

  private async send(id: string): Promise<void> {
    const raw = await this.o.store.get(KEY(id));
    if (raw === null) {
      await this.queue.remove(id);
      return;
    }
    const record = JSON.parse(raw) as BounceRecord;
    const request = record.request;
    if (record.done || !request) {
      await this.queue.remove(id);
      return;
    }
    const message = await composeBounce(request, { from: this.o.from, reportingMta: this.o.reportingMta, id, now: new Date(this.clock()) });
    const result = await this.o.relay.send({ from: "", to: [request.to] }, message);
    const log = { bounce: id, to: request.to, recipients: request.recipients.map((r) => r.address) };
    record.tries++;
    const now = this.clock();
    if (result.ok) {
      this.o.logger.info({ ...log, response: result.response }, "non-delivery report sent");
      return this.finish(id, record, "sent");
    }
    if (result.permanent) {
      this.o.logger.warn({ ...log, reason: result.reason }, "non-delivery report refused by the relay; dropped");
      return this.finish(id, record, "refused");
    }
    if (now - record.createdAtUnixMs >= this.o.giveUpMs) {
      this.o.logger.error({ ...log, tries: record.tries, reason: result.reason }, "non-delivery report could not be sent in time; dropped");
      return this.finish(id, record, "given-up");
    }
    await this.save(id, record);
    await this.queue.schedule(id, now + backoffMs(record.tries, 1_000, 600_000));
  }

  private async finish(id: string, record: BounceRecord, done: NonNullable<BounceRecord["done"]>): Promise<void> {
    await this.save(id, { createdAtUnixMs: record.createdAtUnixMs, tries: record.tries, done });
    await this.queue.remove(id);
  }

  private async save(id: string, record: BounceRecord): Promise<void> {
    await this.o.store.set(KEY(id), JSON.stringify(record), this.o.giveUpMs * 2);
  }
}
