import { randomBytes } from "node:crypto";
import MailComposer from "nodemailer/lib/mail-composer";
import { Priority } from "../../gen/uims/common/v1/types";
import { inspectMessage } from "./message";

const crlf = (lines: string[]) => Buffer.from(lines.join("\r\n") + "\r\n");

describe("inspecting a message at the end of DATA", () => {
  test("a composed mail passes, with its subject, Message-ID, header section and priority", async () => {
    const raw = await new MailComposer({ from: "x@example.org", to: "bob@uims.local", subject: "Grüße", text: "hi", headers: { "X-Priority": "1 (Highest)" }, messageId: "<m1@example.org>" }).compile().build();
    const result = await inspectMessage(raw);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.mail.subject).toBe("Grüße");
    expect(result.mail.messageId).toBe("<m1@example.org>");
    expect(result.mail.priority).toBe(Priority.PRIORITY_HIGH);
    expect(result.mail.headerSection).toMatch(/^From: x@example.org\r\n/m);
    expect(result.mail.hops).toBe(0);
  });

  test("a message of header fields only is well formed (RFC 5322: the body is optional)", async () => {
    expect((await inspectMessage(crlf(["Subject: just a header", "From: x@example.org"]))).ok).toBe(true);
  });

  test("Received fields are counted (loop detection)", async () => {
    const result = await inspectMessage(crlf(["Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000", "Received: from c by d; Mon, 1 Jan 2024 00:00:00 +0000", "Subject: s", "", "body"]));
    expect(result.ok && result.mail.hops).toBe(2);
  });

  const malformed: Array<[string, Buffer, RegExp]> = [
    ["an empty message", Buffer.alloc(0), /empty/],
    ["random bytes", Buffer.concat([Buffer.from([0x01, 0xff, 0x20]), randomBytes(4096)]), /is not a "Name: value" field/],
    ["no blank line between header and body", crlf(["Subject: hi", "this should have been the body"]), /header line 2 is not a "Name: value" field.*blank line/],
    ["text without any header", crlf(["hello there", "", "more"]), /header line 1 /],
    ["a multipart without a boundary parameter", crlf(["Subject: x", "Content-Type: multipart/mixed", "", "--b", "", "x", "--b--"]), /without a boundary parameter/],
    ["a multipart whose boundary never occurs", crlf(["Subject: x", 'Content-Type: multipart/mixed; boundary="abc"', "", "--xyz", "Content-Type: text/plain", "", "hello", "--xyz--"]), /boundary "abc" never occurs/],
  ];

  test.each(malformed)("%s is malformed", async (_name, raw, reason) => {
    const result = await inspectMessage(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toMatch(reason);
      expect(result.reason).not.toMatch(/[\r\n]/);
    }
  });

  test("a multipart with its boundary passes", async () => {
    const raw = await new MailComposer({ from: "x@example.org", to: "bob@uims.local", subject: "s", text: "t", attachments: [{ filename: "a.txt", content: "a" }] }).compile().build();
    expect((await inspectMessage(raw)).ok).toBe(true);
  });
});
