import { MetaInformation } from "../../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState, type StatusEvent } from "../../gen/uims/common/v1/types";
import { createLogger } from "../../common/logger";
import { createStore } from "../../common/store";
import type { InboundMessage, SentMessage } from "../core/types";
import { EmailAdapter } from "./adapter";
import { OriginalMails, type BounceRequest } from "./bounce";
import type { RelayEnvelope, RelayResult } from "./smtp-out";

const logger = createLogger({ service: "test", nodeId: "test", level: "silent" });

function setup(results: RelayResult[] = []) {
  const store = createStore();
  const sent: Array<{ envelope: RelayEnvelope; raw: Buffer }> = [];
  const bounces: Array<{ id: string; request: BounceRequest }> = [];
  const originals = new OriginalMails(store, 60_000);
  const adapter = new EmailAdapter({
    store,
    relay: {
      send: async (envelope, raw) => {
        sent.push({ envelope, raw });
        return results.shift() ?? { ok: true, response: "250 2.0.0 queued" };
      },
      health: () => ({ healthy: true, detail: "" }),
    },
    bounces: {
      enqueue: async (id, request) => {
        bounces.push({ id, request });
        return true;
      },
    },
    originals,
    returnPaths: { for: (messageId: string) => `postmaster+${messageId}@uims.local` },
    mailDomain: "uims.local",
    smsDomain: "sms.uims.local",
    retentionMs: 60_000,
    logger,
  });
  return { adapter, sent, bounces, originals };
}

function inbound(fields: { contentType?: string; targetAddress?: string } = {}): InboundMessage {
  return {
    messageId: "m-1",
    meta: { ...MetaInformation.fromPartial({}), messageId: "m-1", targetAddress: fields.targetAddress ?? "dave@example.org" },
    payload: { contentType: fields.contentType ?? "message/rfc822", body: Buffer.from("Subject: s\r\n\r\nbody\r\n"), attachments: [], subject: "s" },
    segments: 0,
  };
}

function failed(fields: Partial<SentMessage> = {}, reason = "550 5.2.2 mailbox full"): SentMessage {
  const event: StatusEvent = { state: MessageState.MESSAGE_STATE_FAILED, medium: Medium.MEDIUM_EMAIL, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason, attempt: 1, gatewayId: "gw-email-1", atUnixMs: 1 };
  return { messageId: "m-2", sender: "", senderAddress: "mailto:x@example.org", recipient: "carol", state: MessageState.MESSAGE_STATE_FAILED, medium: Medium.MEDIUM_EMAIL, events: [event], segments: 0, traceId: "", createdAtUnixMs: 5, ...fields };
}

describe("email adapter: delivery", () => {
  test("hands the raw message to the relay from the message's return path; 250 is delivered", async () => {
    const { adapter, sent } = setup();
    expect(await adapter.deliver(inbound({ targetAddress: "mailto:dave@example.org" }))).toEqual({ kind: "delivered", bytes: 20, detail: "250 2.0.0 queued" });
    expect(sent[0]!.envelope).toEqual({ from: "postmaster+m-1@uims.local", to: ["dave@example.org"] });
  });

  test("a redelivery of a message the relay already took sends nothing twice", async () => {
    const { adapter, sent } = setup();
    await adapter.deliver(inbound());
    expect(await adapter.deliver(inbound())).toMatchObject({ kind: "delivered" });
    expect(sent).toHaveLength(1);
  });

  test("the relay's verdict maps to the outcome: 4yz temporary, 5yz permanent", async () => {
    const { adapter } = setup([
      { ok: false, permanent: false, reason: "451 4.3.0 later" },
      { ok: false, permanent: true, reason: "550 5.1.1 unknown" },
    ]);
    expect(await adapter.deliver(inbound())).toEqual({ kind: "failed", permanent: false, reason: "451 4.3.0 later" });
    expect(await adapter.deliver(inbound())).toEqual({ kind: "failed", permanent: true, reason: "550 5.1.1 unknown" });
  });

  test("content that is not a mail, or a target that is not an address, fails for good without sending", async () => {
    const { adapter, sent } = setup();
    expect(await adapter.deliver(inbound({ contentType: "text/plain" }))).toMatchObject({ kind: "failed", permanent: true });
    expect(await adapter.deliver(inbound({ targetAddress: "bob" }))).toMatchObject({ kind: "failed", permanent: true });
    expect(sent).toHaveLength(0);
  });
});

describe("email adapter: reports to outside senders", () => {
  test("a failed mail from outside gets a report with the original's facts", async () => {
    const { adapter, bounces, originals } = setup();
    await originals.remember("m-2", { address: "Carol@uims.local", subject: "hello", messageId: "<o@example.org>", headers: "Subject: hello", arrivedAtUnixMs: 7 });
    await adapter.onStatus(failed());
    expect(bounces).toEqual([
      {
        id: "ndr-m-2",
        request: {
          to: "x@example.org",
          subject: "hello",
          recipients: [{ address: "Carol@uims.local", status: "5.2.2", diagnostic: "550 5.2.2 mailbox full" }],
          originalHeaders: "Subject: hello",
          originalMessageId: "<o@example.org>",
          arrivedAtUnixMs: 7,
        },
      },
    ]);
  });

  test("an expired one too (4.4.7), with the address rebuilt when the original's record is gone", async () => {
    const { adapter, bounces } = setup();
    await adapter.onStatus(failed({ state: MessageState.MESSAGE_STATE_EXPIRED, recipient: "sms:+491701234567" }, "not delivered before the message expired"));
    expect(bounces[0]!.request.recipients).toEqual([{ address: "+491701234567@sms.uims.local", status: "4.4.7", diagnostic: "not delivered before the message expired" }]);
  });

  test("nothing for other states, for profile senders, or for the null sender", async () => {
    const { adapter, bounces } = setup();
    await adapter.onStatus(failed({ state: MessageState.MESSAGE_STATE_DELIVERED }));
    await adapter.onStatus(failed({ sender: "alice", senderAddress: "im:alice" }));
    await adapter.onStatus(failed({ senderAddress: "" }));
    expect(bounces).toEqual([]);
  });
});
