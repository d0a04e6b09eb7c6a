import type { Logger } from "pino";
import * as grpc from "@grpc/grpc-js";
import { ReportOutcome } from "../../gen/uims/broker/v1/broker";
import { Payload, Release, type InstantMessage } from "../../gen/uims/common/v1/message";
import { FailureKind, type Medium } from "../../gen/uims/common/v1/types";
import { equalConstantTime, type VerifyKeys } from "../../common/crypto/keys";
import { releaseSignatureValid } from "../../common/crypto/release";
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError } from "../../common/errors";
import type { BrokerClient } from "../../common/mesh/broker-client";
import { errorCode } from "../../common/mesh/peer";
import { CasRecords, type Store } from "../../common/store";
import { backoffMs } from "./backoff";
import { mediumName } from "../../common/addresses";
import { messages, retries } from "../../common/metrics";
import { Attr, SpanKind, step } from "../../common/tracing";
import type { DeliveryOutcome, InboundMessage, MediumAdapter } from "./types";
import { WorkQueue } from "./work-queue";

/**
 * The destination side of a gateway: accepts transmissions (phase 3) only with a valid broker
 * release, keeps each message until it is delivered or has definitively failed, delivers through
 * the medium adapter, and reports to the broker (phase 4). Reports are queued in the store too,
 * so none is lost when the broker is briefly unreachable or this process restarts.
 */
type InboundState = "received" | "handed" | "delivered" | "read" | "failed";

interface InboundRecord {
  messageId: string;
  release: string;
  /** The payload lives under its own key (PAYLOAD) until delivery, so that state changes never move content. */
  hasPayload: boolean;
  convertedBy: string;
  segments: number;
  state: InboundState;
  tries: number;
  failingSinceUnixMs: number;
  failure?: { permanent: boolean; reason: string };
  deliveredBytes: number;
  expiresAtUnixMs: number;
}

type ReportKind = Exclude<InboundState, "received" | "handed">;

export interface DestinationOptions {
  nodeId: string;
  medium: Medium;
  store: Store;
  broker: BrokerClient;
  verifyKeys: VerifyKeys;
  adapter: () => MediumAdapter;
  logger: Logger;
  clock: () => number;
  /** How long temporary delivery failures are retried before the broker is asked to fall back. */
  deliveryGiveUpMs: number;
  retentionMs: number;
}

const KEY = (id: string) => `in:${id}`;
const PAYLOAD = (id: string) => `in-payload:${id}`;
/** Payloads just received, kept in memory for their immediate delivery (saves a store read). */
const FRESH_LIMIT = 10_000;

export class Destination {
  private readonly fresh = new Map<string, Payload>();
  private readonly records: CasRecords<InboundRecord>;
  readonly deliveries: WorkQueue;
  readonly reports: WorkQueue;

  constructor(private readonly o: DestinationOptions) {
    this.records = new CasRecords(o.store);
    this.deliveries = new WorkQueue(o.store, `in-due:${o.nodeId}`, (id) => this.deliver(id), o.logger, o.clock);
    this.reports = new WorkQueue(o.store, `report-due:${o.nodeId}`, (item) => this.sendReport(item), o.logger, o.clock);
  }

  /**
   * Phase 3 at the destination. Everything is checked before anything is stored: the broker's
   * signature over the release, that the release names this gateway and medium, that the sender
   * is the originator (or the processor the release names), and that the payload is the one the
   * broker released (or was converted by that processor). Returns true when the message was new.
   */
  receive(caller: string, message: InstantMessage, digest: Buffer): Promise<boolean> {
    const meta = message.release?.meta;
    return step("uims.receive", { traceparent: meta?.trace?.traceparent, kind: SpanKind.CONSUMER, attributes: { [Attr.messageId]: meta?.messageId ?? "", [Attr.node]: this.o.nodeId, "uims.converted_by": message.convertedBy } }, async (span) => {
      const fresh = await this.check(caller, message, digest);
      span.setAttribute("uims.duplicate", !fresh);
      return fresh;
    });
  }

  private async check(caller: string, message: InstantMessage, digest: Buffer): Promise<boolean> {
    const release = message.release;
    const meta = release?.meta;
    const payload = message.payload;
    if (!release || !meta) throw new InvalidArgumentError("message.release", "is required");
    if (!payload) throw new InvalidArgumentError("message.payload", "is required");
    if (!releaseSignatureValid(this.o.verifyKeys, release)) throw new PermissionDeniedError("the release does not carry a valid broker signature");
    if (meta.destinationGatewayId !== this.o.nodeId) throw new PermissionDeniedError(`the release is for "${meta.destinationGatewayId}", not this gateway`);
    if (meta.targetMedium !== this.o.medium) throw new PermissionDeniedError("the release is for another medium");
    if (meta.expiresAtUnixMs <= this.o.clock()) throw new FailedPreconditionError("the message has expired");
    if (message.convertedBy) {
      if (!meta.conversion || meta.processorId !== message.convertedBy || caller !== meta.processorId) {
        throw new PermissionDeniedError("converted content must come from the processor the release names");
      }
      if (payload.contentType.split(";")[0]?.trim() !== meta.conversion.targetContentType.split(";")[0]?.trim()) {
        throw new InvalidArgumentError("message.payload.content_type", `the release asks for ${meta.conversion.targetContentType}`);
      }
    } else {
      if (meta.conversion) throw new FailedPreconditionError("the release asks for a conversion, but the content was not converted");
      if (caller !== meta.originGatewayId) throw new PermissionDeniedError(`only the originating gateway "${meta.originGatewayId}" may transmit this message`);
      if (!equalConstantTime(digest, meta.contentDigest)) throw new PermissionDeniedError("the content is not the content the broker released");
    }
    const record: InboundRecord = {
      messageId: meta.messageId,
      release: Buffer.from(Release.encode(release).finish()).toString("base64"),
      hasPayload: true,
      convertedBy: message.convertedBy,
      segments: message.segments,
      state: "received",
      tries: 0,
      failingSinceUnixMs: 0,
      deliveredBytes: payload.body.length,
      expiresAtUnixMs: meta.expiresAtUnixMs,
    };
    // The payload first: a record never names content that is not stored. A repeated
    // transmission writes the same bytes again (the digest above pins them).
    // Idempotent by message id: a re-sent transmission is acknowledged and not delivered twice.
    // The lease on the delivery is taken in the same round trip; for a repeat it finds nothing to do.
    const [, created] = await Promise.all([
      this.o.store.setBytes(PAYLOAD(meta.messageId), Payload.encode(payload).finish(), this.ttl(record)),
      this.records.create(KEY(meta.messageId), record, this.ttl(record)),
      this.deliveries.schedule(meta.messageId, this.o.clock() + 15_000),
    ]);
    if (!created) {
      // The broker may route a message back here after it failed here: a new attempt.
      const renewed = await this.records.update(
        KEY(meta.messageId),
        (existing) => {
          const again = existing.state === "failed" && Release.decode(Buffer.from(existing.release, "base64")).meta?.attempt !== meta.attempt;
          if (again) Object.assign(existing, record);
          return again;
        },
        () => this.ttl(record),
      );
      if (!renewed?.after) return false;
    }
    if (this.fresh.size < FRESH_LIMIT) this.fresh.set(meta.messageId, payload);
    void this.deliveries.runNow(meta.messageId, true);
    return true;
  }

  /** For adapters that hand over first and learn of delivery later (im inboxes, SMS receipts). */
  async markDelivered(messageId: string, detail?: { segments?: number; bytes?: number }): Promise<void> {
    await this.transition(messageId, ["received", "handed"], "delivered", (r) => {
      if (detail?.segments) r.segments = detail.segments;
      if (detail?.bytes) r.deliveredBytes = detail.bytes;
    });
  }

  async markRead(messageId: string): Promise<void> {
    await this.transition(messageId, ["received", "handed", "delivered"], "read");
  }

  async markFailed(messageId: string, permanent: boolean, reason: string): Promise<void> {
    await this.transition(messageId, ["received", "handed"], "failed", (r) => {
      r.failure = { permanent, reason };
    });
  }

  /**
   * A failure learnt after the hand-over, e.g. a mail system's bounce days after its relay took
   * the mail: the message failed for good, even when it was reported delivered. False when the
   * message is unknown here or already failed.
   */
  markBounced(messageId: string, reason: string): Promise<boolean> {
    return this.transition(messageId, ["received", "handed", "delivered"], "failed", (r) => {
      r.failure = { permanent: true, reason };
    });
  }

  /** The message as delivered here, for adapters (e.g. an inbox acknowledging it). */
  async get(messageId: string): Promise<{ message: InboundMessage; state: InboundState } | null> {
    const record = await this.load(messageId);
    if (!record) return null;
    return { message: await this.inbound(record), state: record.state };
  }

  private async inbound(record: InboundRecord): Promise<InboundMessage> {
    const release = Release.decode(Buffer.from(record.release, "base64"));
    let payload = this.fresh.get(record.messageId);
    if (!payload && record.hasPayload) {
      const stored = await this.o.store.getBytes(PAYLOAD(record.messageId));
      if (stored !== null) payload = Payload.decode(stored);
    }
    return { messageId: record.messageId, meta: release.meta!, payload: payload ?? Payload.fromPartial({}), segments: record.segments };
  }

  /**
   * Moves a message between states with compare-and-set: delivery by the adapter, the inbox
   * stream and the client's acknowledgement race, and exactly one of them may win each step.
   */
  private async transition(messageId: string, from: InboundState[], to: InboundState, change?: (r: InboundRecord) => void): Promise<boolean> {
    const result = await this.records.update(
      KEY(messageId),
      (record) => {
        if (!from.includes(record.state)) return false;
        record.state = to;
        change?.(record);
        if (to !== "received") record.hasPayload = false;
        return true;
      },
      (record) => this.ttl(record),
    );
    if (!result?.after) return false;
    const wasDelivered = result.before.state === "delivered";
    if (to !== "received") this.fresh.delete(messageId);
    await Promise.all([this.deliveries.remove(messageId), to !== "received" ? this.o.store.del(PAYLOAD(messageId)) : undefined]);
    if (to === "handed" || to === "received") return true;
    if (to !== "read") messages.inc({ role: "received", medium: mediumName(this.o.medium), outcome: to });
    // A read implies delivery: report both so the broker books the delivery.
    if (to === "read" && !wasDelivered) await this.queueReport(messageId, "delivered");
    await this.queueReport(messageId, to);
    return true;
  }

  private async deliver(messageId: string): Promise<void> {
    // Usually just written by receive() in this process: no need to read it back.
    const record = this.records.peek(KEY(messageId)) ?? (await this.load(messageId));
    const found = record ? { message: await this.inbound(record) } : null;
    if (!found || !record || record.state !== "received") {
      this.fresh.delete(messageId);
      await this.deliveries.remove(messageId);
      return;
    }
    if (record.expiresAtUnixMs <= this.o.clock()) {
      await this.markFailed(messageId, true, "expired before it could be delivered");
      return;
    }
    const outcome = await step("uims.deliver", { traceparent: found.message.meta.trace?.traceparent, attributes: { [Attr.messageId]: messageId, [Attr.targetMedium]: mediumName(found.message.meta.targetMedium), "uims.tries": record.tries } }, async (span): Promise<DeliveryOutcome> => {
      let result: DeliveryOutcome;
      try {
        result = await this.o.adapter().deliver(found.message);
      } catch (err) {
        result = { kind: "failed", permanent: false, reason: (err as Error).message };
      }
      span.setAttribute(Attr.outcome, result.kind);
      return result;
    });
    if (outcome.kind === "delivered") {
      await this.markDelivered(messageId, { ...(outcome.segments ? { segments: outcome.segments } : {}), ...(outcome.bytes ? { bytes: outcome.bytes } : {}) });
    } else if (outcome.kind === "accepted") {
      // No report yet: the adapter reports delivery when the client has the message.
      await this.transition(messageId, ["received"], "handed");
    } else if (outcome.permanent) {
      await this.markFailed(messageId, true, outcome.reason);
    } else {
      const now = this.o.clock();
      const result = await this.records.update(
        KEY(messageId),
        (r) => {
          if (r.state !== "received") return false;
          r.tries++;
          if (!r.failingSinceUnixMs) r.failingSinceUnixMs = now;
          return true;
        },
        (r) => this.ttl(r),
      );
      const updated = result?.after;
      if (!updated) return;
      if (now - updated.failingSinceUnixMs >= this.o.deliveryGiveUpMs) {
        await this.markFailed(messageId, false, outcome.reason);
        return;
      }
      retries.inc({ kind: "delivery" });
      await this.deliveries.schedule(messageId, now + backoffMs(updated.tries, 500));
    }
  }

  private async queueReport(messageId: string, kind: ReportKind): Promise<void> {
    const item = `${messageId}|${kind}`;
    await this.reports.schedule(item, this.o.clock() + 15_000);
    void this.reports.runNow(item, true);
  }

  private async sendReport(item: string): Promise<void> {
    const [messageId, kind] = item.split("|") as [string, ReportKind];
    // Usually just written by the transition that queued this report, in this process.
    const record = this.records.peek(KEY(messageId)) ?? (await this.load(messageId));
    if (!record) {
      await this.reports.remove(item);
      return;
    }
    const release = Release.decode(Buffer.from(record.release, "base64"));
    const outcome = kind === "delivered" ? ReportOutcome.REPORT_OUTCOME_DELIVERED : kind === "read" ? ReportOutcome.REPORT_OUTCOME_READ : ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED;
    await step("uims.report", { traceparent: release.meta?.trace?.traceparent, attributes: { [Attr.messageId]: messageId, [Attr.outcome]: kind } }, () => this.report(item, messageId, kind, record, release, outcome));
  }

  private async report(item: string, messageId: string, kind: ReportKind, record: InboundRecord, release: Release, outcome: ReportOutcome): Promise<void> {
    try {
      await this.o.broker.report({
        messageId,
        releaseId: release.releaseId,
        attempt: release.meta?.attempt ?? 0,
        outcome,
        failureKind: kind !== "failed" ? FailureKind.FAILURE_KIND_UNSPECIFIED : record.failure?.permanent ? FailureKind.FAILURE_KIND_PERMANENT : FailureKind.FAILURE_KIND_TEMPORARY,
        reason: kind === "failed" ? (record.failure?.reason ?? "not delivered") : "",
        segments: record.segments,
        deliveredBytes: record.deliveredBytes,
        atUnixMs: this.o.clock(),
        trace: release.meta?.trace,
      });
      await this.reports.remove(item);
    } catch (err) {
      const code = errorCode(err);
      // The broker moved on (a newer attempt, a final state): this report has nothing to change.
      if (code === grpc.status.FAILED_PRECONDITION || code === grpc.status.PERMISSION_DENIED || code === grpc.status.NOT_FOUND) {
        this.o.logger.warn({ messageId, kind, reason: (err as Error).message }, "report refused by the broker; dropped");
        await this.reports.remove(item);
        return;
      }
      retries.inc({ kind: "report" });
      this.o.logger.info({ messageId, kind, reason: (err as Error).message }, "report not sent; will retry");
      await this.reports.schedule(item, this.o.clock() + backoffMs(3));
    }
  }

  private load(messageId: string): Promise<InboundRecord | null> {
    return this.records.get(KEY(messageId));
  }


  private ttl(record: InboundRecord): number {
    return Math.max(record.expiresAtUnixMs - this.o.clock(), 0) + this.o.retentionMs;
  }
}
