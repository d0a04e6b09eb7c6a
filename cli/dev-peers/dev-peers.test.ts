import * as smpp from "smpp";
import { encodeGsm7, encodeUcs2 } from "../../common/content/gsm7";
import { describeMail, describeSms, startDevPeers, type DevPeers, type ReceivedMail, type ReceivedSms } from ".";
import { swaks } from "../../test/support/smtp";

/** The local SMSC and SMTP sink of `uims up`, seen from an ESME and an SMTP client. */

function connect(url: string): Promise<smpp.Session> {
  return new Promise((ok) => {
    const session = smpp.connect(url, () => ok(session));
    session.on("error", () => undefined);
  });
}

function call(send: (cb: (pdu: smpp.PDU) => void) => boolean): Promise<smpp.PDU> {
  return new Promise((ok, fail) => {
    if (!send(ok)) fail(new Error("not writable"));
  });
}

async function until<T>(probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("local peers of `uims up`", () => {
  const sms: ReceivedSms[] = [];
  const mails: ReceivedMail[] = [];
  const receipts: Array<{ id: string; status?: number }> = [];
  let peers: DevPeers;
  let esme: smpp.Session;
  const deliveries: smpp.PDU[] = [];

  beforeAll(async () => {
    peers = await startDevPeers({
      onSms: (s) => sms.push(s),
      onMail: (m) => mails.push(m),
      onReceipt: (submit, _stat, outcome) => receipts.push({ id: submit.smscMessageId, ...("status" in outcome ? { status: outcome.status } : {}) }),
      receiptDelayMs: 50,
    });
    esme = await connect(peers.smpp.url);
    esme.on("deliver_sm", (pdu: smpp.PDU) => {
      deliveries.push(pdu);
      esme.send(pdu.response());
    });
    const bound = await call((cb) => esme.bind_transceiver({ system_id: peers.smpp.systemId, password: peers.smpp.password }, cb));
    expect(bound.command_status).toBe(0);
  });

  afterAll(async () => {
    esme.destroy();
    await peers.stop();
  });

  test("a bind with the wrong password is refused", async () => {
    const other = await connect(peers.smpp.url);
    const refused = await call((cb) => other.bind_transceiver({ system_id: peers.smpp.systemId, password: "wrong" }, cb));
    expect(refused.command_status).toBe(0x0e);
    other.destroy();
  });

  test("every submit asking for a receipt gets DELIVRD after the delay; one that does not, none", async () => {
    const resp = await call((cb) =>
      esme.submit_sm({ source_addr_ton: 1, source_addr_npi: 1, source_addr: "4915550000", dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: "491701234567", data_coding: 0, registered_delivery: 1, short_message: encodeGsm7("Hi {you}")! }, cb),
    );
    const id = resp.message_id!;
    const receipt = await until(() => deliveries.find((d) => d.receipted_message_id === id));
    expect(receipt.esm_class).toBe(0x04);
    expect(receipt.message_state).toBe(2);
    expect(receipt.destination_addr).toBe("4915550000");
    await until(() => receipts.find((r) => r.id === id && r.status === 0));
    expect(sms.at(-1)).toEqual({ from: "+4915550000", to: "+491701234567", encoding: "GSM 7-bit", segments: 1, text: "Hi {you}", smscMessageIds: [id] });
    expect(describeSms(sms.at(-1)!)).toBe('SMS to +491701234567 from +4915550000, GSM 7-bit, 1 segment: "Hi {you}"');

    const quiet = await call((cb) => esme.submit_sm({ destination_addr: "491701234567", source_addr: "4915550000", data_coding: 0, registered_delivery: 0, short_message: encodeGsm7("no receipt")! }, cb));
    await new Promise((r) => setTimeout(r, 200));
    expect(deliveries.some((d) => d.receipted_message_id === quiet.message_id)).toBe(false);
  });

  test("the parts of a concatenated UCS-2 message are reported once, as one message, in order", async () => {
    const text = "Grüße 🙂, zweiter Teil";
    const bytes = encodeUcs2(text);
    const half = 12; // octets, an even number that does not split the surrogate pair
    const chunks = [bytes.subarray(0, half), bytes.subarray(half)];
    const before = sms.length;
    // The second part first: the message is whole only when both are there.
    for (const seq of [2, 1]) {
      const udh = Buffer.from([0x05, 0x00, 0x03, 0x7a, 0x02, seq]);
      await call((cb) =>
        esme.submit_sm({ dest_addr_ton: 1, destination_addr: "491709999999", source_addr: "4915550000", esm_class: 0x40, data_coding: 8, registered_delivery: 1, short_message: Buffer.concat([udh, chunks[seq - 1]!]) }, cb),
      );
      if (seq === 2) expect(sms.length).toBe(before);
    }
    const whole = await until(() => sms[before]);
    expect(whole).toMatchObject({ to: "+491709999999", encoding: "UCS-2", segments: 2, text });
    expect(sms.length).toBe(before + 1);
  });

  test("the sink keeps each mail and reports it with the message id of a mesh mail", async () => {
    const result = await swaks(peers.sink.port, [
      "--from",
      "postmaster@uims.local",
      "--to",
      "someone@example.org",
      "--header",
      "Subject: Message from alice",
      "--header",
      "From: alice <alice@uims.local>",
      "--header",
      "Message-Id: <0b9c5a86-4f0e-4d55-9d1f-2f7f3b6c1a10@uims.local>",
      "--body",
      "two\nlines",
    ]);
    expect(result.exitCode).toBe(0);
    const mail = await until(() => mails.at(-1));
    expect(describeMail(mail, "uims.local")).toBe(
      'mail to someone@example.org from alice@uims.local, subject "Message from alice", message 0b9c5a86-4f0e-4d55-9d1f-2f7f3b6c1a10: "two\\nlines"',
    );
    // Another domain's Message-ID is not a message id of this mesh.
    expect(describeMail(mail, "example.org")).not.toContain("message 0b9c");
  });
});
