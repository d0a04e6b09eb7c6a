import { SMS_CONTENT_TYPE } from "../../common/content/sms";
import { sampleMeta, samplePlan, textPayload } from "./fixtures";
import { ConversionError, Conversions } from "./index";

const conversions = new Conversions({ mailDomain: "uims.local" });

describe("choosing a conversion", () => {
  test.each([
    ["message/rfc822", "text/plain; charset=utf-8"],
    ["text/plain; charset=iso-8859-1", "message/rfc822"],
    ["Text/Plain", SMS_CONTENT_TYPE],
    ["message/rfc822", SMS_CONTENT_TYPE],
    [SMS_CONTENT_TYPE, "text/plain; charset=utf-8"],
    [SMS_CONTENT_TYPE, "message/rfc822"],
  ])("%s → %s", (source, target) => {
    expect(typeof conversions.select(source, target)).toBe("function");
  });

  test.each([
    ["application/octet-stream", SMS_CONTENT_TYPE, "no conversion from application/octet-stream to application/vnd.uims.sms"],
    ["text/plain", "audio/wav", "no conversion from text/plain to audio/wav"],
    ["message/rfc822", "image/tiff", "no conversion from message/rfc822 to image/tiff"],
    ["image/png; name=x.png", "text/plain", "no conversion from image/png to text/plain"],
    ["", "text/plain", "no conversion from (no content type) to text/plain"],
    ["text/html", "message/rfc822", "no conversion from text/html to message/rfc822"],
  ])("%s → %s is refused", (source, target, reason) => {
    expect(() => conversions.select(source, target)).toThrow(new ConversionError(reason));
  });
});

describe("round trips", () => {
  test("text → mail → text keeps the text, the subject and the attachments", async () => {
    const attachments = [
      { filename: "photo.jpg", contentType: "image/jpeg", data: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff)) },
      { filename: "Notizen äöü.txt", contentType: "text/plain", data: Buffer.from("Zeile 1\nZeile 2\n") },
    ];
    const original = textPayload("Hallo Bob,\n\nGrüße 👋 mit ^{}[~]|€ und \\ Zeichen.\n-- \nAlice", { subject: "Grüße aus Köln", attachments });
    const meta = sampleMeta();
    const mail = await conversions.select("text/plain", "message/rfc822")(original, meta, samplePlan("text/plain", "message/rfc822"));
    const back = await conversions.select("message/rfc822", "text/plain")(mail.payload, meta, samplePlan("message/rfc822", "text/plain"));
    expect(back.payload.body.toString("utf8")).toBe(original.body.toString("utf8"));
    expect(back.payload.subject).toBe("Grüße aus Köln");
    expect(back.payload.attachments).toEqual(attachments);
  });

  test("SMS → mail → SMS keeps the text", async () => {
    const meta = sampleMeta({ sender: "", senderAddress: "sms:+491701234567" });
    const text = "Bin gleich da! 👍";
    const sms = await conversions.select("text/plain", SMS_CONTENT_TYPE)(textPayload(text), meta, samplePlan("text/plain", SMS_CONTENT_TYPE));
    const mail = await conversions.select(SMS_CONTENT_TYPE, "message/rfc822")(sms.payload, meta, samplePlan(SMS_CONTENT_TYPE, "message/rfc822"));
    const again = await conversions.select("message/rfc822", SMS_CONTENT_TYPE)(mail.payload, meta, samplePlan("message/rfc822", SMS_CONTENT_TYPE));
    // The mail got a subject on the way, which an SMS carries as its first line.
    expect(JSON.parse(again.payload.body.toString()).text).toBe(`Message from +491701234567\n${text}`);
  });
});
