import { decodeGsm7, decodeUcs2, encodeGsm7, encodeUcs2, gsm7Septets, GSM7_ESCAPE, isGsm7 } from "./gsm7";

const BASIC_SAMPLE = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà";

describe("GSM 03.38 default alphabet", () => {
  test("well-known positions of the default table", () => {
    expect(gsm7Septets("@")).toEqual([0x00]);
    expect(gsm7Septets("£")).toEqual([0x01]);
    expect(gsm7Septets("\n")).toEqual([0x0a]);
    expect(gsm7Septets("Δ")).toEqual([0x10]);
    expect(gsm7Septets("¤")).toEqual([0x24]);
    expect(gsm7Septets("¡")).toEqual([0x40]);
    expect(gsm7Septets("A")).toEqual([0x41]);
    expect(gsm7Septets("§")).toEqual([0x5f]);
    expect(gsm7Septets("¿")).toEqual([0x60]);
    expect(gsm7Septets("à")).toEqual([0x7f]);
  });

  test("the extension table is reached through the escape", () => {
    const expected: Record<string, number> = { "\f": 0x0a, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2f, "[": 0x3c, "~": 0x3d, "]": 0x3e, "|": 0x40, "€": 0x65 };
    for (const [char, code] of Object.entries(expected)) expect(gsm7Septets(char)).toEqual([GSM7_ESCAPE, code]);
  });

  test("characters outside both tables are not representable", () => {
    for (const char of ["ç", "`", "á", "’", "“", "👋", "Ж", "\t"]) expect(gsm7Septets(char)).toBeUndefined();
    expect(isGsm7(BASIC_SAMPLE + "^{}\\[~]|€\f")).toBe(true);
    expect(isGsm7("façade")).toBe(false);
    expect(encodeGsm7("façade")).toBeUndefined();
  });

  test("encode and decode round trip every character of both tables", () => {
    const all = BASIC_SAMPLE + "^{}\\[~]|€\f";
    const septets = encodeGsm7(all)!;
    expect([...septets].every((s) => s < 0x80)).toBe(true);
    expect(decodeGsm7(septets)).toBe(all);
  });

  test("the 128 septets of the default table decode to 127 characters and the escape", () => {
    const septets = Buffer.from(Array.from({ length: 128 }, (_, i) => i).filter((i) => i !== GSM7_ESCAPE));
    const text = decodeGsm7(septets);
    expect([...text]).toHaveLength(127);
    expect(encodeGsm7(text)).toEqual(septets);
  });

  test("an unknown escape reads as the default character; a lone escape at the end is dropped", () => {
    expect(decodeGsm7(Buffer.from([GSM7_ESCAPE, 0x41, 0x42]))).toBe("AB");
    expect(decodeGsm7(Buffer.from([0x41, GSM7_ESCAPE]))).toBe("A");
  });
});

describe("UCS-2", () => {
  test("UTF-16BE with surrogate pairs", () => {
    expect(encodeUcs2("hi 👋").toString("hex")).toBe("006800690020d83ddc4b");
    expect(decodeUcs2(encodeUcs2("Grüße 👋 €"))).toBe("Grüße 👋 €");
    expect(decodeUcs2(Buffer.from([0x00, 0x41, 0x00]))).toBe("A");
  });
});
