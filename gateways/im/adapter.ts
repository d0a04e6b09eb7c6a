import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import type { Gateway } from "../core/gateway";
import type { DeliveryOutcome, InboundMessage, MediumAdapter, SentMessage } from "../core/types";
import type { Inboxes } from "./inbox";
import type { StatusWatchers } from "./status-watchers";

const POSTMASTER = "uims:postmaster";

/**
 * The im medium: delivery is an append to the target client's inbox (live to a connected
 * client), and a sender learns of its messages through status streams and, for a message that
 * cannot be delivered, a non-delivery report in its own inbox.
 */
export class ImAdapter implements MediumAdapter {
  readonly medium = Medium.MEDIUM_IM;

  constructor(
    private readonly gateway: Gateway,
    private readonly inboxes: Inboxes,
    private readonly watchers: StatusWatchers,
  ) {}

  async deliver(message: InboundMessage): Promise<DeliveryOutcome> {
    const meta = message.meta;
    await this.inboxes.append(meta.targetAddress, {
      messageId: message.messageId,
      sender: meta.sender,
      senderAddress: meta.senderAddress,
      sourceMedium: meta.sourceMedium,
      payload: message.payload,
      sentAtUnixMs: meta.createdAtUnixMs,
      traceId: (meta.trace?.traceparent ?? "").split("-")[1] ?? "",
    });
    // Delivered once the client has it: reported by the inbox stream (or the client's ack).
    return { kind: "accepted" };
  }

  async onStatus(message: SentMessage): Promise<void> {
    this.watchers.publish(message);
    if ((message.state === MessageState.MESSAGE_STATE_FAILED || message.state === MessageState.MESSAGE_STATE_EXPIRED) && message.sender) {
      const last = message.events[message.events.length - 1];
      const reason = last?.reason || (message.state === MessageState.MESSAGE_STATE_EXPIRED ? "it expired" : "it failed");
      const text = `Your message ${message.messageId} to ${message.recipient} could not be delivered: ${reason}`;
      await this.inboxes.append(message.sender, {
        messageId: `ndr-${message.messageId}`,
        sender: "",
        senderAddress: POSTMASTER,
        sourceMedium: Medium.MEDIUM_IM,
        payload: { contentType: "text/plain; charset=utf-8", body: Buffer.from(text), attachments: [], subject: "Undeliverable message" },
        sentAtUnixMs: Date.now(),
        traceId: message.traceId,
      });
    }
  }

  health(): { healthy: boolean; detail: string } {
    return { healthy: true, detail: "" };
  }

  /** The inbox stream wrote a message to its client (auto-ack) or the client acknowledged it. */
  delivered(messageId: string): Promise<void> {
    return messageId.startsWith("ndr-") ? Promise.resolve() : this.gateway.destination.markDelivered(messageId);
  }

  read(messageId: string): Promise<void> {
    return messageId.startsWith("ndr-") ? Promise.resolve() : this.gateway.destination.markRead(messageId);
  }
}
