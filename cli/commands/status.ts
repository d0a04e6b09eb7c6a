import type { WatchStatusResponse } from "../../gen/uims/client/v1/client";
import { FailureKind, Medium, MessageState, type MessageStatus } from "../../gen/uims/common/v1/types";
import { connectClient, type Context } from "../connect";
import { CliError } from "../errors";
import { bold, keyValues, mediumLabel, STATUS_EVENT_COLUMNS, stateLabel, statusEventRow, streamingRow, table } from "../format";
import { resolveClient, type ClientOptions } from "../state";

export interface StatusOptions extends ClientOptions {
  follow?: boolean;
}

/**
 * Whether a status can still change. READ and EXPIRED are final; FAILED is, unless its last step
 * says the failure is temporary (the broker may still re-route). DELIVERED is the last step on a
 * medium other than im, which has no read receipts.
 */
export function isFinal(s: MessageStatus): boolean {
  switch (s.state) {
    case MessageState.MESSAGE_STATE_READ:
    case MessageState.MESSAGE_STATE_EXPIRED:
      return true;
    case MessageState.MESSAGE_STATE_FAILED:
      return s.events.at(-1)?.failureKind !== FailureKind.FAILURE_KIND_TEMPORARY;
    case MessageState.MESSAGE_STATE_DELIVERED:
      return s.medium !== Medium.MEDIUM_IM && s.medium !== Medium.MEDIUM_UNSPECIFIED;
    default:
      return false;
  }
}

export function statusSummary(s: MessageStatus): string {
  const pairs: Array<[string, string]> = [
    ["message", s.messageId],
    ["recipient", s.recipient || "-"],
    ["state", `${stateLabel(s.state)} on ${mediumLabel(s.medium)}`],
    ["trace", s.traceId || "-"],
  ];
  if (s.segments > 0) pairs.push(["segments", String(s.segments)]);
  return keyValues(pairs);
}

export function formatStatus(s: MessageStatus, now?: number): string {
  return `${statusSummary(s)}\n\n${table(STATUS_EVENT_COLUMNS, s.events.map((e) => statusEventRow(e, now)))}`;
}

// Fixed widths for rows printed as they arrive: a time with milliseconds, the longest state name.
const FOLLOW_WIDTHS = [12, 11, 6, 7, 10];

export async function status(messageId: string, opts: StatusOptions, ctx: Context): Promise<void> {
  if (!messageId.trim()) throw new CliError("give the message id that `uims send` printed");
  const target = resolveClient(opts, ctx.stateDir);
  const conn = connectClient(target, ctx);
  try {
    // GetStatus first even when following: it refuses an unknown id, where a watch would wait.
    const first = (await conn.call((c) => c.getStatus, { messageId })).status;
    if (!first) throw new CliError(`the gateway returned no status for ${messageId}`);
    if (!opts.follow) {
      process.stdout.write(`${formatStatus(first)}\n`);
      return;
    }
    process.stdout.write(`${statusSummary(first)}\n\n`);
    process.stdout.write(`${streamingRow(STATUS_EVENT_COLUMNS.map((c) => bold(c.header)), FOLLOW_WIDTHS)}\n`);
    let shown = 0;
    const show = (s: MessageStatus) => {
      for (const e of s.events.slice(shown)) process.stdout.write(`${streamingRow(statusEventRow(e), FOLLOW_WIDTHS)}\n`);
      shown = Math.max(shown, s.events.length);
    };
    show(first);
    if (isFinal(first)) return;
    await new Promise<void>((done, fail) => {
      // Open until the message is final or Ctrl-C: no deadline, keepalive watches the connection.
      const stream = conn.client.watchStatus({ messageIds: [messageId] }, conn.metadata());
      const stop = () => {
        stream.cancel();
        done();
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      const finish = (err?: unknown) => {
        process.removeListener("SIGINT", stop);
        process.removeListener("SIGTERM", stop);
        if (err) fail(err);
        else done();
      };
      stream.on("data", (r: WatchStatusResponse) => {
        if (!r.status || r.status.messageId !== messageId) return;
        show(r.status);
        if (isFinal(r.status)) {
          process.stdout.write(`\n${bold("final:")} ${stateLabel(r.status.state)}\n`);
          stream.cancel();
          finish();
        }
      });
      stream.on("error", (err: Error & { code?: number }) => (err.code === 1 ? finish() : finish(err)));
      stream.on("end", () => finish(new CliError("the gateway closed the status stream before the message was final")));
    });
  } finally {
    conn.close();
  }
}
