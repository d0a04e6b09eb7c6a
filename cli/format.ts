import { styleText } from "node:util";
import { mediumName } from "../common/addresses";
import { FailureKind, failureKindToJSON, Medium, MessageState, messageStateToJSON, type StatusEvent } from "../gen/uims/common/v1/types";

/** Tables, colours and names for people reading a terminal. */

type Style = Parameters<typeof styleText>[0];

/**
 * Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). Node 20's
 * styleText does not check the stream itself (later versions do).
 */
export function colourEnabled(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return stream.isTTY === true;
}

let colour = colourEnabled();

/** Overrides the terminal detection (tests, `--no-color`). */
export function setColour(enabled: boolean): void {
  colour = enabled;
}

export function paint(style: Style, text: string): string {
  return colour ? styleText(style, text) : text;
}

export const bold = (t: string): string => paint("bold", t);
export const dim = (t: string): string => paint("dim", t);
export const red = (t: string): string => paint("red", t);
export const green = (t: string): string => paint("green", t);
export const yellow = (t: string): string => paint("yellow", t);
export const cyan = (t: string): string => paint("cyan", t);

// SGR escape sequences, as styleText writes them.
const ANSI = /\u001b\[[0-9;]*m/g;

/** Width on a terminal: escape sequences take no room. */
export function visibleWidth(text: string): number {
  return [...text.replace(ANSI, "")].length;
}

function pad(text: string, width: number, align: "left" | "right"): string {
  const fill = " ".repeat(Math.max(0, width - visibleWidth(text)));
  return align === "right" ? fill + text : text + fill;
}

export interface Column {
  header: string;
  align?: "left" | "right";
}

/**
 * A plain table: a bold header, columns two spaces apart, no borders (so that it pastes well into
 * issues and greps well). The last column is not padded, so long reasons do not leave trailing
 * blanks. An empty table prints the header and "(none)".
 */
export function table(columns: ReadonlyArray<Column | string>, rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const cols: Column[] = columns.map((c) => (typeof c === "string" ? { header: c } : c));
  const widths = cols.map((c, i) => Math.max(visibleWidth(c.header), ...rows.map((r) => visibleWidth(r[i] ?? ""))));
  const line = (cells: ReadonlyArray<string>, style?: (t: string) => string): string =>
    cols
      .map((c, i) => {
        const cell = cells[i] ?? "";
        const last = i === cols.length - 1;
        const text = last && c.align !== "right" ? cell : pad(cell, widths[i]!, c.align ?? "left");
        return style ? style(text) : text;
      })
      .join("  ")
      .trimEnd();
  const out = [line(cols.map((c) => c.header), bold)];
  for (const row of rows) out.push(line(row));
  if (rows.length === 0) out.push(dim("(none)"));
  return out.join("\n");
}

/** "key  value" lines with the keys aligned. */
export function keyValues(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => visibleWidth(k)));
  return pairs.map(([k, v]) => `${dim(pad(k, width, "left"))}  ${v}`).join("\n");
}

/** "DELIVERED" for MESSAGE_STATE_DELIVERED. */
export function stateName(state: MessageState): string {
  return messageStateToJSON(state).replace(/^MESSAGE_STATE_/, "");
}

export function stateLabel(state: MessageState): string {
  const name = stateName(state);
  switch (state) {
    case MessageState.MESSAGE_STATE_DELIVERED:
    case MessageState.MESSAGE_STATE_READ:
      return green(name);
    case MessageState.MESSAGE_STATE_FAILED:
    case MessageState.MESSAGE_STATE_EXPIRED:
      return red(name);
    default:
      return yellow(name);
  }
}

export function failureKindName(kind: FailureKind): string {
  return failureKindToJSON(kind).replace(/^FAILURE_KIND_/, "").toLowerCase();
}

export function mediumLabel(medium: Medium): string {
  return medium === Medium.MEDIUM_UNSPECIFIED ? "-" : mediumName(medium);
}

export function mediaList(media: readonly Medium[]): string {
  return media.length === 0 ? "-" : media.map(mediumName).join(",");
}

const two = (n: number): string => String(n).padStart(2, "0");

/** Local time: "14:03:07.123" for today, "2024-05-01 14:03:07" for other days, "-" for 0. */
export function formatTime(unixMs: number, now: number = Date.now()): string {
  if (!unixMs) return "-";
  const d = new Date(unixMs);
  const today = new Date(now);
  const clock = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  if (d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate()) {
    return `${clock}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  }
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock}`;
}

/** "3s ago", "5m ago", "2h ago", "4d ago". */
export function ago(unixMs: number, now: number = Date.now()): string {
  if (!unixMs) return "never";
  const s = Math.max(0, Math.round((now - unixMs) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** "512 B", "1.5 KiB", "4.0 MiB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

export const STATUS_EVENT_COLUMNS: ReadonlyArray<Column> = [
  { header: "time" },
  { header: "state" },
  { header: "medium" },
  { header: "attempt", align: "right" },
  { header: "gateway" },
  { header: "reason" },
];

export function statusEventRow(e: StatusEvent, now?: number): string[] {
  const reason = e.failureKind !== FailureKind.FAILURE_KIND_UNSPECIFIED ? `${failureKindName(e.failureKind)}: ${e.reason}` : e.reason;
  return [formatTime(e.atUnixMs, now), stateLabel(e.state), mediumLabel(e.medium), e.attempt ? String(e.attempt) : "-", e.gatewayId || "-", reason || ""];
}

/** The same columns as `table`, for rows printed one at a time as they arrive (`--follow`). */
export function streamingRow(cells: ReadonlyArray<string>, widths: readonly number[]): string {
  return cells
    .map((c, i) => (i < cells.length - 1 ? pad(c, widths[i] ?? 0, "left") : c))
    .join("  ")
    .trimEnd();
}
