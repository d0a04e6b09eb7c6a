import { GetUsageRequest, UsageRow } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { CLIENT_ID_PATTERN, isKnownMedium } from "../common/addresses";
import { InvalidArgumentError } from "../common/errors";
import type { Store } from "../common/store";

// Store layout:
//   usage:<YYYY-MM-DD>                hash of counters "<sender>|<medium number>|messages|bytes|segments"
//                                     for one UTC day, kept about 400 days.
//   submitted:<YYYY-MM-DD>:<sender>   hash {count}: messages a sender submitted that day, for
//                                     max_messages_per_day. A key of its own, because it is read on
//                                     every submission and the day's usage hash grows with every
//                                     sender and medium.
const USAGE_PREFIX = "usage:";
const SUBMITTED_PREFIX = "submitted:";
const DAY_MS = 86_400_000;
const USAGE_TTL_MS = 400 * DAY_MS;
const SUBMITTED_TTL_MS = 2 * DAY_MS;
const MAX_RANGE_DAYS = 366;
const METRICS = ["messages", "bytes", "segments"] as const;
type Metric = (typeof METRICS)[number];

/** How usage by senders from outside the mesh (no profile) is booked. */
export const EXTERNAL_SENDER = "external";

export interface DeliveryRecord {
  /** Profile id of the sender; empty for an external sender. */
  sender: string;
  /** Medium delivered on. */
  medium: Medium;
  bytes: number;
  /** SMS segments (or fax pages); 0 when not applicable. */
  segments: number;
  atUnixMs: number;
}

/** The UTC day of a Unix time in milliseconds, "YYYY-MM-DD". */
export function utcDay(unixMs: number): string {
  return new Date(unixMs).toISOString().slice(0, 10);
}

function parseDay(field: string, day: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (match) {
    const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
    if (utcDay(ms) === day) return ms;
  }
  throw new InvalidArgumentError(field, `"${day}" is not a day of the form YYYY-MM-DD`);
}

function count(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function senderOf(sender: string): string {
  return sender === "" ? EXTERNAL_SENDER : sender;
}

/** Messages, bytes and SMS segments per sender, medium and UTC day. */
export class Accounting {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Books one delivered message. */
  async recordDelivery(rec: DeliveryRecord): Promise<void> {
    if (!isKnownMedium(rec.medium)) throw new InvalidArgumentError("medium", `unknown medium ${rec.medium}`);
    const base = `${senderOf(rec.sender)}|${rec.medium}|`;
    await this.store.incrementFields(
      USAGE_PREFIX + utcDay(rec.atUnixMs),
      { [`${base}messages`]: 1, [`${base}bytes`]: count(rec.bytes), [`${base}segments`]: count(rec.segments) },
      USAGE_TTL_MS,
    );
  }

  /** Counts one submission by `sender` on the UTC day of `atUnixMs`; returns that day's count including it. */
  async countSubmission(sender: string, atUnixMs: number): Promise<number> {
    const key = `${SUBMITTED_PREFIX}${utcDay(atUnixMs)}:${senderOf(sender)}`;
    await this.store.incrementFields(key, { count: 1 }, SUBMITTED_TTL_MS);
    const fields = await this.store.getFields(key);
    return Number(fields.count ?? 1);
  }

  /** Usage rows for a GetUsage query, ordered by day, sender, medium. */
  async usage(query: GetUsageRequest): Promise<UsageRow[]> {
    if (query.sender && !CLIENT_ID_PATTERN.test(query.sender)) {
      throw new InvalidArgumentError("sender", "must be a client id (or \"external\"), or empty for all");
    }
    if (query.medium !== Medium.MEDIUM_UNSPECIFIED && !isKnownMedium(query.medium)) {
      throw new InvalidArgumentError("medium", `unknown medium ${query.medium}`);
    }
    const fromDay = query.fromDay || utcDay(this.clock());
    const from = parseDay("from_day", fromDay);
    const to = query.toDay ? parseDay("to_day", query.toDay) : from;
    if (to < from) throw new InvalidArgumentError("to_day", "must not be before from_day");
    if ((to - from) / DAY_MS > MAX_RANGE_DAYS) throw new InvalidArgumentError("to_day", `must be at most ${MAX_RANGE_DAYS} days after from_day`);

    const days: string[] = [];
    for (let ms = from; ms <= to; ms += DAY_MS) days.push(utcDay(ms));
    const hashes = await Promise.all(days.map((day) => this.store.getFields(USAGE_PREFIX + day)));

    const rows: UsageRow[] = [];
    days.forEach((day, i) => {
      const byKey = new Map<string, UsageRow>();
      for (const [field, value] of Object.entries(hashes[i] ?? {})) {
        // "<sender>|<medium>|<metric>": the sender is everything before the last two parts.
        const metricAt = field.lastIndexOf("|");
        const mediumAt = field.lastIndexOf("|", metricAt - 1);
        if (mediumAt <= 0) continue;
        const sender = field.slice(0, mediumAt);
        const medium = Number(field.slice(mediumAt + 1, metricAt)) as Medium;
        const metric = field.slice(metricAt + 1) as Metric;
        if (!METRICS.includes(metric)) continue;
        if (query.sender && sender !== query.sender) continue;
        if (query.medium !== Medium.MEDIUM_UNSPECIFIED && medium !== query.medium) continue;
        const rowKey = `${sender}|${medium}`;
        let row = byKey.get(rowKey);
        if (!row) {
          row = UsageRow.fromPartial({ sender, medium, day });
          byKey.set(rowKey, row);
        }
        row[metric] = Number(value);
      }
      const dayRows = [...byKey.values()].sort((a, b) => (a.sender < b.sender ? -1 : a.sender > b.sender ? 1 : a.medium - b.medium));
      rows.push(...dayRows);
    });
    return rows;
  }
}

