import { status as grpcStatus } from "@grpc/grpc-js";
import { AckKind, type InboxMessage, type InboxResponse } from "../../gen/uims/client/v1/client";
import { errorCode } from "../../common/mesh/peer";
import { connectClient, waitForReady, type Context } from "../connect";
import { CliError, describeError } from "../errors";
import { bold, bytes, dim, formatTime, mediumLabel, yellow } from "../format";
import { processAlive, resolveClient, type ClientOptions } from "../state";

export interface InboxOptions extends ClientOptions {
  fromStart?: boolean;
  after?: string;
  manualAck?: boolean;
  read?: boolean;
}

/** Refusals that a reconnect cannot cure. */
const PERMANENT = new Set<number>([
  grpcStatus.UNAUTHENTICATED,
  grpcStatus.PERMISSION_DENIED,
  grpcStatus.INVALID_ARGUMENT,
  grpcStatus.NOT_FOUND,
  grpcStatus.UNIMPLEMENTED,
]);

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;
// Per connection attempt, so that a gateway that stays away shows as repeated attempts.
const CONNECT_WAIT_MS = 2_000;

/** Exponential backoff with jitter, so that many clients of a restarted gateway do not return in step. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt));
  return Math.round(base * (0.8 + 0.4 * random()));
}

function isText(contentType: string): boolean {
  return /^text\//i.test(contentType) || contentType === "";
}

export function formatInboxMessage(r: InboxResponse, now?: number): string {
  const m: InboxMessage | undefined = r.message;
  if (!m) return dim(`(empty entry, cursor ${r.cursor})`);
  const sender = m.sender || m.senderAddress || "(unknown sender)";
  const lines = [`${formatTime(m.sentAtUnixMs, now)}  ${bold(sender)}  ${dim(`via ${mediumLabel(m.sourceMedium)} · id ${m.messageId} · cursor ${r.cursor}`)}`];
  const p = m.payload;
  if (p?.subject) lines.push(`  ${dim("subject:")} ${p.subject}`);
  if (p) {
    if (isText(p.contentType)) for (const line of p.body.toString("utf8").replace(/\r?\n$/, "").split("\n")) lines.push(`  ${line}`);
    else lines.push(`  ${dim(`(${p.contentType}, ${bytes(p.body.length)})`)}`);
    if (p.attachments.length > 0) {
      const list = p.attachments.map((a) => `${a.filename || "(unnamed)"} ${dim(`${a.contentType}, ${bytes(a.data.length)}`)}`).join("; ");
      lines.push(`  ${dim(`${p.attachments.length} attachment${p.attachments.length === 1 ? "" : "s"}:`)} ${list}`);
    }
  }
  return lines.join("\n");
}

export async function inbox(opts: InboxOptions, ctx: Context): Promise<void> {
  if (opts.fromStart && opts.after !== undefined) throw new CliError("--from-start and --after exclude each other");
  if (opts.after !== undefined && !/^\d+-\d+$/.test(opts.after)) throw new CliError(`--after "${opts.after}" is not a cursor (they look like 1717171717171-0)`);
  const target = resolveClient(opts, ctx.stateDir);
  // "0-0" is before every entry: the whole retained inbox. Empty: what was not yet delivered.
  let cursor = opts.fromStart ? "0-0" : (opts.after ?? "");
  const manualAck = opts.manualAck === true;
  const who = target.clientId ? `${target.clientId}'s inbox` : "inbox";
  const where = target.gatewayNodeId ? `${target.gatewayNodeId} (${target.endpoint})` : target.endpoint;

  const conn = connectClient(target, ctx);
  let stopped = false;
  let cancel: () => void = () => undefined;
  let wake: () => void = () => undefined;
  const onSignal = () => {
    stopped = true;
    cancel();
    wake();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const acknowledge = async (messageId: string, kind: AckKind) => {
    try {
      await conn.call((c) => c.acknowledge, { messageId, kind });
    } catch (err) {
      process.stderr.write(yellow(`acknowledging ${messageId} failed: ${describeError(err).message}\n`));
    }
  };

  let attempt = 0;
  let connectedBefore = false;
  try {
    while (!stopped) {
      let failure: unknown;
      try {
        await waitForReady(conn.client, Math.min(ctx.timeoutMs, CONNECT_WAIT_MS));
      } catch (err) {
        failure = err;
      }
      if (failure === undefined && !stopped) {
        process.stderr.write(dim(connectedBefore ? `reconnected, resuming after ${cursor || "the last delivered message"}\n` : `${who} on ${where}: waiting for messages (Ctrl-C to stop)\n`));
        connectedBefore = true;
        // A live stream has no deadline: it is meant to stay open. Keepalive pings (see
        // connect.ts) notice a dead gateway within seconds instead.
        const stream = conn.client.inbox({ afterCursor: cursor, manualAck }, conn.metadata());
        cancel = () => stream.cancel();
        let acks = Promise.resolve();
        failure = await new Promise<unknown>((done) => {
          stream.on("data", (r: InboxResponse) => {
            attempt = 0;
            cursor = r.cursor || cursor;
            process.stdout.write(`${formatInboxMessage(r)}\n`);
            const id = r.message?.messageId;
            if (!id) return;
            // In order, one at a time: READ must not overtake DELIVERED.
            if (manualAck) acks = acks.then(() => acknowledge(id, AckKind.ACK_KIND_DELIVERED));
            if (opts.read) acks = acks.then(() => acknowledge(id, AckKind.ACK_KIND_READ));
          });
          stream.on("error", (err) => done(err));
          stream.on("end", () => done(new Error("the gateway closed the stream")));
        });
        await acks;
      }
      if (stopped) break;
      if (errorCode(failure) !== undefined && PERMANENT.has(errorCode(failure)!)) throw failure;
      // A restarted local mesh listens on new ports with new tokens: nothing to resume here.
      if (target.ownerPid !== undefined && !processAlive(target.ownerPid)) throw new CliError("the local mesh has stopped", "start it again with `make run`, then run this command again");
      const wait = backoffMs(attempt++);
      const reason = describeError(failure).message.split("\n")[0];
      process.stderr.write(yellow(`reconnecting… in ${(wait / 1000).toFixed(1)} s (${reason})\n`));
      await new Promise<void>((r) => {
        const timer = setTimeout(r, wait);
        wake = () => (clearTimeout(timer), r());
      });
    }
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    conn.close();
  }
}
