import nodemailer, { type Transporter, type SMTPSentMessageInfo } from "nodemailer";
import type { Logger } from "../../common/logger";

/**
 * Mail out through one relay (a smarthost): nodemailer's SMTP transport with the raw message
 * and an explicit envelope, so what the processor built is what leaves. The relay's answer is
 * classified the way RFC 5321 does: 2yz sent, 5yz refused for good, anything else (4yz, no
 * connection, a timeout, a broken dialogue) worth another try later.
 */

export interface RelayEnvelope {
  /** "" is the null sender (`MAIL FROM:<>`), used for non-delivery reports. */
  from: string;
  to: string[];
}

export type RelayResult = { ok: true; response: string } | { ok: false; permanent: boolean; reason: string };

export interface SmtpRelayOptions {
  /** `smtp://host:port` or `smtps://...`; unset: nothing can be sent. */
  url?: string;
  timeoutMs: number;
  /** Consecutive transient failures after which the relay counts as down. */
  unhealthyAfter: number;
  /** EHLO name. */
  name: string;
  logger: Logger;
  clock?: () => number;
}

/** How often a relay that counts as down is probed (connect, EHLO, QUIT) while nothing is sent. */
const PROBE_INTERVAL_MS = 5_000;
const MAX_REASON = 500;

/** The relay's host and port, without credentials, for logs and health details. */
export function relayTarget(url: string | undefined): string {
  if (!url) return "";
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "(invalid relay URL)";
  }
}

interface SmtpError {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  message?: unknown;
}

function oneLine(text: string): string {
  const flat = text.replace(/[\r\n]+/g, " ").replace(/\s+/g, " ").trim();
  return flat.length > MAX_REASON ? `${flat.slice(0, MAX_REASON)}...` : flat;
}

/** Classifies a nodemailer failure: permanent only when the relay answered 5yz (503 aside: a dialogue out of step). */
export function classifyRelayError(err: unknown): { ok: false; permanent: boolean; reason: string } {
  const e = (err ?? {}) as SmtpError;
  const message = typeof e.message === "string" ? e.message : String(err);
  if (typeof e.responseCode === "number") {
    const reply = typeof e.response === "string" && e.response.trim() ? e.response : `${e.responseCode} ${message}`;
    const permanent = e.responseCode >= 500 && e.responseCode < 600 && e.responseCode !== 503;
    return { ok: false, permanent, reason: oneLine(reply) };
  }
  const code = typeof e.code === "string" ? `${e.code}: ` : "";
  return { ok: false, permanent: false, reason: oneLine(`relay unreachable: ${code}${message}`) };
}

export class SmtpRelay {
  private readonly transport: Transporter<SMTPSentMessageInfo> | undefined;
  private readonly clock: () => number;
  readonly target: string;
  private failures = 0;
  private lastFailure = "";
  private lastProbeAt = 0;
  private probing = false;

  constructor(private readonly o: SmtpRelayOptions) {
    this.clock = o.clock ?? Date.now;
    this.target = relayTarget(o.url);
    if (o.url) {
      // One connection per message: a relay outage then costs nothing to recover from, and a
      // message never waits behind another one's slow dialogue.
      this.transport = nodemailer.createTransport({
        url: o.url,
        name: o.name,
        connectionTimeout: o.timeoutMs,
        greetingTimeout: o.timeoutMs,
        socketTimeout: o.timeoutMs,
        disableFileAccess: true,
        disableUrlAccess: true,
      });
    }
  }

  get configured(): boolean {
    return this.transport !== undefined;
  }

  async send(envelope: RelayEnvelope, raw: Buffer): Promise<RelayResult> {
    if (!this.transport) return { ok: false, permanent: false, reason: "no SMTP relay is configured (SMTP_RELAY_URL)" };
    try {
      const info = await this.transport.sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw });
      this.failures = 0;
      return { ok: true, response: oneLine(info.response || "250") };
    } catch (err) {
      const result = classifyRelayError(err);
      if (result.permanent) {
        // A refusal is an answer: the relay itself works.
        this.failures = 0;
      } else {
        this.failures++;
        this.lastFailure = result.reason;
      }
      this.o.logger.info({ relay: this.target, to: envelope.to, permanent: result.permanent, reason: result.reason }, "relay did not take the message");
      return result;
    }
  }

  /** Healthy unless the relay failed its last `unhealthyAfter` attempts; a relay counted as down is probed now and then. */
  health(): { healthy: boolean; detail: string } {
    if (!this.transport) return { healthy: false, detail: "no SMTP relay configured (SMTP_RELAY_URL): mail cannot be sent out" };
    if (this.failures < this.o.unhealthyAfter) return { healthy: true, detail: `relay ${this.target}` };
    this.probe();
    return { healthy: false, detail: `relay ${this.target} failed its last ${this.failures} attempts: ${this.lastFailure}` };
  }

  close(): void {
    this.transport?.close();
  }

  private probe(): void {
    const now = this.clock();
    if (!this.transport || this.probing || now - this.lastProbeAt < PROBE_INTERVAL_MS) return;
    this.probing = true;
    this.lastProbeAt = now;
    this.transport.verify().then(
      () => {
        this.o.logger.info({ relay: this.target }, "relay reachable again");
        this.failures = 0;
      },
      (err: unknown) => {
        this.lastFailure = classifyRelayError(err).reason;
      },
    ).finally(() => {
      this.probing = false;
    });
  }
}
