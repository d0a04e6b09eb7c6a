import * as smpp from "smpp";
import { createLogger } from "../../common/logger";
import { TestSmsc } from "../../test/support/smsc";
import { shortMessageBytes, SmppSession, type IncomingDeliverSm, type SmppSessionOptions } from "./smpp-session";
import { Status } from "./smpp-status";

const silent = createLogger({ service: "test", nodeId: "test", level: "silent" });

/** A deliver_sm as the `smpp` package hands it over after reading it from the wire. */
function overTheWire(fields: Record<string, unknown>): smpp.PDU {
  const buffer = new smpp.PDU("deliver_sm", fields).toBuffer();
  return new smpp.PDU(buffer);
}

describe("shortMessageBytes undoes the smpp package's decoding", () => {
  const all7bit = Buffer.from(Array.from({ length: 128 }, (_, i) => i));
  const cases: Array<[string, number, number, Buffer, Buffer | null]> = [
    ["every septet, escapes included (GSM, data_coding 0)", 0x00, 0, Buffer.concat([all7bit, Buffer.from([0x1b, 0x1b, 0x14, 0x1b, 0x2f, 0x1b, 0x65, 0x1b, 0x41, 0x1b])]), null],
    ["IA5 (data_coding 1)", 0x01, 0, Buffer.from("id:2a001 stat:DELIVRD_x@y", "ascii"), null],
    ["every octet (Latin-1, data_coding 3)", 0x03, 0, Buffer.from(Array.from({ length: 254 }, (_, i) => i + 1)), null],
    ["binary (data_coding 4)", 0x04, 0, Buffer.from([0, 1, 2, 0xff, 0x80]), null],
    ["UCS-2 with a surrogate pair and half of one (data_coding 8)", 0x08, 0, Buffer.from([0x00, 0x41, 0xd8, 0x3d, 0xdc, 0x4b, 0x04, 0x1f, 0xd8, 0x3d]), null],
    ["GSM with a concatenation header", 0x00, 0x40, Buffer.from("Hello", "ascii"), Buffer.from([0x05, 0x00, 0x03, 0x42, 0x02, 0x01])],
    ["UCS-2 with a 16-bit reference header", 0x08, 0x40, Buffer.from([0x04, 0x1f, 0x04, 0x40]), Buffer.from([0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02])],
    ["GSM with a message class (data_coding 0xF0)", 0xf0, 0, Buffer.from([0x48, 0x1b, 0x65, 0x7f]), null],
  ];
  test.each(cases)("%s", (_name, dataCoding, esmClass, data, udh) => {
    const pdu = overTheWire({ source_addr: "4917012345", destination_addr: "4915550001", esm_class: esmClass, data_coding: dataCoding, short_message: udh ? Buffer.concat([udh, data]) : data });
    const raw = shortMessageBytes(pdu);
    expect(raw.udh).toEqual(udh);
    expect(raw.data).toEqual(data);
  });

  test("message_payload when short_message is empty", () => {
    const payload = Buffer.from([0x05, 0x00, 0x03, 0x01, 0x02, 0x02, 0x48, 0x49]);
    const pdu = overTheWire({ esm_class: 0x40, data_coding: 0, short_message: Buffer.alloc(0), message_payload: payload });
    expect(shortMessageBytes(pdu)).toEqual({ udh: payload.subarray(0, 6), data: payload.subarray(6) });
  });
});

describe("SMPP session against a test SMSC", () => {
  const credentials = { systemId: "uims", password: "secret1" };
  let smsc: TestSmsc;
  const sessions: SmppSession[] = [];

  beforeEach(async () => {
    smsc = new TestSmsc(credentials);
    await smsc.start();
  });

  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.close()));
    await smsc.stop();
  });

  function session(overrides: Partial<SmppSessionOptions> = {}): SmppSession {
    const s = new SmppSession({
      url: smsc.url,
      systemId: credentials.systemId,
      password: credentials.password,
      systemType: "",
      window: 10,
      submitsPerSecond: 1_000,
      enquireLinkMs: 30_000,
      responseTimeoutMs: 2_000,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      logger: silent,
      onDeliverSm: async () => Status.ESME_ROK,
      ...overrides,
    });
    sessions.push(s);
    return s;
  }

  const submitTo = (s: SmppSession, text = "hi") =>
    s.submit({ source: { ton: 1, npi: 1, addr: "4915550000" }, destination: { ton: 1, npi: 1, addr: "4915550123" }, esmClass: 0, dataCoding: 0, shortMessage: Buffer.from(text), registeredDelivery: 1 });

  test("binds as transceiver, reports healthy, submits", async () => {
    const s = session();
    expect(s.health()).toEqual({ healthy: false, detail: expect.stringContaining("SMSC not bound") });
    s.start();
    expect(await s.waitUntilBound(5_000)).toBe(true);
    expect(s.health().healthy).toBe(true);
    const result = await submitTo(s);
    expect(result).toEqual({ ok: true, smscMessageId: smsc.submits[0]!.smscMessageId });
    expect(smsc.submits[0]).toMatchObject({ sourceAddr: "4915550000", destinationAddr: "4915550123", destTon: 1, destNpi: 1, registeredDelivery: 1, shortMessage: Buffer.from("hi") });
  });

  test("a refused bind keeps the link down and is retried with backoff", async () => {
    const s = session({ password: "wrong" });
    s.start();
    await smsc.until(() => smsc.refusedBinds >= 3);
    expect(s.bound).toBe(false);
    expect(s.health().detail).toContain("bind refused with ESME_RINVPASWD (0x0E)");
    expect(await submitTo(s)).toMatchObject({ ok: false, temporary: true, reason: expect.stringContaining("SMSC not bound") });
  });

  test("the SMSC goes down and comes back: unhealthy, then bound again", async () => {
    const s = session();
    s.start();
    await s.waitUntilBound(5_000);
    await smsc.stop();
    await smsc.until(() => !s.bound);
    expect(s.health().healthy).toBe(false);
    expect(await submitTo(s)).toMatchObject({ ok: false, temporary: true });
    await new Promise((r) => setTimeout(r, 300));
    await smsc.start();
    expect(await s.waitUntilBound(5_000)).toBe(true);
    expect((await submitTo(s)).ok).toBe(true);
    expect(smsc.binds).toBe(2);
  });

  test("refused submits: temporary and permanent statuses", async () => {
    const s = session();
    s.start();
    await s.waitUntilBound(5_000);
    smsc.failNext(1, Status.ESME_RTHROTTLED);
    smsc.failNext(1, Status.ESME_RINVDSTADR);
    expect(await submitTo(s)).toEqual({ ok: false, temporary: true, status: 0x58, reason: "the SMSC refused submit_sm with ESME_RTHROTTLED (0x58)" });
    expect(await submitTo(s)).toEqual({ ok: false, temporary: false, status: 0x0b, reason: "the SMSC refused submit_sm with ESME_RINVDSTADR (0x0B)" });
    expect((await submitTo(s)).ok).toBe(true);
  });

  test("an unanswered submit times out (temporary) and the link is rebuilt", async () => {
    const s = session({ responseTimeoutMs: 300 });
    s.start();
    await s.waitUntilBound(5_000);
    smsc.setSilent(true);
    expect(await submitTo(s)).toMatchObject({ ok: false, temporary: true, reason: expect.stringContaining("no submit_sm_resp within 300 ms") });
    smsc.setSilent(false);
    await smsc.until(() => smsc.binds >= 2);
    expect(await s.waitUntilBound(5_000)).toBe(true);
  });

  test("an unanswered enquire_link drops the link", async () => {
    const s = session({ enquireLinkMs: 100, responseTimeoutMs: 200 });
    s.start();
    await s.waitUntilBound(5_000);
    smsc.setSilent(true);
    await smsc.until(() => smsc.binds >= 2, 5_000);
    smsc.setSilent(false);
  });

  test("deliver_sm goes to the handler; its answer is the deliver_sm_resp status", async () => {
    const seen: IncomingDeliverSm[] = [];
    const s = session({
      onDeliverSm: async (pdu) => {
        seen.push(pdu);
        return seen.length === 1 ? Status.ESME_ROK : Status.ESME_RX_T_APPN;
      },
    });
    s.start();
    await s.waitUntilBound(5_000);
    expect(await smsc.sendMo("+491701234567", "+4915550001", "hello", { encoding: "gsm7" })).toEqual([Status.ESME_ROK]);
    expect(await smsc.sendMo("+491701234567", "+4915550001", "again", { encoding: "ucs2" })).toEqual([Status.ESME_RX_T_APPN]);
    expect(seen[0]).toMatchObject({ kind: "mo", sourceAddr: "491701234567", destinationAddr: "4915550001", dataCoding: 0, udh: null, data: Buffer.from("hello") });
    expect(seen[1]).toMatchObject({ kind: "mo", dataCoding: 8, data: Buffer.from([0, 0x61, 0, 0x67, 0, 0x61, 0, 0x69, 0, 0x6e]) });
  });

  test("close unbinds", async () => {
    const s = session();
    s.start();
    await s.waitUntilBound(5_000);
    await s.close();
    await smsc.until(() => smsc.boundSessions === 0);
    expect(s.bound).toBe(false);
  });
});
