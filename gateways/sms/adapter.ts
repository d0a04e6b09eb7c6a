import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { Medium, MessageState, Priority } from "../../gen/uims/common/v1/types";
import { encodeGsm7, encodeUcs2, gsm7Septets } from "../../common/content/gsm7";
import { decodeSmsContent, SMS_CONTENT_TYPE, type SmsContent } from "../../common/content/sms";
import type { Store } from "../../common/store";
import type { Destination } from "../core/destination";
import type { DeliveryOutcome, InboundMessage, MediumAdapter, SentMessage } from "../core/types";
import { smppAddress, type SmsGatewayConfig } from "./config";
import { receiptOf } from "./dlr";
import type { MtLedger, MtRecord } from "./ledger";
import type { MoReceiver } from "./mo";
import { ESM_UDHI, type IncomingDeliverSm, type SmppSession } from "./smpp-session";
import { Status } from "./smpp-status";

/** SMPP registered_delivery: a receipt for final outcomes (delivered or failed). */
const RECEIPT_FINAL = 0x01;
const NO_RECEIPT = 0x00;
/** The longest validity period asked of the SMSC; many refuse or cap longer ones. */
const MAX_VALIDITY_MS = 7 * 86_400_000;
/** A short_message is at most 254 octets (SMPP 3.4 §5.2.22); a GSM segment is at most 140. */
const MAX_SHORT_MESSAGE = 254;
/** How long an unknown receipt id is looked up again: its submit_sm_resp may still be being recorded. */
const RECEIPT_LOOKUP_DELAYS_MS = [0, 50, 100, 200, 400, 800];

export interface SmsAdapterDeps {
  config: SmsGatewayConfig;
  store: Store;
  destination: Destination;
  session: SmppSession;
  ledger: MtLedger;
  mo: () => MoReceiver;
  logger: Logger;
}

/**
 * The sms medium. Mobile-terminated: each segment of the processor's SMS content becomes one
 * submit_sm; the message is "accepted" once the SMSC took every part, and delivered or failed
 * when the receipts say so (one verdict for all parts). Mobile-originated: see mo.ts. The SMSC
 * link is healthy only while bound, so the broker routes around an SMSC that is down.
 */
export class SmsAdapter implements MediumAdapter {
  readonly medium = Medium.MEDIUM_SMS;
  private readonly delivering = new Map<string, Promise<DeliveryOutcome>>();
  private readonly log: Logger;

  constructor(private readonly d: SmsAdapterDeps) {
    this.log = d.logger.child({ medium: "sms" });
  }

  health(): { healthy: boolean; detail: string } {
    return this.d.session.health();
  }

  /**
   * Submits the parts not yet accepted by the SMSC, so that a retry after a temporary refusal
   * (or a restart) never sends a part twice that the SMSC acknowledged. One run per message at a
   * time in this process, and across replicas through a lock in the store.
   */
  deliver(message: InboundMessage): Promise<DeliveryOutcome> {
    const running = this.delivering.get(message.messageId);
    if (running) return running;
    const run = this.submitParts(message).finally(() => this.delivering.delete(message.messageId));
    this.delivering.set(message.messageId, run);
    return run;
  }

  private async submitParts(message: InboundMessage): Promise<DeliveryOutcome> {
    const { messageId, meta, payload } = message;
    const type = (payload.contentType.split(";")[0] ?? "").trim().toLowerCase();
    if (type !== SMS_CONTENT_TYPE) return permanent(`the sms gateway sends ${SMS_CONTENT_TYPE} (text converted by a processor), not "${type || "no content type"}"`);
    let segments: Buffer[];
    let content: SmsContent;
    try {
      content = decodeSmsContent(payload.body);
      segments = content.segments.map((s) => Buffer.from(s, "base64"));
    } catch (err) {
      return permanent((err as Error).message);
    }
    const oversized = segments.findIndex((s) => s.length === 0 || s.length > MAX_SHORT_MESSAGE);
    if (oversized >= 0) return permanent(`segment ${oversized + 1} has ${segments[oversized]!.length} octets; a short message has 1 to ${MAX_SHORT_MESSAGE}`);
    const destination = smppAddress(meta.targetAddress);
    if (destination.ton !== 1) return permanent(`"${meta.targetAddress}" is not an international number`);

    const lockKey = `sms-lock:${messageId}`;
    const token = randomUUID();
    if (!(await this.d.store.setIfAbsent(lockKey, token, 120_000))) return { kind: "failed", permanent: false, reason: "another replica is submitting this message" };
    try {
      const bytes = segments.reduce((n, s) => n + s.length, 0);
      let record = await this.d.ledger.open(messageId, meta.attempt, segments.length, bytes, meta.expiresAtUnixMs);
      const validUntil = new Date(Math.min(meta.expiresAtUnixMs, Date.now() + MAX_VALIDITY_MS));
      for (let i = 0; i < segments.length && !record.verdict; i++) {
        if (record.parts[i]?.state !== "pending") continue;
        const result = await this.d.session.submit({
          source: this.d.config.source,
          destination,
          esmClass: content.udhi ? ESM_UDHI : 0,
          dataCoding: content.dataCoding,
          shortMessage: segments[i]!,
          registeredDelivery: RECEIPT_FINAL,
          validUntil,
          priorityFlag: meta.priority === Priority.PRIORITY_HIGH ? 1 : 0,
        });
        const where = `part ${i + 1} of ${segments.length}`;
        if (result.ok) {
          if (!result.smscMessageId) this.log.warn({ messageId, part: i + 1 }, "the SMSC accepted a part without a message id: its receipt cannot be matched");
          record = (await this.d.ledger.submitted(messageId, meta.attempt, i + 1, result.smscMessageId)) ?? record;
          this.log.debug({ messageId, part: i + 1, smscMessageId: result.smscMessageId }, "part accepted by the SMSC");
          continue;
        }
        this.log.info({ messageId, part: i + 1, reason: result.reason, temporary: result.temporary }, "part not accepted by the SMSC");
        if (result.temporary) return { kind: "failed", permanent: false, reason: `${where}: ${result.reason}` };
        await this.d.ledger.decide(messageId, meta.attempt, { kind: "failed", permanent: true, reason: `${where}: ${result.reason}` });
        return permanent(`${where}: ${result.reason}`);
      }
      // Receipts may have settled the message while parts were still going out (or before a
      // restart): the verdict is reported from here too, idempotently.
      if (record.verdict) await this.settle(record);
      return { kind: "accepted" };
    } finally {
      await this.d.store.compareAndSet(lockKey, token, null).catch(() => undefined);
    }
  }

  /** Every deliver_sm from the SMSC; the result is the deliver_sm_resp status. */
  async onDeliverSm(pdu: IncomingDeliverSm): Promise<number> {
    if (pdu.kind === "receipt") return this.onReceipt(pdu);
    if (pdu.kind === "mo") return this.d.mo().receive(pdu);
    this.log.debug({ esmClass: pdu.esmClass }, "deliver_sm of a kind the gateway does not use (an SME acknowledgement); acknowledged");
    return Status.ESME_ROK;
  }

  private async onReceipt(pdu: IncomingDeliverSm): Promise<number> {
    const receipt = receiptOf(pdu);
    if (!receipt) {
      this.log.warn("delivery receipt without a message id; acknowledged and dropped");
      return Status.ESME_ROK;
    }
    let ref = null;
    for (const delay of RECEIPT_LOOKUP_DELAYS_MS) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      ref = await this.d.ledger.lookup(receipt.smscMessageId);
      if (ref) break;
    }
    if (!ref) {
      this.log.warn({ smscMessageId: receipt.smscMessageId, state: receipt.state }, "delivery receipt for an SMSC message id this gateway never submitted (or long forgotten); acknowledged and dropped");
      return Status.ESME_ROK;
    }
    const record = await this.d.ledger.applyReceipt(ref, receipt);
    if (!record) {
      this.log.info({ messageId: ref.messageId, part: ref.part, state: receipt.state }, "delivery receipt for an earlier attempt; ignored");
      return Status.ESME_ROK;
    }
    this.log.info({ messageId: ref.messageId, part: ref.part, parts: record.parts.length, state: receipt.state, error: receipt.error }, "delivery receipt");
    // Reported before the SMSC gets its answer: if this process dies first, the SMSC delivers
    // the receipt again and the verdict is reported then.
    await this.settle(record);
    return Status.ESME_ROK;
  }

  /** Reports the message's verdict to the core (which ignores a second report of the same). */
  private async settle(record: MtRecord): Promise<void> {
    const v = record.verdict;
    if (!v) return;
    if (v.kind === "delivered") await this.d.destination.markDelivered(record.messageId, { segments: record.parts.length, bytes: record.bytes });
    else await this.d.destination.markFailed(record.messageId, v.permanent, v.reason);
  }

  /**
   * A message from a phone that could not be delivered gets a short SMS back saying so (once,
   * best effort: when the SMSC is not bound at that moment, only the log says it).
   */
  async onStatus(message: SentMessage): Promise<void> {
    if (!this.d.config.ndrSms || message.sender || !message.senderAddress.startsWith("sms:+")) return;
    if (message.state !== MessageState.MESSAGE_STATE_FAILED && message.state !== MessageState.MESSAGE_STATE_EXPIRED) return;
    void this.sendNdr(message).catch((err: unknown) => this.log.warn({ messageId: message.messageId, err: (err as Error).message }, "non-delivery SMS not sent"));
  }

  private async sendNdr(message: SentMessage): Promise<void> {
    if (!(await this.d.store.setIfAbsent(`sms-ndr:${message.messageId}`, "1", this.d.config.retentionMs))) return;
    const last = message.events[message.events.length - 1];
    const reason = last?.reason || (message.state === MessageState.MESSAGE_STATE_EXPIRED ? "it expired" : "it failed");
    const { dataCoding, shortMessage } = shortText(`Your SMS to ${message.recipient} could not be delivered: ${reason}`);
    const result = await this.d.session.submit({
      source: this.d.config.source,
      destination: smppAddress(message.senderAddress.slice("sms:".length)),
      esmClass: 0,
      dataCoding,
      shortMessage,
      registeredDelivery: NO_RECEIPT,
    });
    if (result.ok) this.log.info({ messageId: message.messageId }, "non-delivery SMS sent to the sender");
    else this.log.warn({ messageId: message.messageId, reason: result.reason }, "non-delivery SMS not sent");
  }
}

function permanent(reason: string): DeliveryOutcome {
  return { kind: "failed", permanent: true, reason };
}

/** Text cut to one SMS: 160 GSM septets, or 70 UCS-2 units when GSM cannot carry it. */
export function shortText(text: string): { dataCoding: number; shortMessage: Buffer } {
  const ellipsis = "...";
  const gsm = encodeGsm7(text);
  if (gsm && gsm.length <= 160) return { dataCoding: 0, shortMessage: gsm };
  if (gsm) {
    let septets = 0;
    let out = "";
    for (const char of text) {
      const size = gsm7Septets(char)!.length;
      if (septets + size > 160 - ellipsis.length) return { dataCoding: 0, shortMessage: encodeGsm7(out + ellipsis)! };
      septets += size;
      out += char;
    }
    return { dataCoding: 0, shortMessage: encodeGsm7(out)! };
  }
  if (text.length <= 70) return { dataCoding: 8, shortMessage: encodeUcs2(text) };
  let out = "";
  for (const char of text) {
    if (out.length + char.length > 70 - ellipsis.length) break;
    out += char;
  }
  return { dataCoding: 8, shortMessage: encodeUcs2(out + ellipsis) };
}
