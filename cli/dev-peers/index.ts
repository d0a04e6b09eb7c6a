import { randomBytes } from "node:crypto";
import { escapeRegExp } from "../../gateways/email/return-path";
import { LocalSmsc, type ReceivedSms, type RecordedSubmit } from "./smsc";
import { SmtpSink, type ReceivedMail } from "./smtp-sink";

/**
 * The outside world of a mesh on one machine (`uims up`): an SMSC for the sms gateway and an SMTP
 * sink as the email gateway's relay, both in the calling process on loopback, reporting what
 * they receive so that it can be shown.
 */

export { LocalSmsc, type ReceivedSms } from "./smsc";
export { SmtpSink, type ReceivedMail } from "./smtp-sink";

/** The sms gateway's bind at the local SMSC (system_id is at most 15 characters). */
export const SMSC_SYSTEM_ID = "uims-local";
/** How long the local SMSC waits before it answers a submit with a DELIVRD receipt. */
export const RECEIPT_DELAY_MS = 1_000;

export interface DevPeersOptions {
  onSms: (sms: ReceivedSms) => void;
  onMail: (mail: ReceivedMail) => void;
  /** Each automatic receipt and how the gateway answered it (or why it could not be sent). */
  onReceipt?: (submit: RecordedSubmit, stat: string, outcome: { status: number } | { error: Error }) => void;
  receiptDelayMs?: number;
}

export interface DevPeers {
  smsc: LocalSmsc;
  sink: SmtpSink;
  /** For the sms gateway: SMPP_URL, SMPP_SYSTEM_ID, SMPP_PASSWORD. */
  smpp: { url: string; systemId: string; password: string };
  /** For the email gateway: SMTP_RELAY_URL. */
  relayUrl: string;
  stop(): Promise<void>;
}

export async function startDevPeers(opts: DevPeersOptions): Promise<DevPeers> {
  // A fresh password per run: the bind is checked the way a real SMSC checks it.
  const password = randomBytes(9).toString("base64url");
  const smsc = new LocalSmsc({
    systemId: SMSC_SYSTEM_ID,
    password,
    autoReceiptMs: opts.receiptDelayMs ?? RECEIPT_DELAY_MS,
    onSms: opts.onSms,
    ...(opts.onReceipt ? { onReceipt: opts.onReceipt } : {}),
  });
  const sink = new SmtpSink({ onMail: opts.onMail });
  await smsc.start();
  try {
    await sink.start();
  } catch (err) {
    await smsc.stop();
    throw err;
  }
  return {
    smsc,
    sink,
    smpp: { url: smsc.url, systemId: SMSC_SYSTEM_ID, password },
    relayUrl: sink.url,
    async stop() {
      await Promise.all([smsc.stop(), sink.stop()]);
    },
  };
}

/** A text on one line: line breaks and other control characters escaped, at most `max` characters. */
export function oneLine(text: string, max = 200): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** `SMS to +491701234567 from +4915550000, GSM 7-bit, 1 segment: "hello\nMail turned into SMS"` */
export function describeSms(sms: ReceivedSms): string {
  const segments = `${sms.segments} segment${sms.segments === 1 ? "" : "s"}`;
  const text = sms.text === undefined ? "(binary data)" : oneLine(sms.text);
  return `SMS to ${sms.to} from ${sms.from}, ${sms.encoding}, ${segments}: ${text}`;
}

/**
 * `mail to someone@example.org from alice@uims.local, subject "hi", message 0b9c…: "hello"`. The
 * processor makes a mail's Message-ID from the message id and the mail domain, so the id is shown
 * when the Message-ID has that form.
 */
export function describeMail(mail: ReceivedMail, mailDomain: string): string {
  const p = mail.parsed;
  const to = mail.envelope.to.join(", ") || "(nobody)";
  const from = p.from?.value[0]?.address || mail.envelope.from || "<>";
  const parts = [`mail to ${to} from ${from}`, `subject ${oneLine(p.subject ?? "")}`];
  const id = new RegExp(`^<(.+)@${escapeRegExp(mailDomain)}>$`, "i").exec(p.messageId ?? "")?.[1];
  if (id) parts.push(`message ${id}`);
  const attachments = p.attachments.length ? `, ${p.attachments.length} attachment${p.attachments.length === 1 ? "" : "s"}` : "";
  return `${parts.join(", ")}${attachments}: ${oneLine((p.text ?? "").trim())}`;
}
