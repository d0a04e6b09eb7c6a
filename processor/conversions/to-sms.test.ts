import MailComposer from "nodemailer/lib/mail-composer";
import { decodeGsm7 } from "../../common/content/gsm7";
import { decodeSmsContent, SMS_CONTENT_TYPE } from "../../common/content/sms";
import type { Payload } from "../../gen/uims/common/v1/message";
import { mailPayload, sampleMeta, samplePlan, textPayload } from "./fixtures";
import { attachmentNote, formatSize, mailToSms, smsText, textToSms } from "./to-sms";
import { ConversionError } from "./types";

const textPlan = (max = 0) => samplePlan("text/plain; charset=utf-8", SMS_CONTENT_TYPE, max);
const mailPlan = (max = 0) => samplePlan("message/rfc822", SMS_CONTENT_TYPE, max);
const content = (p: Payload) => decodeSmsContent(p.body);
const file = (filename: string, size: number) => ({ filename, contentType: "application/octet-stream", data: Buffer.alloc(size) });

describe("text/plain → SMS", () => {
  test("a short GSM text: one segment, SMS content type, no subject", async () => {
    const { payload, segments } = await textToSms(textPayload("Hello Bob, see you at 5 @ the cafe? No: cafe!"), sampleMeta(), textPlan());
    expect(segments).toBe(1);
    expect(payload).toMatchObject({ contentType: SMS_CONTENT_TYPE, attachments: [], subject: "" });
    const c = content(payload);
    expect(c).toMatchObject({ encoding: "gsm7", dataCoding: 0, udhi: false, text: "Hello Bob, see you at 5 @ the cafe? No: cafe!" });
    expect(decodeGsm7(Buffer.from(c.segments[0]!, "base64"))).toBe(c.text);
  });

  test("the subject goes first, on its own line; CRLF becomes LF", async () => {
    const { payload } = await textToSms(textPayload("line one\r\nline two", { subject: "Reminder" }), sampleMeta(), textPlan());
    expect(content(payload).text).toBe("Reminder\nline one\nline two");
  });

  test("ISO-8859-1 text is decoded before it is encoded for SMS", async () => {
    const { payload } = await textToSms(textPayload(Buffer.from("Grüße", "latin1"), { contentType: "text/plain; charset=iso-8859-1" }), sampleMeta(), textPlan());
    expect(content(payload)).toMatchObject({ encoding: "gsm7", text: "Grüße" });
  });

  test("tabs and no-break spaces become spaces, so the text stays GSM 7-bit", async () => {
    const { payload } = await textToSms(textPayload("a\tb\u00a0c"), sampleMeta(), textPlan());
    expect(content(payload)).toMatchObject({ encoding: "gsm7", text: "a b c" });
  });

  test("an emoji makes it UCS-2", async () => {
    const { payload } = await textToSms(textPayload("ok 👍"), sampleMeta(), textPlan());
    expect(content(payload)).toMatchObject({ encoding: "ucs2", dataCoding: 8 });
  });

  test("long text is concatenated and counted", async () => {
    const { payload, segments } = await textToSms(textPayload("x".repeat(400)), sampleMeta(), textPlan());
    expect(segments).toBe(3);
    const c = content(payload);
    expect(c.udhi).toBe(true);
    const refs = new Set(c.segments.map((s) => Buffer.from(s, "base64")[3]));
    expect(refs.size).toBe(1);
  });

  test("the recipient's segment limit is a hard limit", async () => {
    await expect(textToSms(textPayload("x".repeat(400)), sampleMeta(), textPlan(2))).rejects.toThrow(new ConversionError("needs 3 segments, the recipient allows 2"));
  });

  test("attachments are named in a note, not sent", async () => {
    const { payload } = await textToSms(textPayload("photos", { attachments: [file("a.jpg", 1_500_000), file("b.jpg", 2048)] }), sampleMeta(), textPlan());
    expect(content(payload).text).toBe("photos\n[attachments: a.jpg (1.4 MB), b.jpg (2 KB)]");
  });

  test("nothing but attachments, or nothing at all, is refused", async () => {
    await expect(textToSms(textPayload("", { attachments: [file("a.jpg", 10)] }), sampleMeta(), textPlan())).rejects.toThrow(
      new ConversionError("nothing to send as SMS: the message has only attachments (a.jpg)"),
    );
    await expect(textToSms(textPayload("  \n "), sampleMeta(), textPlan())).rejects.toThrow("nothing to send as SMS: the message has no text");
  });
});

describe("message/rfc822 → SMS", () => {
  test("subject, then the text part, then the attachment note", async () => {
    const raw = await new MailComposer({
      from: "carol@example.org",
      subject: "Quarterly report",
      text: "Please find the report attached.\n\nCarol\n",
      attachments: [{ filename: "report.pdf", content: Buffer.alloc(12 * 1024) }],
    })
      .compile()
      .build();
    const { payload, segments } = await mailToSms(mailPayload(raw), sampleMeta(), mailPlan());
    expect(content(payload).text).toBe("Quarterly report\nPlease find the report attached.\n\nCarol\n[attachments: report.pdf (12 KB)]");
    expect(segments).toBe(1);
  });

  test("an HTML-only mail is read as text", async () => {
    const raw = await new MailComposer({ subject: "News", html: "<h2>Big</h2><p>news &amp; more</p>" }).compile().build();
    const { payload } = await mailToSms(mailPayload(raw), sampleMeta(), mailPlan());
    expect(content(payload).text).toMatch(/^News\n[\s\S]*news & more$/i);
  });

  test("a mail with only an attachment and no subject is refused", async () => {
    const raw = await new MailComposer({ attachments: [{ filename: "scan.pdf", content: Buffer.from("%PDF") }] }).compile().build();
    await expect(mailToSms(mailPayload(raw), sampleMeta(), mailPlan())).rejects.toThrow("nothing to send as SMS: the message has only attachments (scan.pdf)");
  });

  test("the segment limit applies", async () => {
    const raw = await new MailComposer({ subject: "long", text: "y".repeat(1000) }).compile().build();
    await expect(mailToSms(mailPayload(raw), sampleMeta(), mailPlan(1))).rejects.toThrow("needs 7 segments, the recipient allows 1");
  });
});

describe("SMS text", () => {
  test("sizes", () => {
    expect([0, 1023, 1024, 1536, 10 * 1024, 1024 * 1024 * 1.25, 5 * 1024 ** 3].map(formatSize)).toEqual(["0 B", "1023 B", "1 KB", "1.5 KB", "10 KB", "1.3 MB", "5 GB"]);
  });

  test("the note names five attachments and counts the rest", () => {
    expect(attachmentNote([])).toBe("");
    const seven = Array.from({ length: 7 }, (_, i) => file(`f${i + 1}.txt`, 10));
    expect(attachmentNote(seven)).toBe("[attachments: f1.txt (10 B), f2.txt (10 B), f3.txt (10 B), f4.txt (10 B), f5.txt (10 B) and 2 more]");
  });

  test("subject only is enough", () => {
    expect(smsText("Call me", "", [])).toBe("Call me");
  });
});
