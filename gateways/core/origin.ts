import { randomBytes, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import * as grpc from "@grpc/grpc-js";
import { ReportOutcome } from "../../gen/uims/broker/v1/broker";
import { MetaInformation, Payload, Release } from "../../gen/uims/common/v1/message";
import type { NotifyRequest } from "../../gen/uims/gateway/v1/gateway";
import { FailureKind, Medium, MessageState, type StatusEvent } from "../../gen/uims/common/v1/types";
import { payloadDigest, payloadSize } from "../../common/crypto/fields";
import { outerDigestValid, releaseSignatureValid } from "../../common/crypto/release";
import type { Keyring, VerifyKeys } from "../../common/crypto/keys";
import { AbortedError, AlreadyExistsError, InvalidArgumentError, relayRefusal } from "../../common/errors";
import type { BrokerClient } from "../../common/mesh/broker-client";
import { errorCode } from "../../common/mesh/peer";
import type { PeerClients } from "../../common/mesh/peers";
import { CasRecords, type Store } from "../../common/store";
import { context, trace, SpanStatusCode, type Span } from "@opentelemetry/api";
import { Attr, SpanKind, startMessageSpan, step, traceparentOf } from "../../common/tracing";
import { mediumName } from "../../common/addresses";
import { messages, retries } from "../../common/metrics";
import { backoffMs } from "./backoff";
import type { AcceptInput, MediumAdapter, SentMessage } from "./types";
import { WorkQueue } from "./work-queue";

/**
 * The originating side of a gateway: phases 1 to 3 for messages its clients send, and the
 * broker's notices about them. A message is written to the store before the broker hears of
 * it and keeps its payload until it is delivered or has definitively failed, so a restarted
 * gateway resumes every message and can re-transmit after a fallback.
 */
interface OutboxRecord extends SentMessage {
  /** IMI as submitted (protobuf, base64). */
  meta: string;
  /**
   * The payload is kept under its own key (PAYLOAD), written once and read for each
   * transmission, so that the record's compare-and-set updates never move content.
   * False once the message is delivered or final and the payload is dropped.
   */
  hasPayload: boolean;
  digest: string;
  /** Current release (protobuf, base64). */
  release?: string;
  attempt: number;
  confirmed: boolean;
  transmitted: boolean;
  tries: number;
  /** When transmission of the current attempt first failed; the gateway gives up on the destination after a while. */
  failingSinceUnixMs: number;
  expiresAtUnixMs: number;
}

const RANK: Record<number, number> = {
  [MessageState.MESSAGE_STATE_ACCEPTED]: 1,
  [MessageState.MESSAGE_STATE_ROUTED]: 2,
  [MessageState.MESSAGE_STATE_TRANSMITTED]: 3,
  [MessageState.MESSAGE_STATE_DELIVERED]: 4,
  [MessageState.MESSAGE_STATE_READ]: 5,
  [MessageState.MESSAGE_STATE_FAILED]: 6,
  [MessageState.MESSAGE_STATE_EXPIRED]: 6,
};

const FINAL = new Set([MessageState.MESSAGE_STATE_READ, MessageState.MESSAGE_STATE_FAILED, MessageState.MESSAGE_STATE_EXPIRED]);

/** Broker refusals that mean "this message cannot be sent", as opposed to "try again". */
const PERMANENT_CODES = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ALREADY_EXISTS,
  grpc.status.UNAUTHENTICATED,
]);

export interface OriginatorOptions {
  nodeId: string;
  medium: Medium;
  store: Store;
  broker: BrokerClient;
  peers: PeerClients;
  k1: Keyring;
  verifyKeys: VerifyKeys;
  adapter: () => MediumAdapter;
  logger: Logger;
  clock: () => number;
  defaultTtlMs: number;
  maxPayloadBytes: number;
  /** How long the destination may stay unreachable before the gateway asks the broker to fall back. */
  unreachableAfterMs: number;
  /** How long sent messages stay queryable after they finish. */
  retentionMs: number;
  /** Transmission deadline, generous for large payloads. */
  transmitTimeoutMs: number;
}

const KEY = (id: string) => `out:${id}`;
/** How long an idempotency key names its message. */
const IDEMPOTENCY_MS = 86_400_000;
/** A key claimed this long ago without a stored message belongs to a send that died. */
const ABANDONED_CLAIM_MS = 30_000;
const PAYLOAD = (id: string) => `out-payload:${id}`;

function eventOf(state: MessageState, fields: Partial<StatusEvent> & { atUnixMs: number }): StatusEvent {
  return { state, medium: Medium.MEDIUM_UNSPECIFIED, failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED, reason: "", attempt: 0, gatewayId: "", ...fields };
}

export function traceparentFor(given: string | undefined): string {
  if (given && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(given)) return given;
  // Trace id and parent id from one draw of randomness (each draw is a system call).
  const ids = randomBytes(24).toString("hex");
  return `00-${ids.slice(0, 32)}-${ids.slice(32)}-01`;
}

/** Payloads accepted here, kept in memory for their first transmission (saves a store read). */
const FRESH_LIMIT = 10_000;

export class Originator {
  private readonly fresh = new Map<string, Payload>();
  private readonly records: CasRecords<OutboxRecord>;
  readonly queue: WorkQueue;

  constructor(private readonly o: OriginatorOptions) {
    this.queue = new WorkQueue(o.store, `out-due:${o.nodeId}`, (id) => this.advance(id), o.logger, o.clock);
    this.records = new CasRecords(o.store);
  }

  /**
   * Takes a message from a client: stores it, gets the broker's release (phases 1 and 2) and
   * answers; transmission (phase 3) continues in the background. A refusal by the broker leaves
   * nothing stored.
   */
  async accept(input: AcceptInput): Promise<{ message: SentMessage; duplicate: boolean }> {
    // The message's root span: every later step, in any process, is its descendant.
    const root = startMessageSpan("uims.send", input.traceparent, { [Attr.sourceMedium]: mediumName(this.o.medium), [Attr.node]: this.o.nodeId });
    try {
      const result = await context.with(trace.setSpan(context.active(), root), () => this.acceptInSpan(input, root));
      root.setAttributes({ [Attr.messageId]: result.message.messageId, [Attr.targetMedium]: mediumName(result.message.medium) });
      messages.inc({ role: "sent", medium: mediumName(this.o.medium), outcome: result.duplicate ? "duplicate" : "accepted" });
      return result;
    } catch (err) {
      messages.inc({ role: "sent", medium: mediumName(this.o.medium), outcome: "refused" });
      root.recordException(err as Error);
      root.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      root.end();
    }
  }

  private async acceptInSpan(input: AcceptInput, root: Span): Promise<{ message: SentMessage; duplicate: boolean }> {
    const size = payloadSize(input.payload);
    if (size > this.o.maxPayloadBytes) throw new InvalidArgumentError("payload", `${size} bytes exceed the limit of ${this.o.maxPayloadBytes}`);
    const now = this.o.clock();
    const messageId = randomUUID();
    if (input.idempotencyKey) {
      const idemKey = `idem:${input.sender || input.senderAddress}:${input.idempotencyKey}`;
      const claim = `${messageId}|${now}`;
      if (!(await this.o.store.setIfAbsent(idemKey, claim, IDEMPOTENCY_MS))) {
        const previous = await this.o.store.get(idemKey);
        const [previousId = "", claimedAt = "0"] = (previous ?? "").split("|");
        const record = previousId ? await this.load(previousId) : null;
        if (record) return { message: this.view(record), duplicate: true };
        // A claim without a message: either another send with this key is being accepted right
        // now, or the process that claimed it died before storing the message. An old claim is
        // taken over, so the client's retry goes through.
        const stale = now - Number(claimedAt) > ABANDONED_CLAIM_MS;
        if (!stale || !(await this.o.store.compareAndSet(idemKey, previous, claim, IDEMPOTENCY_MS))) {
          throw new AbortedError("a message with this idempotency key is still being accepted: retry shortly");
        }
      }
    }
    const traceparent = traceparentOf(root).traceparent || traceparentFor(input.traceparent);
    const meta: MetaInformation = {
      ...MetaInformation.fromPartial({}),
      messageId,
      idempotencyKey: input.idempotencyKey,
      sender: input.sender,
      senderAddress: input.senderAddress,
      recipient: input.recipient,
      sourceMedium: this.o.medium,
      originGatewayId: this.o.nodeId,
      contentType: input.payload.contentType,
      contentSize: size,
      contentDigest: payloadDigest(input.payload),
      attachmentCount: input.payload.attachments.length,
      priority: input.priority,
      subject: input.payload.subject.slice(0, 256),
      trace: { traceparent, tracestate: "" },
      createdAtUnixMs: now,
      expiresAtUnixMs: now + (input.ttlMs || this.o.defaultTtlMs),
    };
    const record: OutboxRecord = {
      messageId,
      sender: input.sender,
      senderAddress: input.senderAddress,
      recipient: input.recipient,
      state: MessageState.MESSAGE_STATE_ACCEPTED,
      medium: Medium.MEDIUM_UNSPECIFIED,
      events: [eventOf(MessageState.MESSAGE_STATE_ACCEPTED, { atUnixMs: now, medium: this.o.medium, gatewayId: this.o.nodeId })],
      segments: 0,
      traceId: traceparent.split("-")[1]!,
      createdAtUnixMs: now,
      meta: Buffer.from(MetaInformation.encode(meta).finish()).toString("base64"),
      hasPayload: true,
      digest: meta.contentDigest.toString("hex"),
      attempt: 0,
      confirmed: false,
      transmitted: false,
      tries: 0,
      failingSinceUnixMs: 0,
      expiresAtUnixMs: meta.expiresAtUnixMs,
    };
    // Written first, with a lease on the work queue: if this process dies before the broker
    // answers, a restart picks the message up again.
    // Independent writes go out together (one round trip).
    await Promise.all([
      this.o.store.setBytes(PAYLOAD(messageId), Payload.encode(input.payload).finish(), this.ttl(record)),
      this.create(record),
      this.queue.schedule(messageId, now + 15_000),
    ]);
    let release: Release;
    try {
      release = await this.o.broker.submit(meta);
    } catch (err) {
      await this.forget(record, input.idempotencyKey ? `idem:${input.sender || input.senderAddress}:${input.idempotencyKey}` : undefined);
      // The broker's reason (unknown recipient, no right, no route) is the client's answer.
      throw relayRefusal(err);
    }
    const released = await this.update(messageId, (r) => {
      if (!r.release) this.applyRelease(r, release, now);
    });
    await this.o.adapter().onStatus(this.view(released ?? record));
    if (this.fresh.size < FRESH_LIMIT) this.fresh.set(messageId, input.payload);
    // Still under the lease recorded before the submission.
    void this.queue.runNow(messageId, true);
    return { message: this.view(released ?? record), duplicate: false };
  }

  async get(messageId: string): Promise<SentMessage | null> {
    const record = await this.load(messageId);
    return record ? this.view(record) : null;
  }

  /** The broker's notice (final delivery notice, read receipt, re-route, failure). */
  async notify(req: NotifyRequest, sessionKey: Buffer): Promise<void> {
    // Usually written last by this process; the update below compares against the store anyway.
    const record = this.records.peek(KEY(req.messageId)) ?? (await this.load(req.messageId));
    const traceparent = record ? MetaInformation.decode(Buffer.from(record.meta, "base64")).trace?.traceparent : undefined;
    await step("uims.notice", { traceparent, attributes: { [Attr.messageId]: req.messageId, "uims.state": MessageState[req.event?.state ?? 0] ?? "", "uims.rerouted": Boolean(req.reroute) } }, () =>
      this.applyNotice(record, req, sessionKey),
    );
  }

  private async applyNotice(record: OutboxRecord | null, req: NotifyRequest, sessionKey: Buffer): Promise<void> {
    if (!record) {
      this.o.logger.warn({ messageId: req.messageId }, "notice for an unknown message ignored");
      return;
    }
    const reroute = req.reroute;
    if (reroute) {
      const meta = reroute.meta;
      if (!meta || meta.messageId !== record.messageId) throw new InvalidArgumentError("reroute.meta", "does not belong to this message");
      if (!releaseSignatureValid(this.o.verifyKeys, reroute) || !outerDigestValid(this.o.k1, reroute, sessionKey)) {
        throw new InvalidArgumentError("reroute", "the release does not verify");
      }
    }
    const now = this.o.clock();
    const updated = await this.update(record.messageId, (r) => {
      if (req.segments > 0) r.segments = req.segments;
      if (reroute && reroute.meta!.attempt > r.attempt && !FINAL.has(r.state)) {
        // The broker's notice names the new route; the failure of the route before it shows in
        // the status as a step of its own.
        const failedAt = req.event?.atUnixMs ?? now;
        this.addEvent(r, eventOf(MessageState.MESSAGE_STATE_FAILED, { atUnixMs: failedAt, medium: r.medium, attempt: r.attempt, failureKind: FailureKind.FAILURE_KIND_TEMPORARY, reason: req.event?.reason ?? "", gatewayId: "" }), false);
        this.applyRelease(r, reroute, now);
        r.transmitted = false;
        r.confirmed = false;
        r.tries = 0;
        r.failingSinceUnixMs = 0;
      }
      if (req.event) this.addEvent(r, req.event);
      if (r.state === MessageState.MESSAGE_STATE_DELIVERED || FINAL.has(r.state)) r.hasPayload = false;
    });
    if (!updated) return;
    if (!updated.hasPayload) await this.o.store.del(PAYLOAD(updated.messageId));
    await this.o.adapter().onStatus(this.view(updated));
    if (reroute && !updated.transmitted && updated.hasPayload) void this.queue.runNow(updated.messageId);
  }

  /** Moves one message forward: (re)submit, confirm, transmit. Run by the work queue. */
  private async advance(messageId: string): Promise<void> {
    // Usually just written by accept() in this process: no need to read it back.
    const record = this.records.peek(KEY(messageId)) ?? (await this.load(messageId));
    if (!record || FINAL.has(record.state) || !record.hasPayload) {
      this.fresh.delete(messageId);
      await this.queue.remove(messageId);
      return;
    }
    const now = this.o.clock();
    if (now >= record.expiresAtUnixMs && !record.release) {
      await this.finish(messageId, MessageState.MESSAGE_STATE_EXPIRED, "expired before the broker released it");
      return;
    }
    try {
      if (!record.release) {
        // Recovery after a crash between storing and the broker's answer.
        const release = await this.o.broker.submit(MetaInformation.decode(Buffer.from(record.meta, "base64")));
        const updated = await this.update(messageId, (r) => {
          if (!r.release) this.applyRelease(r, release, now);
        });
        if (!updated) return;
        Object.assign(record, updated);
      }
      if (record.transmitted) {
        await this.queue.remove(messageId);
        return;
      }
      const release = Release.decode(Buffer.from(record.release!, "base64"));
      const attempt = record.attempt;
      // The broker takes a repeated confirmation as a no-op, so the confirmation is recorded with
      // the transmission (one write) rather than on its own: a retry after a failed transmission
      // merely confirms again.
      if (!record.confirmed) await this.o.broker.confirm({ messageId, releaseId: release.releaseId, attempt });
      const payload = this.fresh.get(messageId) ?? (await this.storedPayload(messageId));
      const meta = release.meta!;
      const segments = await step(
        "uims.transmit",
        {
          traceparent: meta.trace?.traceparent,
          kind: SpanKind.PRODUCER,
          attributes: { [Attr.messageId]: messageId, [Attr.attempt]: record.attempt, [Attr.destination]: meta.destinationGatewayId, [Attr.processor]: meta.processorId, "uims.tries": record.tries },
        },
        () => this.transmit(release, payload, Buffer.from(record.digest, "hex")),
      );
      const at = this.o.clock();
      // A notice may have arrived meanwhile (delivered already, or a re-route to a newer attempt).
      const updated = await this.update(messageId, (r) => {
        if (r.attempt !== attempt) return false;
        r.confirmed = true;
        r.transmitted = true;
        r.tries = 0;
        r.failingSinceUnixMs = 0;
        if (segments > 0) r.segments = segments;
        this.addEvent(r, eventOf(MessageState.MESSAGE_STATE_TRANSMITTED, { atUnixMs: at, medium: r.medium, attempt, gatewayId: meta.destinationGatewayId }));
        return true;
      });
      this.fresh.delete(messageId);
      if (updated?.attempt === attempt) await this.queue.remove(messageId);
      if (updated) await this.o.adapter().onStatus(this.view(updated));
    } catch (err) {
      await this.onFailure(record, err);
    }
  }

  private async transmit(release: Release, payload: Payload, digest: Buffer): Promise<number> {
    const meta = release.meta!;
    const message = { release, payload, convertedBy: "", segments: 0 };
    if (meta.processorId) {
      const ack = await this.o.peers.processor(meta.processorId, meta.processorEndpoint).transmit(message, digest, this.o.transmitTimeoutMs);
      return ack.segments;
    }
    await this.o.peers.gateway(meta.destinationGatewayId, meta.destinationEndpoint).transmit(message, digest, this.o.transmitTimeoutMs);
    return 0;
  }

  private async onFailure(record: OutboxRecord, err: unknown): Promise<void> {
    const code = errorCode(err);
    const reason = (err as { details?: string }).details || (err as Error).message;
    const now = this.o.clock();
    if (!record.release) {
      if (code !== undefined && PERMANENT_CODES.has(code)) {
        await this.finish(record.messageId, MessageState.MESSAGE_STATE_FAILED, `refused by the broker: ${reason}`);
        return;
      }
    } else if (code !== undefined && PERMANENT_CODES.has(code) && code !== grpc.status.RESOURCE_EXHAUSTED) {
      const refuser = Release.decode(Buffer.from(record.release, "base64")).meta?.processorId ? "processor" : "destination";
      this.o.logger.warn({ messageId: record.messageId, reason }, `${refuser} refused the message`);
      await this.giveUp(record, FailureKind.FAILURE_KIND_PERMANENT, `refused by the ${refuser}: ${reason}`);
      return;
    }
    const attempt = record.attempt;
    const updated = await this.update(record.messageId, (r) => {
      if (r.attempt !== attempt || r.transmitted) return false;
      r.tries++;
      if (!r.failingSinceUnixMs) r.failingSinceUnixMs = now;
      return true;
    });
    // Gone, re-routed or transmitted meanwhile: nothing left to retry here.
    if (!updated || updated.attempt !== attempt || updated.transmitted) return;
    if (updated.release && now - updated.failingSinceUnixMs >= this.o.unreachableAfterMs) {
      await this.giveUp(updated, FailureKind.FAILURE_KIND_TEMPORARY, `destination unreachable: ${reason}`);
      return;
    }
    const delay = backoffMs(updated.tries);
    retries.inc({ kind: "transmit" });
    this.o.logger.info({ messageId: record.messageId, tries: updated.tries, retryInMs: delay, reason }, "transmission failed; will retry");
    await this.queue.schedule(record.messageId, now + delay);
  }

  /** Asks the broker to fall back (temporary) or to fail the message (permanent). */
  private async giveUp(record: OutboxRecord, kind: FailureKind, reason: string): Promise<void> {
    const release = Release.decode(Buffer.from(record.release!, "base64"));
    const attempt = record.attempt;
    try {
      await this.o.broker.report({
        messageId: record.messageId,
        releaseId: release.releaseId,
        attempt,
        outcome: ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED,
        failureKind: kind,
        reason,
        segments: 0,
        deliveredBytes: 0,
        atUnixMs: this.o.clock(),
        trace: release.meta?.trace,
      });
      // The broker answers with a notice: a re-route to transmit, or the failure.
      const updated = await this.update(record.messageId, (r) => {
        if (r.attempt !== attempt) return false;
        r.failingSinceUnixMs = 0;
        return true;
      });
      if (updated?.attempt === attempt) await this.queue.remove(record.messageId);
    } catch (err) {
      this.o.logger.warn({ messageId: record.messageId, err: (err as Error).message }, "could not report the failure to the broker; will retry");
      await this.queue.schedule(record.messageId, this.o.clock() + backoffMs(record.tries + 1));
    }
  }

  private async finish(messageId: string, state: MessageState, reason: string): Promise<void> {
    const at = this.o.clock();
    const updated = await this.update(messageId, (r) => {
      this.addEvent(r, eventOf(state, { atUnixMs: at, medium: r.medium, attempt: r.attempt, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason, gatewayId: this.o.nodeId }));
      r.hasPayload = false;
    });
    this.fresh.delete(messageId);
    await this.o.store.del(PAYLOAD(messageId));
    await this.queue.remove(messageId);
    if (updated) await this.o.adapter().onStatus(this.view(updated));
  }

  private applyRelease(record: OutboxRecord, release: Release, now: number): void {
    const meta = release.meta!;
    record.release = Buffer.from(Release.encode(release).finish()).toString("base64");
    record.attempt = meta.attempt;
    record.medium = meta.targetMedium;
    if (meta.attempt === 1) {
      this.addEvent(record, eventOf(MessageState.MESSAGE_STATE_ROUTED, { atUnixMs: now, medium: meta.targetMedium, attempt: 1, gatewayId: meta.destinationGatewayId }));
    }
  }

  /** Adds a step to the history and, unless `history` only, moves the state forward. */
  private addEvent(record: OutboxRecord, event: StatusEvent, moveState = true): void {
    const seen = record.events.some((e) => e.state === event.state && e.attempt === event.attempt && e.atUnixMs === event.atUnixMs);
    if (!seen) record.events.push(event);
    if (!moveState) return;
    if (event.medium !== Medium.MEDIUM_UNSPECIFIED && event.state === MessageState.MESSAGE_STATE_ROUTED) record.medium = event.medium;
    // A fallback (ROUTED on a later attempt) moves the state back; otherwise states only advance.
    const rerouted = event.state === MessageState.MESSAGE_STATE_ROUTED && event.attempt > 1 && !FINAL.has(record.state);
    if (rerouted || (RANK[event.state] ?? 0) > (RANK[record.state] ?? 0)) record.state = event.state;
  }

  private view(r: OutboxRecord): SentMessage {
    return {
      messageId: r.messageId,
      sender: r.sender,
      senderAddress: r.senderAddress,
      recipient: r.recipient,
      state: r.state,
      medium: r.medium,
      events: r.events,
      segments: r.segments,
      traceId: r.traceId,
      createdAtUnixMs: r.createdAtUnixMs,
    };
  }

  private async storedPayload(messageId: string): Promise<Payload> {
    const stored = await this.o.store.getBytes(PAYLOAD(messageId));
    if (stored === null) throw new Error("the payload is missing from the store");
    return Payload.decode(stored);
  }

  private load(messageId: string): Promise<OutboxRecord | null> {
    return this.records.get(KEY(messageId));
  }

  private async create(record: OutboxRecord): Promise<void> {
    if (!(await this.records.create(KEY(record.messageId), record, this.ttl(record)))) {
      throw new AlreadyExistsError(`message id "${record.messageId}" is already in use`);
    }
  }

  /**
   * Changes a record with compare-and-set: the work queue, the broker's notices and the client
   * API race on the same message, and none may undo another's step. `change` returns false to
   * leave the record as it is. Returns the record as stored afterwards (null when there is none).
   */
  private async update(messageId: string, change: (r: OutboxRecord) => boolean | void): Promise<OutboxRecord | null> {
    const result = await this.records.update(KEY(messageId), change, (r) => this.ttl(r));
    return result ? (result.after ?? result.before) : null;
  }

  private ttl(record: OutboxRecord): number {
    return Math.max(record.expiresAtUnixMs - this.o.clock(), 0) + this.o.retentionMs;
  }

  private async forget(record: OutboxRecord, idemKey?: string): Promise<void> {
    this.records.forget(KEY(record.messageId));
    await this.o.store.del(KEY(record.messageId), PAYLOAD(record.messageId), ...(idemKey ? [idemKey] : []));
    await this.queue.remove(record.messageId);
  }
}
