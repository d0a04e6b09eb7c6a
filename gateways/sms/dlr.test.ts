import { messageIdForms, parseReceiptText, receiptOf, stateName, verdictOf } from "./dlr";
import type { IncomingDeliverSm } from "./smpp-session";

function receiptPdu(text: string, tlvs: Partial<IncomingDeliverSm> = {}): IncomingDeliverSm {
  return { kind: "receipt", sourceAddr: "4915550100", sourceTon: 1, destinationAddr: "4915550000", esmClass: 0x04, dataCoding: 0, udh: null, data: Buffer.from(text, "latin1"), ...tlvs };
}

describe("delivery receipt text", () => {
  test("parses the SMPP 3.4 Appendix B format", () => {
    const r = parseReceiptText("id:2a001 sub:001 dlvrd:001 submit date:2412041530 done date:2412041531 stat:DELIVRD err:000 text:Hello there");
    expect(r).toEqual({ id: "2a001", sub: "001", dlvrd: "001", submitDate: "2412041530", doneDate: "2412041531", stat: "DELIVRD", err: "000", text: "Hello there" });
  });

  test("keys in any case, fields missing or in another order, text containing key-like words", () => {
    const r = parseReceiptText("Stat:UNDELIV ID:abc-123 Err:001 Text:id:fake stat:DELIVRD");
    expect(r.id).toBe("abc-123");
    expect(r.stat).toBe("UNDELIV");
    expect(r.err).toBe("001");
    expect(r.text).toBe("id:fake stat:DELIVRD");
    expect(r.submitDate).toBeUndefined();
  });

  test("an empty or unrelated text has no fields", () => {
    expect(parseReceiptText("")).toEqual({});
    expect(parseReceiptText("hello world")).toEqual({});
  });
});

describe("receipt of a deliver_sm", () => {
  test("text only", () => {
    expect(receiptOf(receiptPdu("id:77 sub:001 dlvrd:000 submit date:2412041530 done date:2412041531 stat:EXPIRED err:000 text:"))).toEqual({
      smscMessageId: "77",
      state: "EXPIRED",
      error: "000",
      verdict: { kind: "failed", permanent: false },
    });
  });

  test("TLVs win over the text; a network error code is reported", () => {
    const r = receiptOf(receiptPdu("id:1 stat:DELIVRD err:000", { receiptedMessageId: "2a00f", messageState: 5, networkErrorCode: Buffer.from([3, 0, 27]) }));
    expect(r).toEqual({ smscMessageId: "2a00f", state: "UNDELIV", error: "3:27", verdict: { kind: "failed", permanent: true } });
  });

  test("TLVs only (empty short_message)", () => {
    expect(receiptOf(receiptPdu("", { receiptedMessageId: "x1", messageState: 2 }))?.verdict).toEqual({ kind: "delivered" });
  });

  test("no id anywhere: no receipt", () => {
    expect(receiptOf(receiptPdu("stat:DELIVRD"))).toBeUndefined();
  });
});

describe("state mapping", () => {
  test.each([
    ["DELIVRD", { kind: "delivered" }],
    ["UNDELIV", { kind: "failed", permanent: true }],
    ["REJECTD", { kind: "failed", permanent: true }],
    ["SKIPPED", { kind: "failed", permanent: true }],
    ["EXPIRED", { kind: "failed", permanent: false }],
    ["DELETED", { kind: "failed", permanent: false }],
    ["ACCEPTD", { kind: "waiting" }],
    ["ENROUTE", { kind: "waiting" }],
    ["UNKNOWN", { kind: "waiting" }],
    ["SOMETHING", { kind: "waiting" }],
    ["delivrd", { kind: "delivered" }],
  ])("%s → %j", (state, verdict) => {
    expect(verdictOf(state)).toEqual(verdict);
  });

  test("message_state TLV values name the same states", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9].map(stateName)).toEqual(["ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD", "SKIPPED"]);
    expect(stateName(42)).toBe("STATE_42");
  });
});

describe("message id forms", () => {
  test("decimal and hexadecimal forms of the same id", () => {
    expect(messageIdForms("172033")).toEqual(expect.arrayContaining(["172033", "2a001", "2A001"]));
    expect(messageIdForms("2a001")).toEqual(expect.arrayContaining(["2a001", "172033", "2A001"]));
    expect(messageIdForms("abc-123")).toEqual(["abc-123"]);
    expect(messageIdForms("000123")).toContain("123");
    expect(messageIdForms("2a001")[0]).toBe("2a001");
  });
});
