import { Medium, Priority } from "../gen/uims/common/v1/types";
import { CliError } from "./errors";
import { contentTypeFor, formatQuietHours, parseCount, parseDay, parseDuration, parseEndpoint, parseMediaList, parsePriority, parseQuietHours } from "./parse";

describe("parseDuration", () => {
  test.each([
    ["60s", 60_000],
    ["5m", 300_000],
    ["250ms", 250],
    ["1h30m", 5_400_000],
    ["1.5s", 1_500],
    ["2d", 172_800_000],
    [" 10s ", 10_000],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["60", "", "s", "5 m", "1x", "-5s", "1h 30m", "5s5"])("%j is refused with a hint", (text) => {
    expect(() => parseDuration(text, "--ttl")).toThrow(CliError);
    expect(() => parseDuration(text, "--ttl")).toThrow(/--ttl .* e\.g\. 500ms, 60s, 5m/);
  });
});

describe("parseQuietHours", () => {
  test("an overnight window", () => {
    expect(parseQuietHours("22:00-07:00")).toEqual({ startMinute: 1320, endMinute: 420 });
  });

  test("single-digit hours and spaces", () => {
    expect(parseQuietHours(" 9:15 - 17:45 ")).toEqual({ startMinute: 555, endMinute: 1065 });
  });

  test.each([
    ["22:00", /HH:MM-HH:MM/],
    ["24:00-07:00", /24:00 is not a time of day/],
    ["22:60-07:00", /22:60 is not a time of day/],
    ["08:00-08:00", /same time/],
    ["ten-eleven", /HH:MM-HH:MM/],
  ])("%s is refused", (text, why) => {
    expect(() => parseQuietHours(text)).toThrow(why);
  });

  test("formats back", () => {
    expect(formatQuietHours(1320, 420)).toBe("22:00-07:00");
    expect(formatQuietHours(0, 5)).toBe("00:00-00:05");
  });
});

describe("other values", () => {
  test("media lists keep their order and refuse repeats and unknown names", () => {
    expect(parseMediaList("im,sms,email")).toEqual([Medium.MEDIUM_IM, Medium.MEDIUM_SMS, Medium.MEDIUM_EMAIL]);
    expect(parseMediaList(" SMS , im ")).toEqual([Medium.MEDIUM_SMS, Medium.MEDIUM_IM]);
    expect(() => parseMediaList("im,im")).toThrow(/twice/);
    expect(() => parseMediaList("im,pigeon")).toThrow(/unknown medium "pigeon"/);
    expect(() => parseMediaList(",")).toThrow(/empty/);
  });

  test("days must exist in the calendar", () => {
    expect(parseDay("2024-02-29")).toBe("2024-02-29");
    expect(() => parseDay("2023-02-29")).toThrow(/not a day/);
    expect(() => parseDay("2024-2-1")).toThrow(/YYYY-MM-DD/);
  });

  test("endpoints, counts and priorities", () => {
    expect(parseEndpoint("127.0.0.1:50061", "--gateway")).toBe("127.0.0.1:50061");
    expect(parseEndpoint("[::1]:50061", "--gateway")).toBe("[::1]:50061");
    expect(() => parseEndpoint("localhost", "--gateway")).toThrow(/--gateway "localhost" is not host:port/);
    expect(parseCount("3", "--im", 1, 16)).toBe(3);
    expect(() => parseCount("0", "--im", 1, 16)).toThrow(/from 1 to 16/);
    expect(() => parseCount("2.5", "--im", 1, 16)).toThrow(/whole number/);
    expect(parsePriority("HIGH")).toBe(Priority.PRIORITY_HIGH);
    expect(() => parsePriority("urgent")).toThrow(/low, normal or high/);
  });

  test("content types by extension, octet-stream otherwise", () => {
    expect(contentTypeFor("menu.PDF")).toBe("application/pdf");
    expect(contentTypeFor("/tmp/a.b/photo.jpeg")).toBe("image/jpeg");
    expect(contentTypeFor("notes.txt")).toBe("text/plain; charset=utf-8");
    expect(contentTypeFor("Makefile")).toBe("application/octet-stream");
    expect(contentTypeFor("archive.tar.xz")).toBe("application/octet-stream");
  });
});
