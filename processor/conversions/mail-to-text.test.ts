import MailComposer from "nodemailer/lib/mail-composer";
import { mailPayload, sampleMeta, samplePlan } from "./fixtures";
import { mailToText, readMail, safeFilename, tidyText } from "./mail-to-text";
import { ConversionError } from "./types";

const plan = samplePlan("message/rfc822", "text/plain; charset=utf-8");
const convert = (raw: string | Buffer) => mailToText(mailPayload(raw), sampleMeta(), plan);
const utf8B64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

describe("message/rfc822 → text/plain", () => {
  test("quoted-printable ISO-8859-1 body and an encoded-word subject", async () => {
    const { payload, segments } = await convert(
      [
        "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>",
        "To: bob@example.org",
        "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=ISO-8859-1",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Sch=F6ne Gr=FC=DFe, das kostet 5 =A4 =3D ein soft=",
        "break.",
        "",
      ].join("\n"),
    );
    expect(payload.contentType).toBe("text/plain; charset=utf-8");
    expect(payload.subject).toBe("Grüße aus Köln");
    expect(payload.body.toString("utf8")).toBe("Schöne Grüße, das kostet 5 ¤ = ein softbreak.");
    expect(payload.attachments).toEqual([]);
    expect(segments).toBe(0);
  });

  test("base64 UTF-8 body with a character outside the BMP", async () => {
    const text = "Привет, мир! 👋\nZweite Zeile: €";
    const { payload } = await convert(
      [
        "From: ivan@example.org",
        `Subject: =?UTF-8?B?${utf8B64("Тема 👋")}?=`,
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="UTF-8"',
        "Content-Transfer-Encoding: base64",
        "",
        ...(utf8B64(text).match(/.{1,76}/g) ?? []),
        "",
      ].join("\n"),
    );
    expect(payload.subject).toBe("Тема 👋");
    expect(payload.body.toString("utf8")).toBe(text);
  });

  test("multipart/alternative with only an HTML part becomes readable text", async () => {
    const { payload } = await convert(
      [
        "From: news@example.org",
        "Subject: HTML only",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="alt"',
        "",
        "--alt",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "<html><head><style>p { color: red }</style></head><body><p>First <b>paragraph</b>.</p>",
        "<p>Caf=C3=A9 &amp; more: <a href=3D\"https://example.org/x\">the link</a></p><ul><li>one</li><li>two</li></ul></body></html>",
        "--alt--",
        "",
      ].join("\n"),
    );
    const text = payload.body.toString("utf8");
    expect(text).not.toMatch(/[<>]|color: red|&amp;/);
    expect(text).toContain("First paragraph.");
    expect(text).toContain("Café & more: the link [https://example.org/x]");
    expect(text).toMatch(/\* one\n +\* two/);
    expect(payload.subject).toBe("HTML only");
  });

  test("a single text/html part becomes readable text", async () => {
    const { payload } = await convert(["Subject: x", "Content-Type: text/html; charset=utf-8", "", "<div>Hello<br>World</div>", ""].join("\n"));
    expect(payload.body.toString("utf8")).toBe("Hello\nWorld");
  });

  test("multipart/alternative prefers the text part", async () => {
    const raw = await new MailComposer({ from: "a@example.org", to: "b@example.org", subject: "Both", text: "the plain version", html: "<p>the <i>HTML</i> version</p>" }).compile().build();
    const { payload } = await convert(raw);
    expect(payload.body.toString("utf8")).toBe("the plain version");
  });

  test("multipart/mixed: text, HTML alternative and attachments built by MailComposer", async () => {
    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(3000, 0xa7)]);
    const png = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
    const raw = await new MailComposer({
      from: "Carol <carol@example.org>",
      to: "bob@example.org",
      subject: "Quarterly report",
      text: "Please find the report attached.\nCarol",
      html: "<p>Please find the report attached.</p>",
      attachments: [
        { filename: "report Q2.pdf", contentType: "application/pdf", content: pdf },
        { filename: "chart.png", contentType: "image/png", content: png },
        { filename: "notes.txt", content: "plain text file, not the body" },
      ],
    })
      .compile()
      .build();
    const { payload } = await convert(raw);
    expect(payload.subject).toBe("Quarterly report");
    expect(payload.body.toString("utf8")).toBe("Please find the report attached.\nCarol");
    expect(payload.attachments.map((a) => [a.filename, a.contentType])).toEqual([
      ["report Q2.pdf", "application/pdf"],
      ["chart.png", "image/png"],
      ["notes.txt", "text/plain"],
    ]);
    expect(payload.attachments[0]!.data.equals(pdf)).toBe(true);
    expect(payload.attachments[1]!.data.equals(png)).toBe(true);
    expect(payload.attachments[2]!.data.toString()).toBe("plain text file, not the body");
  });

  test("hand-written multipart/mixed: RFC 2231 file name, no file name, a path in the name", async () => {
    const { payload } = await convert(
      [
        "Subject: files",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="mix"',
        "",
        "--mix",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "three files",
        "--mix",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename*=UTF-8''%C3%BCbersicht.bin",
        "Content-Transfer-Encoding: base64",
        "",
        Buffer.from([1, 2, 3, 4]).toString("base64"),
        "--mix",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment",
        "Content-Transfer-Encoding: base64",
        "",
        Buffer.from([5, 6]).toString("base64"),
        "--mix",
        'Content-Type: text/csv; name="../../etc/passwd"',
        'Content-Disposition: attachment; filename="../../etc/passwd"',
        "",
        "a,b",
        "--mix--",
        "",
      ].join("\n"),
    );
    expect(payload.body.toString()).toBe("three files");
    expect(payload.attachments.map((a) => a.filename)).toEqual(["übersicht.bin", "attachment-2", "passwd"]);
    expect([...payload.attachments[0]!.data]).toEqual([1, 2, 3, 4]);
    expect([...payload.attachments[1]!.data]).toEqual([5, 6]);
  });

  test("a mail with only an attachment converts to attachments without text", async () => {
    const raw = await new MailComposer({ from: "a@example.org", subject: "scan", attachments: [{ filename: "scan.pdf", content: Buffer.from("%PDF") }] }).compile().build();
    const { payload } = await convert(raw);
    expect(payload.body.length).toBe(0);
    expect(payload.attachments.map((a) => a.filename)).toEqual(["scan.pdf"]);
  });

  test("an empty mail, or one without text and attachments, cannot be converted", async () => {
    await expect(convert(Buffer.alloc(0))).rejects.toThrow(new ConversionError("the mail is empty"));
    await expect(convert("Subject: nothing\n\n")).rejects.toThrow(new ConversionError("the mail has neither text nor attachments"));
  });

  test("the payload's subject is used when the mail has none", async () => {
    const { payload } = await mailToText({ ...mailPayload("Content-Type: text/plain\n\nhi\n"), subject: "from the payload" }, sampleMeta(), plan);
    expect(payload.subject).toBe("from the payload");
  });
});

describe("reading mails", () => {
  test("readMail returns subject, text and attachments", async () => {
    const raw = await new MailComposer({ subject: " padded ", text: "\r\n\r\nbody  \r\nline\r\n\r\n" }).compile().build();
    expect(await readMail(raw)).toEqual({ subject: "padded", text: "body  \nline", attachments: [] });
  });

  test("tidyText and safeFilename", () => {
    expect(tidyText(" \n\n  a \r\n-- \rc\t\n\n")).toBe("  a \n-- \nc");
    expect(safeFilename("C:\\Users\\x\\evil.exe", 0)).toBe("evil.exe");
    expect(safeFilename("bad\u0000name\u001f.txt", 0)).toBe("badname.txt");
    expect(safeFilename("..", 2)).toBe("attachment-3");
    expect(safeFilename(undefined, 0)).toBe("attachment-1");
  });
});
