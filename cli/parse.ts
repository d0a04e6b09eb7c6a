import { extname } from "node:path";
import { parseMedium } from "../common/addresses";
import { parseHostPort } from "../common/config";
import { Medium, Priority } from "../gen/uims/common/v1/types";
import { CliError } from "./errors";

/** Parsers for command-line values; each throws a CliError that says what was expected. */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/**
 * "60s", "5m", "1h30m", "250ms" into milliseconds. A unit is required: on a command line a bare
 * "60" could mean seconds as easily as milliseconds.
 */
export function parseDuration(text: string, what = "duration"): number {
  const value = text.trim();
  let total = 0;
  let end = 0;
  DURATION_PART.lastIndex = 0;
  for (let m = DURATION_PART.exec(value); m; m = DURATION_PART.exec(value)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    end = DURATION_PART.lastIndex;
  }
  if (value === "" || end !== value.length) {
    throw new CliError(`${what} "${text}" is not a duration: use a number with a unit, e.g. 500ms, 60s, 5m, 1h30m`);
  }
  return Math.round(total);
}

export interface QuietWindow {
  startMinute: number;
  endMinute: number;
}

/** "22:00-07:00" into minutes after midnight; the end may be before the start (overnight). */
export function parseQuietHours(text: string): QuietWindow {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  const bad = (why: string) => new CliError(`quiet hours "${text}": ${why}`);
  if (!m) throw bad('expected HH:MM-HH:MM, e.g. "22:00-07:00"');
  const minute = (h: string, mm: string): number => {
    const hours = Number(h);
    const minutes = Number(mm);
    if (hours > 23 || minutes > 59) throw bad(`${h}:${mm} is not a time of day (00:00 to 23:59)`);
    return hours * 60 + minutes;
  };
  const startMinute = minute(m[1]!, m[2]!);
  const endMinute = minute(m[3]!, m[4]!);
  if (startMinute === endMinute) throw bad("start and end are the same time");
  return { startMinute, endMinute };
}

export function formatQuietHours(startMinute: number, endMinute: number): string {
  const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  return `${hhmm(startMinute)}-${hhmm(endMinute)}`;
}

/** "im,sms,email" into media, in order, each once. */
export function parseMediaList(text: string): Medium[] {
  const media: Medium[] = [];
  for (const raw of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const medium = parseMedium(raw);
    if (medium === undefined) throw new CliError(`unknown medium "${raw}": use im, sms, email, voice or fax`);
    if (media.includes(medium)) throw new CliError(`medium "${raw}" is listed twice`);
    media.push(medium);
  }
  if (media.length === 0) throw new CliError("the list of media is empty: use e.g. im,sms,email");
  return media;
}

export function parseMediumOption(text: string): Medium {
  const medium = parseMedium(text.trim());
  if (medium === undefined) throw new CliError(`unknown medium "${text}": use im, sms, email, voice or fax`);
  return medium;
}

/** A UTC day "YYYY-MM-DD" that exists in the calendar. */
export function parseDay(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text.trim());
  const date = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
  if (!m || !date || date.toISOString().slice(0, 10) !== text.trim()) throw new CliError(`"${text}" is not a day: use YYYY-MM-DD, e.g. 2024-05-01`);
  return text.trim();
}

export function parseEndpoint(text: string, what: string): string {
  const hp = parseHostPort(text);
  if (!hp) throw new CliError(`${what} "${text}" is not host:port, e.g. 127.0.0.1:50061`);
  return hp.address;
}

export function parseCount(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new CliError(`${what} must be a whole number from ${min} to ${max}, not "${text}"`);
  return n;
}

export function parsePriority(text: string): Priority {
  switch (text.trim().toLowerCase()) {
    case "low":
      return Priority.PRIORITY_LOW;
    case "normal":
      return Priority.PRIORITY_NORMAL;
    case "high":
      return Priority.PRIORITY_HIGH;
    default:
      throw new CliError(`priority "${text}": use low, normal or high`);
  }
}

// The types people attach most; anything else travels as application/octet-stream.
const CONTENT_TYPES: Record<string, string> = {
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".json": "application/json",
  ".xml": "application/xml",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".tif": "image/tiff",
  ".tiff": "image/tiff",
  ".wav": "audio/wav",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
  ".mp4": "video/mp4",
  ".ics": "text/calendar; charset=utf-8",
  ".vcf": "text/vcard; charset=utf-8",
};

export function contentTypeFor(filename: string): string {
  return CONTENT_TYPES[extname(filename).toLowerCase()] ?? "application/octet-stream";
}
