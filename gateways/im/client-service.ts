import type * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  AckKind,
  type ClientServiceServer,
  type InboxRequest,
  type InboxResponse,
  type SendRequest,
  type WatchStatusRequest,
  type WatchStatusResponse,
} from "../../gen/uims/client/v1/client";
import { Priority } from "../../gen/uims/common/v1/types";
import { status as grpcStatus } from "@grpc/grpc-js";
import { InvalidArgumentError, NotFoundError, toCallError, toServiceError } from "../../common/errors";
import { refusals, streamsOpen } from "../../common/metrics";
import { InFlight, unary } from "../../common/mesh/multiplex";
import type { BrokerClient } from "../../common/mesh/broker-client";
import type { Originator } from "../core/origin";
import type { ImAdapter } from "./adapter";
import type { ClientAuthenticator } from "./client-auth";
import type { ClientRateLimiter } from "./rate-limit";
import { cursorAfter, type InboxEntry, type Inboxes } from "./inbox";
import { toMessageStatus, type StatusWatchers } from "./status-watchers";

const DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8";
const MAX_TTL_SECONDS = 30 * 86_400;
const PAGE = 200;

export interface ClientServiceDeps {
  nodeId: string;
  auth: ClientAuthenticator;
  origin: Originator;
  inboxes: Inboxes;
  watchers: StatusWatchers;
  adapter: ImAdapter;
  broker: BrokerClient;
  rateLimiter: ClientRateLimiter;
  logger: Logger;
  inFlight: InFlight;
}

/** The public client API (uims.client.v1.ClientService). */
export function createClientService(d: ClientServiceDeps): ClientServiceServer {
  const refused = (rpc: string) => (err: unknown) => {
    refusals.inc({ rpc, code: grpcStatus[toCallError(err).code] ?? "UNKNOWN" });
    d.logger.info({ rpc, reason: (err as Error).message }, "client call refused");
  };
  const presence = new PresenceReporter(d);

  return {
    send: unary(async (req: SendRequest, metadata) => {
      const clientId = await d.auth.authenticate(metadata);
      await d.rateLimiter.take(clientId);
      if (!req.recipient.trim()) throw new InvalidArgumentError("recipient", "must not be empty");
      const payload = req.payload;
      if (!payload) throw new InvalidArgumentError("payload", "is required");
      if (payload.body.length === 0 && payload.attachments.length === 0) throw new InvalidArgumentError("payload.body", "a message needs a body or attachments");
      payload.attachments.forEach((a, i) => {
        if (!a.filename || /[/\\]/.test(a.filename)) throw new InvalidArgumentError(`payload.attachments[${i}].filename`, "must be a plain file name");
      });
      if (req.ttlSeconds > MAX_TTL_SECONDS) throw new InvalidArgumentError("ttl_seconds", `must be at most ${MAX_TTL_SECONDS}`);
      if (req.idempotencyKey.length > 128) throw new InvalidArgumentError("idempotency_key", "must be at most 128 characters");
      if (!Object.values(Priority).includes(req.priority) || req.priority === Priority.UNRECOGNIZED) throw new InvalidArgumentError("priority", "unknown priority");
      const traceparent = metadata.get("traceparent")[0];
      const { message, duplicate } = await d.origin.accept({
        sender: clientId,
        senderAddress: `im:${clientId}`,
        recipient: req.recipient.trim(),
        payload: { ...payload, contentType: payload.contentType || DEFAULT_CONTENT_TYPE },
        idempotencyKey: req.idempotencyKey,
        priority: req.priority || Priority.PRIORITY_NORMAL,
        ttlMs: req.ttlSeconds * 1000,
        ...(typeof traceparent === "string" ? { traceparent } : {}),
      });
      return { messageId: message.messageId, status: toMessageStatus(message), duplicate };
    }, d.inFlight, refused("Send")),

    inbox: (call: grpc.ServerWritableStream<InboxRequest, InboxResponse>) => {
      void serveInbox(d, presence, call).catch((err: unknown) => {
        refused("Inbox")(err);
        if (!call.destroyed) call.destroy(toServiceError(err));
      });
    },

    acknowledge: unary(async (req, metadata) => {
      const clientId = await d.auth.authenticate(metadata);
      if (!req.messageId) throw new InvalidArgumentError("message_id", "must not be empty");
      if (req.kind !== AckKind.ACK_KIND_DELIVERED && req.kind !== AckKind.ACK_KIND_READ) throw new InvalidArgumentError("kind", "must be DELIVERED or READ");
      const cursor = await d.inboxes.cursorOf(clientId, req.messageId);
      if (cursor === null) throw new NotFoundError(`message "${req.messageId}" is not in your inbox`);
      // Acknowledged (or read) means delivered: a reconnect without a cursor resumes after it.
      await d.inboxes.advance(clientId, cursor);
      if (req.kind === AckKind.ACK_KIND_READ) await d.adapter.read(req.messageId);
      else await d.adapter.delivered(req.messageId);
      return {};
    }, d.inFlight, refused("Acknowledge")),

    getStatus: unary(async (req, metadata) => {
      const clientId = await d.auth.authenticate(metadata);
      if (!req.messageId) throw new InvalidArgumentError("message_id", "must not be empty");
      const message = await d.origin.get(req.messageId);
      if (!message || message.sender !== clientId) throw new NotFoundError(`you sent no message "${req.messageId}" through this gateway`);
      return { status: toMessageStatus(message) };
    }, d.inFlight, refused("GetStatus")),

    watchStatus: (call: grpc.ServerWritableStream<WatchStatusRequest, WatchStatusResponse>) => {
      void serveWatch(d, call).catch((err: unknown) => {
        refused("WatchStatus")(err);
        if (!call.destroyed) call.destroy(toServiceError(err));
      });
    },
  };
}

async function serveWatch(d: ClientServiceDeps, call: grpc.ServerWritableStream<WatchStatusRequest, WatchStatusResponse>): Promise<void> {
  const clientId = await d.auth.authenticate(call.metadata);
  const ids = new Set(call.request.messageIds);
  const unwatch = d.watchers.watch(clientId, (status) => {
    if (ids.size === 0 || ids.has(status.messageId)) call.write({ status });
  });
  streamsOpen.inc({ kind: "watch_status" });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    unwatch();
    streamsOpen.dec({ kind: "watch_status" });
  };
  call.on("cancelled", stop);
  call.on("close", stop);
  for (const id of ids) {
    const message = await d.origin.get(id);
    if (message && message.sender === clientId) call.write({ status: toMessageStatus(message) });
  }
}

/**
 * Sends the backlog after the cursor, then live messages, without gaps or repeats: live
 * messages that arrive while the backlog is being read are held and written after it, skipping
 * any the backlog already contained.
 */
async function serveInbox(d: ClientServiceDeps, presence: PresenceReporter, call: grpc.ServerWritableStream<InboxRequest, InboxResponse>): Promise<void> {
  const clientId = await d.auth.authenticate(call.metadata);
  const manual = call.request.manualAck;
  let last = call.request.afterCursor || (await d.inboxes.deliveredPosition(clientId));
  if (call.request.afterCursor && !/^\d+-\d+$/.test(call.request.afterCursor)) throw new InvalidArgumentError("after_cursor", "is not a cursor from this inbox");
  let live = false;
  const held: InboxEntry[] = [];
  let closed = false;
  const write = async (entry: InboxEntry): Promise<void> => {
    if (closed || (last && !cursorAfter(entry.cursor, last))) return;
    last = entry.cursor;
    call.write({ message: entry.message, cursor: entry.cursor });
    if (!manual) {
      await d.inboxes.advance(clientId, entry.cursor);
      await d.adapter.delivered(entry.message.messageId);
    }
  };
  let chain = Promise.resolve();
  const enqueue = (entry: InboxEntry) => {
    chain = chain.then(() => write(entry)).catch((err: unknown) => d.logger.warn({ err, clientId }, "inbox write failed"));
  };
  const unsubscribe = d.inboxes.subscribe(clientId, (entry) => (live ? enqueue(entry) : held.push(entry)));
  streamsOpen.inc({ kind: "inbox" });
  const end = () => {
    if (closed) return;
    closed = true;
    streamsOpen.dec({ kind: "inbox" });
    unsubscribe();
    presence.left(clientId);
  };
  call.on("cancelled", end);
  call.on("close", end);
  call.on("error", end);
  presence.joined(clientId);
  for (;;) {
    const page = await d.inboxes.read(clientId, last, PAGE);
    for (const entry of page) await write(entry);
    if (page.length < PAGE || closed) break;
  }
  live = true;
  for (const entry of held.splice(0)) enqueue(entry);
}

/** Tells the broker when a client's first stream opens and its last one closes. */
class PresenceReporter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly d: ClientServiceDeps) {}

  joined(clientId: string): void {
    const n = (this.counts.get(clientId) ?? 0) + 1;
    this.counts.set(clientId, n);
    if (n === 1) this.report(clientId, true);
  }

  left(clientId: string): void {
    const n = (this.counts.get(clientId) ?? 1) - 1;
    if (n <= 0) {
      this.counts.delete(clientId);
      this.report(clientId, false);
    } else this.counts.set(clientId, n);
  }

  private report(clientId: string, online: boolean): void {
    this.d.logger.debug({ clientId, online }, "presence changed");
    this.d.broker.reportPresence({ gatewayId: this.d.nodeId, clientId, online }).catch((err: unknown) => {
      this.d.logger.warn({ clientId, online, reason: (err as Error).message }, "presence not reported");
    });
  }
}
