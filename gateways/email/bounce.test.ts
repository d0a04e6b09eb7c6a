import { simpleParser } from "mailparser";
import { createLogger } from "../../common/logger";
import { createStore } from "../../common/store";
import { BounceQueue, composeBounce, diagnosticCode, statusFrom, type BounceRequest } from "./bounce";
import type { RelayEnvelope, RelayResult } from "./smtp-out";

const logger = createLogger({ service: "test", nodeId: "test", level: "silent" });

const request: BounceRequest = {
  to: "x@example.org",
  subject: "Grüße",
  recipients: [
    { address: "bob@uims.local", status: "5.1.1", diagnostic: "550 5.1.1 <bob@uims.local>: user unknown" },
    { address: "+491701234567@sms.uims.local", status: "4.4.7", diagnostic: "not delivered before the message expired" },
  ],
  originalHeaders: "From: x@example.org\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
  originalMessageId: "<orig@example.org>",
  arrivedAtUnixMs: Date.UTC(2024, 0, 2, 3, 4, 5),
};

describe("composing a non-delivery report", () => {
  test("a multipart/report that mailparser reads back: text, delivery status, original headers", async () => {
    const raw = await composeBounce(request, { from: "postmaster@uims.local", reportingMta: "uims.local", id: "ndr-1", now: new Date() });
    const parsed = await simpleParser(raw);
    expect(parsed.subject).toBe("Undeliverable: Grüße");
    expect(parsed.from?.value[0]).toEqual({ name: "Mail Delivery System", address: "postmaster@uims.local" });
    expect(parsed.messageId).toBe("<ndr-1@uims.local>");
    expect(parsed.inReplyTo).toBe("<orig@example.org>");
    expect(parsed.headers.get("auto-submitted")).toBe("auto-replied");
    expect(parsed.headers.get("content-type")).toMatchObject({ value: "multipart/report", params: { "report-type": "delivery-status" } });
    expect(parsed.text).toContain("<bob@uims.local>: 550 5.1.1 <bob@uims.local>: user unknown");
    const text = raw.toString();
    expect(text).toContain("Reporting-MTA: dns; uims.local\r\nArrival-Date: Tue, 02 Jan 2024 03:04:05 GMT\r\n\r\nFinal-Recipient: rfc822; bob@uims.local\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1");
    expect(text).toContain("Final-Recipient: rfc822; +491701234567@sms.uims.local\r\nAction: failed\r\nStatus: 4.4.7\r\nDiagnostic-Code: x-uims; not delivered before the message expired");
    expect(text).toContain("Content-Type: text/rfc822-headers");
  });

  test("the status and diagnostic fields", () => {
    expect(statusFrom("550 5.7.1 refused", "5.0.0")).toBe("5.7.1");
    expect(statusFrom("destination refused the message", "5.0.0")).toBe("5.0.0");
    expect(diagnosticCode("451 4.3.0 later")).toBe("smtp; 451 4.3.0 later");
    expect(diagnosticCode("line\r\nbreak ü")).toBe("x-uims; line break ?");
  });
});

describe("the report queue", () => {
  function setup(results: RelayResult[]) {
    const sent: Array<{ envelope: RelayEnvelope; raw: Buffer }> = [];
    let now = 1_000_000;
    const relay = {
      send: async (envelope: RelayEnvelope, raw: Buffer): Promise<RelayResult> => {
        sent.push({ envelope, raw });
        return results.shift() ?? { ok: true, response: "250 OK" };
      },
    };
    const store = createStore();
    const queue = new BounceQueue({ store, relay, logger, nodeId: "gw-email-1", from: "postmaster@uims.local", reportingMta: "uims.local", giveUpMs: 60_000, clock: () => now });
    const done = async (id: string) => (JSON.parse((await store.get(`bounce:${id}`)) ?? "{}") as { done?: string }).done;
    const due = () => store.sortedCount("bounce-due:gw-email-1");
    return { sent, queue, done, due, advance: (ms: number) => (now += ms) };
  }

  test("sends once per id, from the null sender, even when the same status change comes again after it left", async () => {
    const { sent, queue, done, due } = setup([]);
    expect(await queue.enqueue("ndr-a", request)).toBe(true);
    expect(await queue.enqueue("ndr-a", request)).toBe(false);
    await queue.idle();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.envelope).toEqual({ from: "", to: ["x@example.org"] });
    expect(await done("ndr-a")).toBe("sent");
    expect(await due()).toBe(0);
    expect(await queue.enqueue("ndr-a", request)).toBe(false);
    await queue.idle();
    expect(sent).toHaveLength(1);
  });

  test("a relay that is down delays the report; it is sent when the relay takes it", async () => {
    const { sent, queue, done, due, advance } = setup([{ ok: false, permanent: false, reason: "relay unreachable" }]);
    await queue.enqueue("ndr-b", request);
    await queue.idle();
    expect(sent).toHaveLength(1);
    expect(await done("ndr-b")).toBeUndefined();
    expect(await due()).toBe(1);
    advance(600_000);
    await queue.queue.poll();
    await queue.idle();
    expect(sent).toHaveLength(2);
    expect(await done("ndr-b")).toBe("sent");
    expect(await due()).toBe(0);
  });

  test("given up after giveUpMs, and dropped at once when refused for good", async () => {
    const { sent, queue, done, due, advance } = setup([
      { ok: false, permanent: false, reason: "down" },
      { ok: false, permanent: false, reason: "still down" },
      { ok: false, permanent: true, reason: "550 no such sender" },
    ]);
    await queue.enqueue("ndr-c", request);
    await queue.idle();
    advance(61_000);
    await queue.queue.poll();
    await queue.idle();
    expect(sent).toHaveLength(2);
    expect(await done("ndr-c")).toBe("given-up");

    await queue.enqueue("ndr-d", request);
    await queue.idle();
    expect(sent).toHaveLength(3);
    expect(await done("ndr-d")).toBe("refused");
    expect(await due()).toBe(0);
  });
});
