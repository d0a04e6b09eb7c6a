import type { ExplainRouteResponse, GatewayInfo, RouteCandidate } from "../../gen/uims/admin/v1/admin";
import { Medium } from "../../gen/uims/common/v1/types";
import { CLIENT_ID_PATTERN, formatAddress, parseRecipient } from "../../common/addresses";
import { connectAdmin, type Context } from "../connect";
import { CliError } from "../errors";
import { ago, bold, bytes, dim, formatTime, green, keyValues, mediumLabel, red, STATUS_EVENT_COLUMNS, stateLabel, statusEventRow, table } from "../format";
import { parseDay, parseMediumOption } from "../parse";
import { resolveAdmin, type AdminOptions } from "../state";

/** The operators' commands on the broker's admin API: route, gateways, usage, tx. */

export interface RouteOptions extends AdminOptions {
  from: string;
  to: string;
  contentType?: string;
  size?: string;
}

function candidateRow(c: RouteCandidate): string[] {
  return [mediumLabel(c.medium), c.address ? formatAddress(c.medium, c.address) : "-", c.gatewayId || "-", c.usable ? green("yes") : red("no"), c.reason, c.conversion || "-"];
}

export function formatRoute(res: ExplainRouteResponse): string {
  const lines = [table(["medium", "address", "gateway", "usable", "reason", "conversion"], res.candidates.map(candidateRow)), ""];
  const c = res.chosen;
  if (c) lines.push(`${bold("chosen:")} ${green(mediumLabel(c.medium))} ${formatAddress(c.medium, c.address)} via ${c.gatewayId}${c.reason ? dim(` (${c.reason})`) : ""}`);
  else lines.push(`${bold("refused:")} ${red(res.refusal || "no usable route")}`);
  return lines.join("\n");
}

export async function route(opts: RouteOptions, ctx: Context): Promise<void> {
  if (!CLIENT_ID_PATTERN.test(opts.from)) throw new CliError(`--from "${opts.from}" is not a client id`);
  const recipient = parseRecipient(opts.to);
  if ("error" in recipient) throw new CliError(`--to: ${recipient.error}`);
  const size = opts.size !== undefined ? Number(opts.size) : 0;
  if (!Number.isSafeInteger(size) || size < 0) throw new CliError(`--size must be a number of bytes, not "${opts.size}"`);
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.explainRoute, {
      sender: opts.from,
      recipient: opts.to,
      contentType: opts.contentType ?? "",
      contentSize: size,
      sourceMedium: Medium.MEDIUM_UNSPECIFIED,
    });
    process.stdout.write(`${formatRoute(res)}\n`);
  } finally {
    admin.close();
  }
}

function gatewayRow(g: GatewayInfo, now: number): string[] {
  return [
    g.nodeId,
    g.kind,
    mediumLabel(g.medium),
    g.endpoint,
    g.healthy ? green("healthy") : red("unhealthy"),
    g.capacity ? `${g.inFlight}/${g.capacity}` : String(g.inFlight),
    ago(g.lastHeartbeatUnixMs, now),
    g.version || "-",
    g.detail,
  ];
}

export async function gateways(opts: AdminOptions & { medium?: string }, ctx: Context): Promise<void> {
  const medium = opts.medium !== undefined ? parseMediumOption(opts.medium) : Medium.MEDIUM_UNSPECIFIED;
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.listGateways, { medium });
    const now = Date.now();
    process.stdout.write(`${table(["node", "kind", "medium", "endpoint", "health", "in flight", "heartbeat", "version", "detail"], res.gateways.map((g) => gatewayRow(g, now)))}\n`);
  } finally {
    admin.close();
  }
}

export interface UsageOptions extends AdminOptions {
  sender?: string;
  medium?: string;
  from?: string;
  to?: string;
}

export async function usage(opts: UsageOptions, ctx: Context): Promise<void> {
  const fromDay = opts.from !== undefined ? parseDay(opts.from) : "";
  const toDay = opts.to !== undefined ? parseDay(opts.to) : "";
  if (toDay && !fromDay) throw new CliError("--to needs --from");
  if (fromDay && toDay && toDay < fromDay) throw new CliError(`--to ${toDay} is before --from ${fromDay}`);
  const medium = opts.medium !== undefined ? parseMediumOption(opts.medium) : Medium.MEDIUM_UNSPECIFIED;
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.getUsage, { sender: opts.sender ?? "", medium, fromDay, toDay });
    const rows = res.rows.map((r) => [r.day, r.sender, mediumLabel(r.medium), String(r.messages), bytes(r.bytes), String(r.segments)]);
    const right = (header: string) => ({ header, align: "right" as const });
    process.stdout.write(`${table(["day", "sender", "medium", right("messages"), right("bytes"), right("segments")], rows)}\n`);
    if (res.rows.length > 0) {
      const total = res.rows.reduce((t, r) => ({ messages: t.messages + r.messages, bytes: t.bytes + r.bytes }), { messages: 0, bytes: 0 });
      process.stdout.write(dim(`total: ${total.messages} messages, ${bytes(total.bytes)}\n`));
    }
  } finally {
    admin.close();
  }
}

export async function transaction(messageId: string, opts: AdminOptions, ctx: Context): Promise<void> {
  if (!messageId.trim()) throw new CliError("give a message id");
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.getTransaction, { messageId });
    const s = res.status;
    const pairs: Array<[string, string]> = [
      ["message", s?.messageId || messageId],
      ["sender", res.sender || "-"],
      ["recipient", s?.recipient || "-"],
      ["state", s ? `${stateLabel(s.state)} on ${mediumLabel(s.medium)}` : "-"],
      ["destination", res.destinationGatewayId || "-"],
      ["deadline", res.deadlineUnixMs ? `${formatTime(res.deadlineUnixMs)}` : "-"],
      ["trace", s?.traceId || "-"],
    ];
    process.stdout.write(`${keyValues(pairs)}\n`);
    if (s) process.stdout.write(`\n${table(STATUS_EVENT_COLUMNS, s.events.map((e) => statusEventRow(e)))}\n`);
  } finally {
    admin.close();
  }
}
