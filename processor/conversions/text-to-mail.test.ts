import { simpleParser, type AddressObject } from "mailparser";
import { ACCEPTED_AT, sampleMeta, samplePlan, textPayload } from "./fixtures";
import { defaultSubject, mailAddressFor, textToMail } from "./text-to-mail";
import { ConversionError } from "./types";

const plan = samplePlan("text/plain; charset=utf-8", "message/rfc822");
const toMail = textToMail({ mailDomain: "uims.local" });
const address = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a[0] : a)?.value[0];

describe("text/plain → message/rfc822", () => {
  test("a well-formed mail: From, To, Subject, Date, Message-ID, UTF-8 text", async () => {
    const text = "Hallo Bob,\nGrüße 👋 und 5 €.";
    const { payload, segments } = await toMail(textPayload(text, { subject: "Grüße" }), sampleMeta(), plan);
    expect(payload.contentType).toBe("message/rfc822");
    expect(payload.subject).toBe("Grüße");
    expect(payload.attachments).toEqual([]);
    expect(segments).toBe(0);
    const raw = payload.body.toString("latin1");
    expect(raw).toMatch(/^MIME-Version: 1\.0\r$/m);
    expect(raw).not.toMatch(/[^\r]\n/);
    expect(/^[\x20-\x7e\r\n\t]*$/.test(raw)).toBe(true);
    const mail = await simpleParser(payload.body);
    expect(address(mail.from)).toEqual({ name: "alice", address: "alice@uims.local" });
    expect(address(mail.to)).toEqual({ name: "", address: "bob@example.org" });
    expect(mail.subject).toBe("Grüße");
    expect(mail.messageId).toBe("<0b9c5a86-4f0e-4d55-9d1f-2f7f3b6c1a10@uims.local>");
    expect(mail.date?.getTime()).toBe(ACCEPTED_AT);
    // A MIME body ends with a line break.
    expect(mail.text).toBe(`${text}\n`);
    expect((mail.headers.get("content-type") as { params: Record<string, string> }).params.charset).toBe("utf-8");
  });

  test("ISO-8859-1 text is decoded from its charset", async () => {
    const body = Buffer.from("Schöne Grüße", "latin1");
    const { payload } = await toMail(textPayload(body, { contentType: "text/plain; charset=ISO-8859-1" }), sampleMeta(), plan);
    expect((await simpleParser(payload.body)).text).toBe("Schöne Grüße\n");
  });

  test("attachments become MIME parts", async () => {
    const pdf = Buffer.alloc(5000, 7);
    const { payload } = await toMail(
      textPayload("see attached", { attachments: [{ filename: "plan.pdf", contentType: "application/pdf", data: pdf }, { filename: "Übersicht.txt", contentType: "", data: Buffer.from("x") }] }),
      sampleMeta(),
      plan,
    );
    const mail = await simpleParser(payload.body);
    expect(mail.text).toBe("see attached");
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.size])).toEqual([
      ["plan.pdf", "application/pdf", 5000],
      ["Übersicht.txt", "text/plain", 1],
    ]);
    expect(mail.attachments[0]!.content.equals(pdf)).toBe(true);
  });

  test("without a subject: Message from <sender>", async () => {
    const { payload } = await toMail(textPayload("hi"), sampleMeta(), plan);
    expect(payload.subject).toBe("Message from alice");
    expect((await simpleParser(payload.body)).subject).toBe("Message from alice");
    expect(defaultSubject(sampleMeta({ sender: "", senderAddress: "sms:+491701234567" }))).toBe("Message from +491701234567");
  });

  test("the configured mail domain names senders without a mail address", async () => {
    const conv = textToMail({ mailDomain: "mesh.example.net" });
    const sms = await conv(textPayload("x"), sampleMeta({ sender: "", senderAddress: "sms:+491701234567" }), plan);
    const mail = await simpleParser(sms.payload.body);
    expect(address(mail.from)).toEqual({ name: "", address: "+491701234567@sms.mesh.example.net" });
    expect(mail.messageId).toMatch(/@mesh\.example\.net>$/);
  });

  test("a header cannot be injected through the subject", async () => {
    const { payload } = await toMail(textPayload("x", { subject: "Hi\r\nBcc: eve@example.org" }), sampleMeta(), plan);
    const mail = await simpleParser(payload.body);
    expect(mail.bcc).toBeUndefined();
    expect(mail.subject).not.toContain("\n");
  });

  test("refusals: no mail target address, unknown charset", async () => {
    await expect(toMail(textPayload("x"), sampleMeta({ targetAddress: "+491701234567" }), plan)).rejects.toThrow(
      new ConversionError('the target address "+491701234567" is not a mail address'),
    );
    await expect(toMail(textPayload("x", { contentType: "text/plain; charset=x-unknown" }), sampleMeta(), plan)).rejects.toThrow('charset "x-unknown" is not supported');
  });
});

describe("mail addresses for mesh addresses", () => {
  test.each([
    ["mailto:carol@example.org", "carol@example.org"],
    ["im:alice", "alice@uims.local"],
    ["alice", "alice@uims.local"],
    ["sms:+491701234567", "+491701234567@sms.uims.local"],
    ["fax:+4930123456", "+4930123456@fax.uims.local"],
    ["dave@example.org", "dave@example.org"],
  ])("%s → %s", (input, expected) => {
    expect(mailAddressFor(input, "uims.local")).toBe(expected);
  });

  test("empty → undefined", () => {
    expect(mailAddressFor("", "uims.local")).toBeUndefined();
    expect(mailAddressFor("im:", "uims.local")).toBeUndefined();
  });
});
