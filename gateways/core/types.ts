import type { MetaInformation, Payload } from "../../gen/uims/common/v1/message";
import type { Medium, MessageState, Priority, StatusEvent } from "../../gen/uims/common/v1/types";

/** What a medium adapter hands the core when a client sends a message. */
export interface AcceptInput {
  /** Sending profile id; empty for an outside sender (a mail from the internet). */
  sender: string;
  /** The sender's address in its medium, e.g. "im:alice", "mailto:a@example.org". */
  senderAddress: string;
  recipient: string;
  payload: Payload;
  idempotencyKey: string;
  priority: Priority;
  /** 0 for the gateway's default. */
  ttlMs: number;
  /** W3C traceparent to continue, when the client sent one. */
  traceparent?: string;
}

/** A message this gateway sent on behalf of a client, as its sender sees it. */
export interface SentMessage {
  messageId: string;
  sender: string;
  senderAddress: string;
  recipient: string;
  state: MessageState;
  medium: Medium;
  events: StatusEvent[];
  segments: number;
  traceId: string;
  createdAtUnixMs: number;
}

/** A message that arrived for one of this gateway's clients. */
export interface InboundMessage {
  messageId: string;
  meta: MetaInformation;
  payload: Payload;
  segments: number;
}

export type DeliveryOutcome =
  /** The target has it now (e.g. an SMTP relay answered 250). */
  | { kind: "delivered"; segments?: number; bytes?: number; detail?: string }
  /** Handed over durably; the adapter reports delivery (and reads) later through the core. */
  | { kind: "accepted" }
  | { kind: "failed"; permanent: boolean; reason: string };

/** The medium-specific part of a gateway. The core does everything else. */
export interface MediumAdapter {
  readonly medium: Medium;
  /** Delivers to the target client. Called again after a crash, so it must be idempotent by message id. */
  deliver(message: InboundMessage): Promise<DeliveryOutcome>;
  /** Tells the sending client about a change in its message's status (status stream, bounce mail, ...). */
  onStatus(message: SentMessage): Promise<void>;
  /** Whether the medium can deliver now (e.g. the SMSC is bound); reported in heartbeats. */
  health(): { healthy: boolean; detail: string };
}
