import { createLogger } from "../../common/logger";
import { createStore } from "../../common/store";
import { encodeGsm7, encodeUcs2 } from "../../common/content/gsm7";
import { NotFoundError, UnavailableError } from "../../common/errors";
import type { AcceptInput } from "../core/types";
import { alphabetOf, concatenationOf, decodeUserData, MoReceiver, resolveRecipient, senderAddressOf } from "./mo";
import type { IncomingDeliverSm } from "./smpp-session";
import { Status } from "./smpp-status";

const silent = createLogger({ service: "test", nodeId: "test", level: "silent" });
const NUMBERS = new Map([
  ["4915550001", "bob"],
  ["4915550002", "carol"],
]);

function mo(data: Buffer, fields: Partial<IncomingDeliverSm> = {}): IncomingDeliverSm {
  return { kind: "mo", sourceAddr: "491701234567", sourceTon: 1, destinationAddr: "4915550001", esmClass: 0, dataCoding: 0, udh: null, data, ...fields };
}

function part(data: Buffer, reference: number, total: number, seq: number, fields: Partial<IncomingDeliverSm> = {}): IncomingDeliverSm {
  return mo(data, { esmClass: 0x40, udh: Buffer.from([0x05, 0x00, 0x03, reference, total, seq]), ...fields });
}

describe("MO decoding", () => {
  test("data_coding to alphabet", () => {
    expect([0x00, 0x01, 0x03, 0x08, 0x04, 0x02, 0x10, 0x11, 0x18, 0x14, 0xf0, 0xf1, 0xf4, 0x20].map(alphabetOf)).toEqual([
      "gsm7",
      "ascii",
      "latin1",
      "ucs2",
      undefined,
      undefined,
      "gsm7",
      "gsm7",
      "ucs2",
      undefined,
      "gsm7",
      "gsm7",
      undefined,
      undefined,
    ]);
  });

  test("GSM 7-bit with the extension table, UCS-2 with a surrogate pair", () => {
    // "@" is septet 0, "€" the escape pair 1B 65, "[" 1B 3C, "ä" 7B.
    expect(decodeUserData(0, Buffer.from([0x00, 0x1b, 0x65, 0x20, 0x1b, 0x3c, 0x7b, 0x5d]))).toBe("@€ [äÑ");
    expect(decodeUserData(0, encodeGsm7("Grüße {ok} ~ 5€ @home")!)).toBe("Grüße {ok} ~ 5€ @home");
    expect(decodeUserData(8, encodeUcs2("Привет 👋"))).toBe("Привет 👋");
    expect(decodeUserData(3, Buffer.from("café", "latin1"))).toBe("café");
    expect(decodeUserData(4, Buffer.from([1, 2, 3]))).toBeUndefined();
  });

  test("concatenation elements: 8-bit and 16-bit references, other elements around them, malformed ones", () => {
    expect(concatenationOf(Buffer.from([0x05, 0x00, 0x03, 0x42, 0x03, 0x02]))).toEqual({ reference: 0x42, total: 3, seq: 2 });
    expect(concatenationOf(Buffer.from([0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01]))).toEqual({ reference: 0x1234, total: 2, seq: 1 });
    // A national language shift element (0x24) first, then the concatenation.
    expect(concatenationOf(Buffer.from([0x08, 0x24, 0x01, 0x01, 0x00, 0x03, 0x09, 0x02, 0x02]))).toEqual({ reference: 9, total: 2, seq: 2 });
    expect(concatenationOf(Buffer.from([0x05, 0x00, 0x03, 0x42, 0x03, 0x04]))).toBeUndefined();
    expect(concatenationOf(Buffer.from([0x05, 0x00, 0x03, 0x42, 0x00, 0x00]))).toBeUndefined();
    expect(concatenationOf(Buffer.from([0x05, 0x00, 0x09, 0x42]))).toBeUndefined();
    expect(concatenationOf(null)).toBeUndefined();
  });

  test("recipient: an @profile prefix wins, else the number the message was sent to", () => {
    expect(resolveRecipient("@Bob hello there", "4915550002", NUMBERS)).toEqual({ recipient: "bob", text: "hello there" });
    expect(resolveRecipient("@carol\nline two", "", NUMBERS)).toEqual({ recipient: "carol", text: "line two" });
    expect(resolveRecipient("hi", "+4915550002", NUMBERS)).toEqual({ recipient: "carol", text: "hi" });
    expect(resolveRecipient("hi", "004915550001", NUMBERS)).toEqual({ recipient: "bob", text: "hi" });
    expect(resolveRecipient("@ 5pm?", "4915550001", NUMBERS)).toEqual({ recipient: "bob", text: "@ 5pm?" });
    expect(resolveRecipient("hi", "4915559999", NUMBERS)).toBeUndefined();
  });

  test("sender address", () => {
    expect(senderAddressOf("491701234567")).toBe("sms:+491701234567");
    expect(senderAddressOf("+491701234567")).toBe("sms:+491701234567");
    expect(senderAddressOf("ACME")).toBe("sms:ACME");
  });
});

describe("MO reception and reassembly", () => {
  function setup(opts: { refuse?: (input: AcceptInput) => Error | undefined; timeoutMs?: number; clock?: () => number } = {}) {
    const store = createStore();
    const accepted: AcceptInput[] = [];
    const receiver = new MoReceiver({
      nodeId: "gw-sms-test",
      store,
      logger: silent,
      inboundNumbers: NUMBERS,
      reassemblyTimeoutMs: opts.timeoutMs ?? 60_000,
      ...(opts.clock ? { clock: opts.clock } : {}),
      accept: async (input) => {
        const refusal = opts.refuse?.(input);
        if (refusal) throw refusal;
        accepted.push(input);
        return { message: { messageId: `m${accepted.length}` } };
      },
    });
    const texts = () => accepted.map((a) => Buffer.from(a.payload.body).toString("utf8"));
    return { store, receiver, accepted, texts };
  }

  test("a single GSM message to a known number", async () => {
    const { receiver, accepted, texts } = setup();
    expect(await receiver.receive(mo(encodeGsm7("Hello bob")!))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual(["Hello bob"]);
    expect(accepted[0]).toMatchObject({ sender: "", senderAddress: "sms:+491701234567", recipient: "bob", idempotencyKey: "" });
    expect(accepted[0]!.payload.contentType).toBe("text/plain; charset=utf-8");
  });

  test("three GSM parts out of order: one message, answered ESME_ROK part by part", async () => {
    const { receiver, texts } = setup();
    const text = "A".repeat(153) + "B".repeat(153) + "C€".repeat(10);
    const bytes = encodeGsm7(text)!;
    const chunks = [bytes.subarray(0, 153), bytes.subarray(153, 306), bytes.subarray(306)];
    expect(await receiver.receive(part(chunks[2]!, 7, 3, 3))).toBe(Status.ESME_ROK);
    expect(await receiver.receive(part(chunks[0]!, 7, 3, 1))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual([]);
    expect(await receiver.receive(part(chunks[1]!, 7, 3, 2))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual([text]);
  });

  test("UCS-2 parts split inside a surrogate pair are joined as bytes, then decoded", async () => {
    const { receiver, texts } = setup();
    const text = "Ünïcødé 👋 ok";
    const bytes = encodeUcs2(text);
    const cut = encodeUcs2("Ünïcødé ").length + 2; // after the high surrogate
    expect(await receiver.receive(part(bytes.subarray(0, cut), 9, 2, 1, { dataCoding: 8 }))).toBe(Status.ESME_ROK);
    expect(await receiver.receive(part(bytes.subarray(cut), 9, 2, 2, { dataCoding: 8 }))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual([text]);
  });

  test("SAR TLVs instead of a header", async () => {
    const { receiver, texts } = setup();
    await receiver.receive(mo(encodeGsm7("first ")!, { sar: { reference: 300, total: 2, seq: 1 } }));
    await receiver.receive(mo(encodeGsm7("second")!, { sar: { reference: 300, total: 2, seq: 2 } }));
    expect(texts()).toEqual(["first second"]);
  });

  test("a part delivered again after the message was handed over is not a second message", async () => {
    const { receiver, texts } = setup();
    await receiver.receive(part(encodeGsm7("one ")!, 5, 2, 1));
    await receiver.receive(part(encodeGsm7("two")!, 5, 2, 2));
    expect(await receiver.receive(part(encodeGsm7("two")!, 5, 2, 2))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual(["one two"]);
    // The same reference reused later by a new message is a new message.
    await receiver.receive(part(encodeGsm7("three ")!, 5, 2, 1));
    await receiver.receive(part(encodeGsm7("four")!, 5, 2, 2));
    expect(texts()).toEqual(["one two", "three four"]);
  });

  test("the mesh cannot take it now: the last part is answered temporarily, and taken when delivered again", async () => {
    let down = true;
    const { receiver, texts } = setup({ refuse: () => (down ? new UnavailableError("store unavailable") : undefined) });
    expect(await receiver.receive(part(encodeGsm7("x ")!, 1, 2, 1))).toBe(Status.ESME_ROK);
    expect(await receiver.receive(part(encodeGsm7("y")!, 1, 2, 2))).toBe(Status.ESME_RX_T_APPN);
    down = false;
    expect(await receiver.receive(part(encodeGsm7("y")!, 1, 2, 2))).toBe(Status.ESME_ROK);
    expect(texts()).toEqual(["x y"]);
  });

  test("unknown number, unknown profile, binary data: refused permanently", async () => {
    const { receiver, texts } = setup({ refuse: (input) => (input.recipient === "nobody" ? new NotFoundError('recipient "nobody" is unknown') : undefined) });
    expect(await receiver.receive(mo(encodeGsm7("hi")!, { destinationAddr: "4915559999" }))).toBe(Status.ESME_RX_P_APPN);
    expect(await receiver.receive(mo(encodeGsm7("@nobody hi")!))).toBe(Status.ESME_RX_P_APPN);
    expect(await receiver.receive(mo(Buffer.from([1, 2, 3]), { dataCoding: 4 }))).toBe(Status.ESME_RX_P_APPN);
    expect(texts()).toEqual([]);
  });

  test("parts that stop coming: after the reassembly timeout what arrived is handed over, the gap marked", async () => {
    let now = 1_000_000;
    const { receiver, texts } = setup({ timeoutMs: 5_000, clock: () => now });
    await receiver.receive(part(encodeGsm7("start ")!, 3, 3, 1));
    await receiver.receive(part(encodeGsm7(" end")!, 3, 3, 3));
    await receiver.overdue.poll();
    await receiver.overdue.idle();
    expect(texts()).toEqual([]);
    now += 5_000;
    await receiver.overdue.poll();
    await receiver.overdue.idle();
    expect(texts()).toEqual(["start [part 2 of 3 missing] end"]);
    now += 60_000;
    await receiver.overdue.poll();
    await receiver.overdue.idle();
    expect(texts()).toHaveLength(1);
  });
});
