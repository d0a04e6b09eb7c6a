import { decodeGsm7, decodeUcs2, GSM7_ESCAPE } from "../../common/content/gsm7";
import type { SmsContent } from "../../common/content/sms";
import { concatenationHeader, encodeSms } from "./sms-encoding";
import { ConversionError } from "./types";

const REF = 0x5a;
const encode = (text: string, maxSegments = 0) => encodeSms(text, { reference: REF, maxSegments });
const segments = (c: SmsContent) => c.segments.map((s) => Buffer.from(s, "base64"));
/** The user data after the header of a concatenated segment. */
const userData = (c: SmsContent) => segments(c).map((s) => (c.udhi ? s.subarray(6) : s));
const udh = (total: number, seq: number) => [0x05, 0x00, 0x03, REF, total, seq];

describe("GSM 7-bit", () => {
  test("160 characters fit one SMS: unpacked septets, data_coding 0, no UDH", () => {
    const text = "a".repeat(160);
    const c = encode(text);
    expect(c).toMatchObject({ encoding: "gsm7", dataCoding: 0, udhi: false, text });
    expect(segments(c)).toEqual([Buffer.alloc(160, 0x61)]);
  });

  test("161 characters need two segments of 153 and 8 septets, each behind the 6-octet UDH", () => {
    const c = encode("a".repeat(161));
    expect(c.udhi).toBe(true);
    const [first, second] = segments(c);
    expect([...first!.subarray(0, 6)]).toEqual(udh(2, 1));
    expect([...second!.subarray(0, 6)]).toEqual(udh(2, 2));
    expect(first!.length).toBe(6 + 153);
    expect(second!.length).toBe(6 + 8);
    expect(userData(c).map((d) => decodeGsm7(d)).join("")).toBe("a".repeat(161));
  });

  test("an escaped character counts two septets", () => {
    expect(segments(encode("€".repeat(80)))).toHaveLength(1);
    const c = encode("€".repeat(81));
    expect(c.encoding).toBe("gsm7");
    expect(segments(c)).toHaveLength(2);
    expect(userData(c)[0]!.length).toBe(152);
  });

  test("an escape pair is never split across segments", () => {
    // 152 septets, then "€" (2 septets) would end at 154: it starts the second segment instead.
    const c = encode("a".repeat(152) + "€" + "b".repeat(10));
    const [first, second] = userData(c);
    expect(first!.length).toBe(152);
    expect([...second!.subarray(0, 2)]).toEqual([GSM7_ESCAPE, 0x65]);
    expect(userData(c).map((d) => decodeGsm7(d)).join("")).toBe("a".repeat(152) + "€" + "b".repeat(10));
  });

  test("an escape pair that fits exactly ends the segment", () => {
    const c = encode("a".repeat(151) + "[" + "b".repeat(20));
    const [first] = userData(c);
    expect(first!.length).toBe(153);
    expect([...first!.subarray(151)]).toEqual([GSM7_ESCAPE, 0x3c]);
  });

  test("every segment of a long message carries the same reference, its count and its number", () => {
    const c = encode("x".repeat(153 * 3 + 1));
    expect(segments(c).map((s) => [...s.subarray(0, 6)])).toEqual([udh(4, 1), udh(4, 2), udh(4, 3), udh(4, 4)]);
  });

  test("the extension characters and form feed are escaped", () => {
    const c = encode("^{}\\[~]|€\f");
    expect([...userData(c)[0]!]).toEqual([0x1b, 0x14, 0x1b, 0x28, 0x1b, 0x29, 0x1b, 0x2f, 0x1b, 0x3c, 0x1b, 0x3d, 0x1b, 0x3e, 0x1b, 0x40, 0x1b, 0x65, 0x1b, 0x0a]);
  });
});

describe("UCS-2", () => {
  test("a character outside GSM 03.38 switches the whole text to UCS-2 (data_coding 8)", () => {
    const c = encode("Grüße aus der Façade");
    expect(c).toMatchObject({ encoding: "ucs2", dataCoding: 8, udhi: false });
    expect(decodeUcs2(segments(c)[0]!)).toBe("Grüße aus der Façade");
  });

  test("an emoji forces UCS-2 and is sent as a surrogate pair", () => {
    const c = encode("hi 👋");
    expect(c.encoding).toBe("ucs2");
    expect(segments(c)[0]!.toString("hex")).toBe("006800690020d83ddc4b");
  });

  test("€ alone stays GSM 7-bit (extension table); with an emoji it is one UCS-2 character", () => {
    expect(encode("5 €").encoding).toBe("gsm7");
    const c = encode("5 € 👍");
    expect(c.encoding).toBe("ucs2");
    expect(segments(c)[0]!.toString("hex")).toBe("0035002020ac0020d83ddc4d");
  });

  test("70 characters fit one SMS, 71 need two segments of 67 and 4", () => {
    expect(segments(encode("ж".repeat(70)))).toHaveLength(1);
    const c = encode("ж".repeat(71));
    expect(userData(c).map((d) => d.length / 2)).toEqual([67, 4]);
    expect([...segments(c)[1]!.subarray(0, 6)]).toEqual(udh(2, 2));
  });

  test("a surrogate pair is never split across segments", () => {
    const text = "ж".repeat(66) + "👋" + "ж".repeat(10);
    const c = encode(text);
    const [first, second] = userData(c);
    expect(first!.length).toBe(66 * 2);
    expect(second!.subarray(0, 4).toString("hex")).toBe("d83ddc4b");
    expect(userData(c).map((d) => decodeUcs2(d)).join("")).toBe(text);
  });

  test("a surrogate pair that fits exactly ends the segment", () => {
    const c = encode("ж".repeat(65) + "👋" + "ж".repeat(10));
    expect(userData(c)[0]!.length).toBe(67 * 2);
  });
});

describe("limits", () => {
  test("more segments than the recipient allows are refused with both numbers", () => {
    expect(() => encode("a".repeat(161), 1)).toThrow(new ConversionError("needs 2 segments, the recipient allows 1"));
    expect(() => encode("ж".repeat(200), 2)).toThrow("needs 3 segments, the recipient allows 2");
    expect(segments(encode("a".repeat(306), 2))).toHaveLength(2);
  });

  test("no more than 255 segments, the most the header can count", () => {
    expect(segments(encode("a".repeat(153 * 255)))).toHaveLength(255);
    expect(() => encode("a".repeat(153 * 255 + 1))).toThrow("needs 256 segments, a concatenated SMS has at most 255");
  });

  test("empty text is refused", () => {
    expect(() => encode("")).toThrow(ConversionError);
  });

  test("the concatenation header", () => {
    expect([...concatenationHeader(0x1ff, 3, 2)]).toEqual([0x05, 0x00, 0x03, 0xff, 3, 2]);
  });
});
