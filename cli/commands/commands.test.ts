import { Medium, MessageState, FailureKind, type MessageStatus } from "../../gen/uims/common/v1/types";
import { setColour } from "../format";
import { formatRoute } from "./admin";
import { backoffMs, formatInboxMessage } from "./inbox";
import { profileFromOptions } from "./profiles";
import { isFinal } from "./status";

beforeAll(() => setColour(false));

describe("profiles add", () => {
  test("addresses, preferences in the order given, quiet hours with a zone", () => {
    const p = profileFromOptions("bob", { name: "Bob", im: true, sms: "+491701234567", email: "bob@example.org", prefer: "im,sms,email", quiet: "22:00-07:00", tz: "Europe/Berlin" });
    expect(p.addresses).toEqual([
      { medium: Medium.MEDIUM_IM, address: "bob" },
      { medium: Medium.MEDIUM_SMS, address: "+491701234567" },
      { medium: Medium.MEDIUM_EMAIL, address: "bob@example.org" },
    ]);
    expect(p.preferredMedia).toEqual([Medium.MEDIUM_IM, Medium.MEDIUM_SMS, Medium.MEDIUM_EMAIL]);
    expect(p.quietHours).toEqual({ startMinute: 1320, endMinute: 420, timeZone: "Europe/Berlin", media: [] });
    expect(p.displayName).toBe("Bob");
  });

  test("without any address, an im client preferring im", () => {
    const p = profileFromOptions("carol", {});
    expect(p.addresses).toEqual([{ medium: Medium.MEDIUM_IM, address: "carol" }]);
    expect(p.preferredMedia).toEqual([Medium.MEDIUM_IM]);
    expect(p.quietHours).toBeUndefined();
  });

  test("bad input is refused before anything is sent", () => {
    expect(() => profileFromOptions("Bob!", {})).toThrow(/not a client id/);
    expect(() => profileFromOptions("bob", { sms: "0170123" })).toThrow(/--sms "0170123": a phone number in E.164 form/);
    expect(() => profileFromOptions("bob", { sms: "+491701234567", prefer: "im,sms" })).toThrow(/no im address/);
    expect(() => profileFromOptions("bob", { tz: "Europe/Berlin" })).toThrow(/--tz is the time zone of --quiet/);
  });
});

describe("status", () => {
  const status = (state: MessageState, medium = Medium.MEDIUM_IM, failureKind = FailureKind.FAILURE_KIND_UNSPECIFIED): MessageStatus => ({
    messageId: "m",
    state,
    medium,
    events: [{ state, medium, atUnixMs: 1, failureKind, reason: "", attempt: 1, gatewayId: "g" }],
    traceId: "",
    segments: 0,
    recipient: "bob",
  });

  test("final states end --follow", () => {
    expect(isFinal(status(MessageState.MESSAGE_STATE_READ))).toBe(true);
    expect(isFinal(status(MessageState.MESSAGE_STATE_EXPIRED))).toBe(true);
    expect(isFinal(status(MessageState.MESSAGE_STATE_FAILED, Medium.MEDIUM_IM, FailureKind.FAILURE_KIND_PERMANENT))).toBe(true);
    // A temporary failure may still be re-routed to the next medium.
    expect(isFinal(status(MessageState.MESSAGE_STATE_FAILED, Medium.MEDIUM_SMS, FailureKind.FAILURE_KIND_TEMPORARY))).toBe(false);
    expect(isFinal(status(MessageState.MESSAGE_STATE_DELIVERED))).toBe(false);
    // No read receipts on SMS: delivered is as far as it goes.
    expect(isFinal(status(MessageState.MESSAGE_STATE_DELIVERED, Medium.MEDIUM_SMS))).toBe(true);
    expect(isFinal(status(MessageState.MESSAGE_STATE_ROUTED))).toBe(false);
  });
});

describe("inbox", () => {
  test("backoff doubles up to 5 s, with jitter", () => {
    expect(backoffMs(0, () => 0.5)).toBe(250);
    expect(backoffMs(2, () => 0.5)).toBe(1000);
    expect(backoffMs(20, () => 0.5)).toBe(5000);
    expect(backoffMs(0, () => 0)).toBe(200);
    expect(backoffMs(0, () => 1)).toBe(300);
  });

  test("a message shows sender, subject, text, attachments and cursor", () => {
    const out = formatInboxMessage({
      cursor: "1717-0",
      message: {
        messageId: "m1",
        sender: "alice",
        senderAddress: "im:alice",
        sourceMedium: Medium.MEDIUM_IM,
        payload: { contentType: "text/plain; charset=utf-8", body: Buffer.from("hello\nbob"), subject: "hi", attachments: [{ filename: "a.png", contentType: "image/png", data: Buffer.alloc(2048) }] },
        sentAtUnixMs: 0,
        traceId: "t",
      },
    });
    expect(out.split("\n")).toEqual(["-  alice  via im · id m1 · cursor 1717-0", "  subject: hi", "  hello", "  bob", "  1 attachment: a.png image/png, 2.0 KiB"]);
  });
});

describe("route", () => {
  test("candidates as a table, then the choice or the refusal", () => {
    const chosen = { medium: Medium.MEDIUM_IM, address: "bob", gatewayId: "gw-im-2", usable: true, reason: "online", conversion: "" };
    const sms = { medium: Medium.MEDIUM_SMS, address: "+491701234567", gatewayId: "", usable: false, reason: "no healthy sms gateway", conversion: "" };
    const out = formatRoute({ chosen, candidates: [chosen, sms], refusal: "" });
    expect(out).toContain("im      im:bob             gw-im-2  yes     online");
    expect(out).toContain("sms     sms:+491701234567  -        no      no healthy sms gateway");
    expect(out).toMatch(/chosen: im im:bob via gw-im-2 \(online\)$/);
    expect(formatRoute({ candidates: [sms], refusal: "no usable medium" })).toMatch(/refused: no usable medium$/);
  });
});
