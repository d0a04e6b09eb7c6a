import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { addressProblem } from "../../common/addresses";
import type { Logger } from "../../common/logger";
import type { Store } from "../../common/store";
import type { DeliveryOutcome, InboundMessage, MediumAdapter, SentMessage } from "../core/types";
import { statusFrom, type BounceQueue, type OriginalMails } from "./bounce";
import type { ReturnPaths } from "./return-path";
import type { SmtpRelay } from "./smtp-out";

/**
 * The email medium: delivery is a hand-over to the SMTP relay (its 250 is "delivered"), from a
 * return path that names the message, so that a bounce arriving later turns it FAILED (see
 * SmtpInbound); a mail from the internet that ends FAILED or EXPIRED gets a non-delivery report
 * back to its sender.
 */

export interface EmailAdapterOptions {
  store: Store;
  relay: Pick<SmtpRelay, "send" | "health">;
  bounces: Pick<BounceQueue, "enqueue">;
  originals: OriginalMails;
  /** Envelope senders of mail sent out: one per message. */
  returnPaths: Pick<ReturnPaths, "for">;
  mailDomain: string;
  smsDomain: string;
  /** How long a "sent" mark is kept (a redelivery after a crash then sends nothing twice). */
  retentionMs: number;
  logger: Logger;
}

const RFC822 = "message/rfc822";

function baseType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export class EmailAdapter implements MediumAdapter {
  readonly medium = Medium.MEDIUM_EMAIL;

  constructor(private readonly o: EmailAdapterOptions) {}

  async deliver(message: InboundMessage): Promise<DeliveryOutcome> {
    const { meta, payload, messageId } = message;
    const to = meta.targetAddress.replace(/^mailto:/i, "");
    if (baseType(payload.contentType) !== RFC822) {
      return { kind: "failed", permanent: true, reason: `the email gateway sends ${RFC822} content, not ${payload.contentType || "(none)"}` };
    }
    if (addressProblem(Medium.MEDIUM_EMAIL, to)) return { kind: "failed", permanent: true, reason: `"${to}" is not an e-mail address` };
    // The relay took it before a crash that came before the core recorded the delivery.
    const sentKey = `mail-sent:${messageId}`;
    const earlier = await this.o.store.get(sentKey);
    if (earlier !== null) return { kind: "delivered", bytes: payload.body.length, detail: earlier };

    const result = await this.o.relay.send({ from: this.o.returnPaths.for(messageId), to: [to] }, payload.body);
    if (!result.ok) return { kind: "failed", permanent: result.permanent, reason: result.reason };
    await this.o.store.set(sentKey, result.response, this.o.retentionMs);
    this.o.logger.info({ messageId, response: result.response }, "mail handed to the relay");
    return { kind: "delivered", bytes: payload.body.length, detail: result.response };
  }

  async onStatus(message: SentMessage): Promise<void> {
    const final = message.state === MessageState.MESSAGE_STATE_FAILED || message.state === MessageState.MESSAGE_STATE_EXPIRED;
    // Only outside senders hear from us by mail; a sender without an address (the null
    // sender of a bounce) hears nothing, so reports never loop.
    if (!final || message.sender || !message.senderAddress.toLowerCase().startsWith("mailto:")) return;
    const to = message.senderAddress.slice("mailto:".length);
    const last = message.events[message.events.length - 1];
    const expired = message.state === MessageState.MESSAGE_STATE_EXPIRED;
    const reason = last?.reason || (expired ? "the message expired before it could be delivered" : "the message could not be delivered");
    const original = await this.o.originals.get(message.messageId);
    await this.o.bounces.enqueue(`ndr-${message.messageId}`, {
      to,
      subject: original?.subject ?? "",
      recipients: [{ address: original?.address ?? this.addressOf(message.recipient), status: statusFrom(reason, expired ? "4.4.7" : "5.0.0"), diagnostic: reason }],
      originalHeaders: original?.headers ?? "",
      originalMessageId: original?.messageId ?? "",
      arrivedAtUnixMs: original?.arrivedAtUnixMs ?? message.createdAtUnixMs,
    });
  }

  health(): { healthy: boolean; detail: string } {
    return this.o.relay.health();
  }

  /** The mail address a mesh recipient was reached at, when the original's record is gone. */
  private addressOf(recipient: string): string {
    if (recipient.startsWith("sms:")) return `${recipient.slice(4)}@${this.o.smsDomain}`;
    if (recipient.startsWith("mailto:")) return recipient.slice(7);
    return `${recipient}@${this.o.mailDomain}`;
  }
}
