import type { Logger } from "pino";
import type { ExplainRouteRequest, ExplainRouteResponse, GetTransactionResponse, Profile } from "../gen/uims/admin/v1/admin";
import {
  NodeKind,
  ReportOutcome,
  type ConfirmReleaseRequest,
  type ConfirmReleaseResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type RegisterRequest,
  type RegisterResponse,
  type ReportPresenceRequest,
  type ReportPresenceResponse,
  type ReportRequest,
  type ReportResponse,
  type ResolveClientTokenRequest,
  type ResolveClientTokenResponse,
  type SubmitRequest,
  type SubmitResponse,
} from "../gen/uims/broker/v1/broker";
import type { MetaInformation } from "../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState } from "../gen/uims/common/v1/types";
import { isKnownMedium, mediumName, parseRecipient, type Recipient } from "../common/addresses";
import {
  confirmFields,
  heartbeatFields,
  presenceFields,
  registerFields,
  reportFields,
  resolveTokenFields,
  submitFields,
} from "../common/crypto/call-fields";
import { Label } from "../common/crypto/labels";
import { makeRelease, type ReleaseKeys } from "../common/crypto/release";
import type { TscsAuthority } from "../common/crypto/tscs";
import { equalConstantTime } from "../common/crypto/keys";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from "../common/errors";
import { fallbacks } from "../common/metrics";
import { Attr, step } from "../common/tracing";
import type { Accounting } from "./accounting";
import type { Notifier } from "./notifier";
import type { PresenceBook } from "./presence";
import type { ProfileCache } from "./profile-cache";
import type { ProfileDirectory } from "./profiles";
import type { GatewayRegistry, NodeRecord } from "./registry";
import { planRoute, type Route, type RouteInput, type RouteNode } from "./router";
import { decodeMeta, encodeMeta, event, isFinal, statusOf, traceIdOf, type Transaction, type TransactionStore } from "./transactions";

export interface BrokerLimits {
  /** Largest payload a message may announce. */
  maxContentBytes: number;
  /** How long the broker waits for a delivery report on a medium that reports (SMS DLR, e-mail) before it falls back. */
  receiptTimeoutMs: number;
  /** Interval the broker asks nodes to send heartbeats at. */
  heartbeatIntervalMs: number;
}

export interface BrokerProtocolDeps {
  nodeId: string;
  tscs: TscsAuthority;
  releaseKeys: ReleaseKeys;
  profiles: ProfileDirectory;
  /** The same profiles, briefly cached, for the reads every message makes. */
  routingProfiles: ProfileCache;
  registry: GatewayRegistry;
  presence: PresenceBook;
  accounting: Accounting;
  transactions: TransactionStore;
  notifier: Notifier;
  logger: Logger;
  clock: () => number;
  limits: BrokerLimits;
}

const MESSAGE_ID = /^[A-Za-z0-9_-]{8,64}$/;
const ENDPOINT = /^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:]+\]:[0-9]{1,5}$/;
const MAX_SUBJECT = 256;
/** Media whose gateways may report for each other (see account()). */
const REPLICATED_MEDIA: ReadonlySet<Medium> = new Set([Medium.MEDIUM_IM, Medium.MEDIUM_EMAIL]);

/**
 * Phases 1, 2 and 4 of the protocol and the registry calls (patent 0033-0048). Holds no state
 * of its own: everything lives in the store, so any broker replica can take any step.
 */
export class BrokerProtocol {
  constructor(private readonly d: BrokerProtocolDeps) {}

  // Phases 1 and 2.
  async submit(req: SubmitRequest): Promise<SubmitResponse> {
    const meta = req.meta;
    if (!meta) throw new InvalidArgumentError("meta", "is required");
    return step("uims.broker.release", { traceparent: meta.trace?.traceparent, attributes: { [Attr.messageId]: meta.messageId, [Attr.sourceMedium]: mediumName(meta.sourceMedium) } }, async (span) => {
      const response = await this.release(req, meta);
      const routed = response.release?.meta;
      if (routed) span.setAttributes({ [Attr.targetMedium]: mediumName(routed.targetMedium), [Attr.destination]: routed.destinationGatewayId, [Attr.attempt]: routed.attempt, [Attr.processor]: routed.processorId });
      return response;
    });
  }

  private async release(req: SubmitRequest, meta: MetaInformation): Promise<SubmitResponse> {
    // The transaction is read alongside the authentication (one round trip instead of two); it
    // is used only once the caller is authenticated.
    const [caller, existingTxn] = await Promise.all([
      this.d.tscs.authenticate(req.auth, Label.callSubmit, submitFields(meta)),
      MESSAGE_ID.test(meta.messageId) ? this.d.transactions.get(meta.messageId) : Promise.resolve(null),
    ]);
    const now = this.d.clock();
    const recipient = this.validateSubmission(meta, caller, now);
    const origin = await this.d.registry.lookup(caller);
    if (!origin || origin.kind !== "gateway") throw new FailedPreconditionError(`gateway "${caller}" is not registered`);
    if (origin.medium !== meta.sourceMedium) {
      throw new PermissionDeniedError(`gateway "${caller}" serves ${mediumName(origin.medium)}, not ${mediumName(meta.sourceMedium)}`);
    }

    if (existingTxn) return this.resubmit(existingTxn, caller, req.auth!.sessionKey);

    const sender = await this.checkSender(meta);
    const { plan, recipientProfile } = await this.plan(sender, recipient, meta.contentType, []);
    if (!plan.chosen) throw new FailedPreconditionError(`no route to "${meta.recipient}": ${plan.refusal ?? "none usable"}`);
    if (sender?.limits?.maxMessagesPerDay) {
      const count = await this.d.accounting.countSubmission(sender.clientId, now);
      if (count > sender.limits.maxMessagesPerDay) {
        const midnight = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1);
        throw new ResourceExhaustedError(`sender "${sender.clientId}" reached its limit of ${sender.limits.maxMessagesPerDay} messages per day`, midnight - now);
      }
    }

    const routed = this.rewrite(meta, plan.chosen, 1, recipientProfile, now);
    const release = makeRelease(this.d.releaseKeys, routed, req.auth!.sessionKey);
    const txn: Transaction = {
      messageId: meta.messageId,
      meta: encodeMeta(routed),
      releaseIds: [release.releaseId.toString("hex")],
      state: MessageState.MESSAGE_STATE_ROUTED,
      confirmed: false,
      attempt: 1,
      triedMedia: [plan.chosen.medium],
      events: [
        event(MessageState.MESSAGE_STATE_ACCEPTED, { atUnixMs: meta.createdAtUnixMs, medium: meta.sourceMedium, gatewayId: caller }),
        event(MessageState.MESSAGE_STATE_ROUTED, { atUnixMs: now, medium: plan.chosen.medium, attempt: 1, gatewayId: plan.chosen.gateway.nodeId, reason: this.routeReason(plan.chosen) }),
      ],
      segments: 0,
      deadlineUnixMs: this.deadline(plan.chosen, routed, now),
      accounted: false,
      traceId: traceIdOf(meta.trace?.traceparent),
    };
    if (!(await this.d.transactions.create(txn))) {
      const raced = await this.d.transactions.get(meta.messageId);
      if (raced) return this.resubmit(raced, caller, req.auth!.sessionKey);
    }
    return { release };
  }

  /**
   * A retried submission (the answer was lost): the same route is released again with the new
   * C_ack, as long as the originator has not confirmed the release yet.
   */
  private async resubmit(txn: Transaction, caller: string, sessionKey: Buffer): Promise<SubmitResponse> {
    const meta = decodeMeta(txn);
    if (meta.originGatewayId !== caller) throw new AlreadyExistsError(`message id "${txn.messageId}" is already in use`);
    if (txn.confirmed || txn.state !== MessageState.MESSAGE_STATE_ROUTED) {
      throw new AlreadyExistsError(`message "${txn.messageId}" was already released and confirmed`);
    }
    const release = makeRelease(this.d.releaseKeys, meta, sessionKey);
    const result = await this.d.transactions.update(txn.messageId, (t) => {
      if (t.attempt !== txn.attempt) return null;
      t.releaseIds.push(release.releaseId.toString("hex"));
      return t;
    });
    if (!result?.after) throw new AlreadyExistsError(`message "${txn.messageId}" changed while it was resubmitted`);
    return { release };
  }

  // End of phase 2.
  async confirm(req: ConfirmReleaseRequest): Promise<ConfirmReleaseResponse> {
    const caller = await this.d.tscs.authenticate(req.auth, Label.callConfirm, confirmFields(req));
    if (!req.messageId) throw new InvalidArgumentError("message_id", "must not be empty");
    const result = await this.d.transactions.update(req.messageId, (txn) => {
      const meta = decodeMeta(txn);
      if (meta.originGatewayId !== caller) throw new PermissionDeniedError(`gateway "${caller}" did not submit message "${req.messageId}"`);
      this.checkReleaseId(txn, req.releaseId, req.attempt);
      if (txn.confirmed) return null;
      txn.confirmed = true;
      return txn;
    });
    if (!result) throw new NotFoundError(`message "${req.messageId}" is unknown`);
    return { state: (result.after ?? result.before).state };
  }

  // Phase 4.
  report(req: ReportRequest): Promise<ReportResponse> {
    return step("uims.broker.report", { traceparent: req.trace?.traceparent, attributes: { [Attr.messageId]: req.messageId, [Attr.attempt]: req.attempt, [Attr.outcome]: ReportOutcome[req.outcome] ?? String(req.outcome) } }, async (span) => {
      const response = await this.account(req);
      span.setAttribute("uims.state", MessageState[response.state] ?? String(response.state));
      if (response.rerouted) span.setAttribute("uims.rerouted", true);
      return response;
    });
  }

  private async account(req: ReportRequest): Promise<ReportResponse> {
    const caller = await this.d.tscs.authenticate(req.auth, Label.callReport, reportFields(req));
    if (!req.messageId) throw new InvalidArgumentError("message_id", "must not be empty");
    if (![ReportOutcome.REPORT_OUTCOME_DELIVERED, ReportOutcome.REPORT_OUTCOME_READ, ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED].includes(req.outcome)) {
      throw new InvalidArgumentError("outcome", "must be DELIVERED, READ or NOT_DELIVERED");
    }
    const now = this.d.clock();
    const at = req.atUnixMs > 0 && req.atUnixMs <= now + 60_000 ? req.atUnixMs : now;
    let fallback: Route | undefined;
    if (req.outcome === ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED && req.failureKind !== FailureKind.FAILURE_KIND_PERMANENT) {
      // Plan outside the compare-and-set loop: it reads profiles and the registry.
      const txn = await this.d.transactions.get(req.messageId);
      if (txn) fallback = await this.fallbackRoute(txn);
    }
    // Gateways of one medium that share a store are replicas: a client reconnecting to another
    // replica takes its inbox there, and a mail system's bounce may reach any email replica, and
    // that replica reports. It can only know the release ID (checked below) through the
    // destination's store, so the ID stays the capability.
    const reporter = await this.d.registry.lookup(caller);
    let accountedNow = false;
    const result = await this.d.transactions.update(req.messageId, (txn) => {
      const meta = decodeMeta(txn);
      // The originator may report only that it cannot reach the destination (so that the
      // broker falls back); every other report comes from the destination or a replica of it.
      const originGivingUp = meta.originGatewayId === caller && req.outcome === ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED;
      const replica =
        reporter?.kind === "gateway" && reporter.medium === meta.targetMedium && REPLICATED_MEDIA.has(meta.targetMedium) && caller !== meta.originGatewayId;
      if (meta.destinationGatewayId !== caller && !originGivingUp && !replica) {
        throw new PermissionDeniedError(`gateway "${caller}" is not the destination of message "${req.messageId}"`);
      }
      this.checkReleaseId(txn, req.releaseId, req.attempt);
      accountedNow = false;
      const base = { atUnixMs: at, medium: meta.targetMedium, attempt: txn.attempt, gatewayId: caller };
      if (req.segments > 0) txn.segments = req.segments;
      switch (req.outcome) {
        case ReportOutcome.REPORT_OUTCOME_DELIVERED:
          if (txn.state === MessageState.MESSAGE_STATE_DELIVERED || isFinal(txn.state)) return null;
          txn.state = MessageState.MESSAGE_STATE_DELIVERED;
          txn.events.push(event(MessageState.MESSAGE_STATE_DELIVERED, { ...base, reason: req.reason }));
          txn.deadlineUnixMs = meta.expiresAtUnixMs;
          break;
        case ReportOutcome.REPORT_OUTCOME_READ:
          if (txn.state === MessageState.MESSAGE_STATE_READ) return null;
          if (isFinal(txn.state)) return null;
          txn.state = MessageState.MESSAGE_STATE_READ;
          txn.events.push(event(MessageState.MESSAGE_STATE_READ, { ...base, reason: req.reason }));
          break;
        default: {
          const kind = req.failureKind === FailureKind.FAILURE_KIND_PERMANENT ? FailureKind.FAILURE_KIND_PERMANENT : FailureKind.FAILURE_KIND_TEMPORARY;
          // A delivered message can still fail for good when the destination hears so later (a
          // mail system's bounce after its relay took the mail); nothing else undoes a delivery.
          const bounced = txn.state === MessageState.MESSAGE_STATE_DELIVERED && kind === FailureKind.FAILURE_KIND_PERMANENT && !originGivingUp;
          if (isFinal(txn.state) || (txn.state === MessageState.MESSAGE_STATE_DELIVERED && !bounced)) return null;
          txn.events.push(event(MessageState.MESSAGE_STATE_FAILED, { ...base, failureKind: kind, reason: req.reason || "not delivered" }));
          if (fallback) this.applyFallback(txn, meta, fallback, at, `fallback after ${mediumName(meta.targetMedium)} failed: ${req.reason || "not delivered"}`);
          else txn.state = MessageState.MESSAGE_STATE_FAILED;
        }
      }
      if (!txn.accounted && (txn.state === MessageState.MESSAGE_STATE_DELIVERED || txn.state === MessageState.MESSAGE_STATE_READ)) {
        txn.accounted = true;
        accountedNow = true;
      }
      return txn;
    });
    if (!result) throw new NotFoundError(`message "${req.messageId}" is unknown`);
    const after = result.after;
    if (!after) {
      // A repeated report: the replica that took the first one may have died before it queued
      // the notice. Queue it again (idempotent per message and event).
      if (result.before.state === MessageState.MESSAGE_STATE_DELIVERED || isFinal(result.before.state)) await this.notifyLatest(result.before, false);
      return { state: result.before.state, rerouted: false };
    }
    const meta = decodeMeta(result.before);
    const rerouted = after.attempt !== result.before.attempt;
    if (rerouted) fallbacks.inc({ from_medium: mediumName(meta.targetMedium) });
    await Promise.all([
      accountedNow
        ? this.d.accounting.recordDelivery({ sender: meta.sender, medium: meta.targetMedium, bytes: req.deliveredBytes || meta.contentSize, segments: after.segments, atUnixMs: at })
        : undefined,
      this.notifyLatest(after, rerouted),
    ]);
    return { state: after.state, rerouted };
  }

  /** Deadlines: an attempt without a report falls back, a message past its expiry expires. */
  async processDeadlines(limit = 100): Promise<number> {
    const now = this.d.clock();
    let handled = 0;
    for (const messageId of await this.d.transactions.due(now, limit)) {
      if (!(await this.d.transactions.claimDue(messageId))) continue;
      try {
        await this.expireOrFallBack(messageId, now);
        handled++;
      } catch (err) {
        this.d.logger.warn({ err, messageId }, "deadline handling failed; retrying later");
        await this.d.transactions.reschedule(messageId, now + 5_000);
      }
    }
    return handled;
  }

  private async expireOrFallBack(messageId: string, now: number): Promise<void> {
    const current = await this.d.transactions.get(messageId);
    if (!current || isFinal(current.state)) return;
    const meta = decodeMeta(current);
    const expired = now >= meta.expiresAtUnixMs;
    const fallback = expired || current.state === MessageState.MESSAGE_STATE_DELIVERED ? undefined : await this.fallbackRoute(current);
    const result = await this.d.transactions.update(messageId, (txn) => {
      if (isFinal(txn.state) || txn.attempt !== current.attempt) return null;
      const m = decodeMeta(txn);
      const base = { atUnixMs: now, medium: m.targetMedium, attempt: txn.attempt, gatewayId: m.destinationGatewayId };
      // Delivered and never read: nothing is left to wait for once the message's lifetime ends.
      // Claiming the deadline took it off the schedule; writing a new deadline here would put it
      // back forever (a read receipt, if one comes, still closes the transaction).
      if (txn.state === MessageState.MESSAGE_STATE_DELIVERED) return null;
      if (expired) {
        txn.state = MessageState.MESSAGE_STATE_EXPIRED;
        txn.events.push(event(MessageState.MESSAGE_STATE_EXPIRED, { ...base, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "not delivered before the message expired" }));
      } else if (fallback) {
        txn.events.push(event(MessageState.MESSAGE_STATE_FAILED, { ...base, failureKind: FailureKind.FAILURE_KIND_TEMPORARY, reason: "no delivery report by the deadline" }));
        this.applyFallback(txn, m, fallback, now, `fallback: no delivery report from ${mediumName(m.targetMedium)} by the deadline`);
      } else {
        // Nothing else to try: keep waiting for a report until the message expires.
        txn.deadlineUnixMs = m.expiresAtUnixMs;
      }
      return txn;
    });
    if (result?.after && (result.after.state !== result.before.state || result.after.attempt !== result.before.attempt)) {
      const rerouted = result.after.attempt !== result.before.attempt;
      if (rerouted) fallbacks.inc({ from_medium: mediumName(meta.targetMedium) });
      await this.notifyLatest(result.after, rerouted);
    } else if (result?.after && !isFinal(result.after.state)) {
      await this.d.transactions.reschedule(messageId, result.after.deadlineUnixMs);
    }
  }

  private applyFallback(txn: Transaction, meta: MetaInformation, route: Route, now: number, reason: string): void {
    const attempt = txn.attempt + 1;
    const routed = this.rewrite(meta, route, attempt, null, now);
    txn.meta = encodeMeta(routed);
    txn.attempt = attempt;
    txn.releaseIds = [];
    txn.confirmed = false;
    txn.state = MessageState.MESSAGE_STATE_ROUTED;
    txn.triedMedia.push(route.medium);
    txn.deadlineUnixMs = this.deadline(route, routed, now);
    txn.events.push(event(MessageState.MESSAGE_STATE_ROUTED, { atUnixMs: now, medium: route.medium, attempt, gatewayId: route.gateway.nodeId, reason }));
  }

  private async fallbackRoute(txn: Transaction): Promise<Route | undefined> {
    const meta = decodeMeta(txn);
    const recipient = parseRecipient(meta.recipient);
    if ("error" in recipient || recipient.kind === "address") return undefined;
    const sender = meta.sender ? await this.d.routingProfiles.get(meta.sender) : null;
    const { plan } = await this.plan(sender, recipient, meta.contentType, txn.triedMedia);
    return plan.chosen;
  }

  /** Sends the newest event of a transaction to the originating gateway. */
  private async notifyLatest(txn: Transaction, rerouted: boolean): Promise<void> {
    const meta = decodeMeta(txn);
    const latest = txn.events[txn.events.length - 1]!;
    await this.d.notifier.enqueue({
      messageId: txn.messageId,
      originGatewayId: meta.originGatewayId,
      seq: txn.events.length,
      event: latest,
      segments: txn.segments,
      rerouteAttempt: rerouted ? txn.attempt : 0,
      traceparent: meta.trace?.traceparent ?? "",
    });
  }

  private checkReleaseId(txn: Transaction, releaseId: Uint8Array, attempt: number): void {
    if (attempt !== txn.attempt) throw new FailedPreconditionError(`attempt ${attempt} is not current (the message is on attempt ${txn.attempt})`);
    const given = Buffer.from(releaseId);
    let match = false;
    for (const id of txn.releaseIds) if (equalConstantTime(Buffer.from(id, "hex"), given)) match = true;
    if (!match) throw new PermissionDeniedError("release id does not match the broker's");
  }

  // Registry and presence.
  async register(req: RegisterRequest): Promise<RegisterResponse> {
    const caller = await this.d.tscs.authenticate(req.auth, Label.callRegister, registerFields(req));
    if (req.nodeId !== caller) throw new PermissionDeniedError(`node "${caller}" may not register as "${req.nodeId}"`);
    if (req.kind !== NodeKind.NODE_KIND_GATEWAY && req.kind !== NodeKind.NODE_KIND_PROCESSOR) throw new InvalidArgumentError("kind", "must be GATEWAY or PROCESSOR");
    if (req.kind === NodeKind.NODE_KIND_GATEWAY && !isKnownMedium(req.medium)) throw new InvalidArgumentError("medium", "a gateway must name its medium");
    if (!ENDPOINT.test(req.endpoint)) throw new InvalidArgumentError("endpoint", `"${req.endpoint}" is not host:port`);
    await this.d.registry.register({
      nodeId: req.nodeId,
      kind: req.kind === NodeKind.NODE_KIND_GATEWAY ? "gateway" : "processor",
      medium: req.kind === NodeKind.NODE_KIND_GATEWAY ? req.medium : Medium.MEDIUM_UNSPECIFIED,
      endpoint: req.endpoint,
      capacity: req.capacity,
      version: req.version,
    });
    this.d.logger.info({ nodeId: req.nodeId, endpoint: req.endpoint, medium: mediumName(req.medium) }, "node registered");
    return { heartbeatIntervalMs: this.d.limits.heartbeatIntervalMs, brokerId: this.d.nodeId };
  }

  async heartbeat(req: HeartbeatRequest): Promise<HeartbeatResponse> {
    const caller = await this.d.tscs.authenticate(req.auth, Label.callHeartbeat, heartbeatFields(req));
    if (req.nodeId !== caller) throw new PermissionDeniedError(`node "${caller}" may not send heartbeats for "${req.nodeId}"`);
    return { known: await this.d.registry.heartbeat(req.nodeId, { inFlight: req.inFlight, healthy: req.healthy, detail: req.detail }) };
  }

  async reportPresence(req: ReportPresenceRequest): Promise<ReportPresenceResponse> {
    const caller = await this.d.tscs.authenticate(req.auth, Label.callPresence, presenceFields(req));
    if (req.gatewayId !== caller) throw new PermissionDeniedError(`gateway "${caller}" may not report presence for "${req.gatewayId}"`);
    const node = await this.d.registry.get(caller);
    if (!node || node.medium !== Medium.MEDIUM_IM) throw new PermissionDeniedError(`only registered im gateways report presence`);
    if (!req.clientId) throw new InvalidArgumentError("client_id", "must not be empty");
    await this.d.presence.set(req.clientId, caller, req.online);
    return {};
  }

  async resolveClientToken(req: ResolveClientTokenRequest): Promise<ResolveClientTokenResponse> {
    await this.d.tscs.authenticate(req.auth, Label.callResolveToken, resolveTokenFields(req));
    if (req.tokenSha256.length !== 32) throw new InvalidArgumentError("token_sha256", "must be 32 bytes");
    const clientId = await this.d.profiles.resolveToken(req.tokenSha256);
    if (!clientId) throw new NotFoundError("no client has this token");
    return { clientId };
  }

  // Admin views.
  async explainRoute(req: ExplainRouteRequest): Promise<ExplainRouteResponse> {
    const recipient = parseRecipient(req.recipient);
    if ("error" in recipient) throw new InvalidArgumentError("recipient", recipient.error);
    const sender = req.sender ? await this.d.profiles.require(req.sender) : null;
    const { plan } = await this.plan(sender, recipient, req.contentType || "text/plain; charset=utf-8", []);
    return {
      chosen: plan.chosen ? plan.candidates.find((c) => c.usable && c.medium === plan.chosen!.medium) : undefined,
      candidates: plan.candidates,
      refusal: plan.refusal ?? "",
    };
  }

  async getTransaction(messageId: string): Promise<GetTransactionResponse> {
    const txn = await this.d.transactions.get(messageId);
    if (!txn) throw new NotFoundError(`message "${messageId}" is unknown`);
    const meta = decodeMeta(txn);
    return { status: statusOf(txn), sender: meta.sender || meta.senderAddress, destinationGatewayId: meta.destinationGatewayId, deadlineUnixMs: txn.deadlineUnixMs };
  }

  // Helpers.
  private validateSubmission(meta: MetaInformation, caller: string, now: number): Recipient {
    if (!MESSAGE_ID.test(meta.messageId)) throw new InvalidArgumentError("meta.message_id", "must be 8 to 64 of [A-Za-z0-9_-]");
    if (meta.originGatewayId !== caller) throw new PermissionDeniedError(`gateway "${caller}" may not submit as "${meta.originGatewayId}"`);
    if (!isKnownMedium(meta.sourceMedium)) throw new InvalidArgumentError("meta.source_medium", "unknown medium");
    const recipient = parseRecipient(meta.recipient);
    if ("error" in recipient) throw new InvalidArgumentError("meta.recipient", recipient.error);
    if (meta.contentDigest.length !== 32) throw new InvalidArgumentError("meta.content_digest", "must be a 32-byte SHA-256");
    if (meta.contentSize > this.d.limits.maxContentBytes) {
      throw new ResourceExhaustedError(`meta.content_size: ${meta.contentSize} bytes exceeds the limit of ${this.d.limits.maxContentBytes}`);
    }
    if ([...meta.subject].length > MAX_SUBJECT) throw new InvalidArgumentError("meta.subject", `must be at most ${MAX_SUBJECT} characters`);
    if (meta.expiresAtUnixMs <= now) throw new InvalidArgumentError("meta.expires_at_unix_ms", "is in the past");
    if (meta.createdAtUnixMs <= 0 || meta.createdAtUnixMs > now + 60_000) throw new InvalidArgumentError("meta.created_at_unix_ms", "must be a current Unix time in milliseconds");
    const routingSet =
      meta.targetMedium !== Medium.MEDIUM_UNSPECIFIED ||
      meta.targetAddress !== "" ||
      meta.destinationGatewayId !== "" ||
      meta.destinationEndpoint !== "" ||
      meta.conversion !== undefined ||
      meta.processorId !== "" ||
      meta.processorEndpoint !== "" ||
      meta.attempt !== 0 ||
      meta.recipientId !== "" ||
      meta.releasedAtUnixMs !== 0;
    if (routingSet) throw new InvalidArgumentError("meta.target_medium", "the routing block is set by the broker and must be empty in a submission");
    if (meta.sourceMedium === Medium.MEDIUM_IM && !meta.sender) throw new InvalidArgumentError("meta.sender", "an im message needs a sending profile");
    return recipient;
  }

  private async checkSender(meta: MetaInformation): Promise<Profile | null> {
    if (!meta.sender) return null;
    const sender = await this.d.routingProfiles.get(meta.sender);
    if (!sender) throw new PermissionDeniedError(`sender "${meta.sender}" has no profile`);
    const maxBytes = sender.limits?.maxPayloadBytes ?? 0;
    if (maxBytes > 0 && meta.contentSize > maxBytes) {
      throw new ResourceExhaustedError(`sender "${sender.clientId}" may send at most ${maxBytes} bytes per message`);
    }
    return sender;
  }

  private async plan(sender: Profile | null, recipient: Recipient, contentType: string, exclude: Medium[]) {
    let recipientProfile: Profile | null = null;
    const profileId = recipient.kind === "profile" ? recipient.clientId : recipient.medium === Medium.MEDIUM_IM ? recipient.address : "";
    if (profileId) {
      recipientProfile = await this.d.routingProfiles.get(profileId);
      if (!recipientProfile) throw new NotFoundError(`recipient "${profileId}" is unknown`);
    }
    const [presence, gateways, processors] = await Promise.all([
      recipientProfile ? this.d.presence.get(recipientProfile.clientId) : Promise.resolve(null),
      this.d.registry.healthyNodes("gateway"),
      this.d.registry.healthyNodes("processor"),
    ]);
    const byMedium = new Map<Medium, RouteNode[]>();
    for (const g of gateways) byMedium.set(g.medium, [...(byMedium.get(g.medium) ?? []), g]);
    const input: RouteInput = {
      nowUnixMs: this.d.clock(),
      sender,
      recipient,
      recipientProfile,
      presence,
      sourceContentType: contentType,
      excludeMedia: exclude,
      gateways: (medium) => byMedium.get(medium) ?? [],
      processors: processors as NodeRecord[],
    };
    return { plan: planRoute(input), recipientProfile };
  }

  private rewrite(meta: MetaInformation, route: Route, attempt: number, recipientProfile: Profile | null, now: number): MetaInformation {
    return {
      ...meta,
      targetMedium: route.medium,
      targetAddress: route.address,
      destinationGatewayId: route.gateway.nodeId,
      destinationEndpoint: route.gateway.endpoint,
      conversion: route.conversion,
      processorId: route.processor?.nodeId ?? "",
      processorEndpoint: route.processor?.endpoint ?? "",
      attempt,
      recipientId: recipientProfile?.clientId ?? meta.recipientId,
      releasedAtUnixMs: now,
    };
  }

  private routeReason(route: Route): string {
    const via = route.conversion ? ` via ${route.processor?.nodeId} (${route.conversion.targetContentType})` : "";
    return `${mediumName(route.medium)} to ${route.address}${via}${route.immediate ? "" : " (recipient offline: waits in the inbox)"}`;
  }

  /** When the current attempt counts as failed without a report. */
  private deadline(route: Route, meta: MetaInformation, now: number): number {
    if (route.medium === Medium.MEDIUM_IM) return meta.expiresAtUnixMs;
    return Math.min(meta.expiresAtUnixMs, now + this.d.limits.receiptTimeoutMs);
  }
}
