import { simpleParser } from "mailparser";
import { encodeSmsContent, SMS_CONTENT_TYPE } from "../../common/content/sms";
import type { Payload } from "../../gen/uims/common/v1/message";
import { sampleMeta, samplePlan } from "./fixtures";
import { smsToMail, smsToText } from "./from-sms";
import { encodeSms } from "./sms-encoding";
import { ConversionError } from "./types";

const sms = (text: string): Payload => ({ contentType: SMS_CONTENT_TYPE, body: encodeSmsContent(encodeSms(text, { reference: 1, maxSegments: 0 })), attachments: [], subject: "" });
const smsMeta = sampleMeta({ sender: "", senderAddress: "sms:+491701234567" });

describe("SMS → text/plain", () => {
  test("the SMS text as UTF-8", async () => {
    const { payload, segments } = await smsToText(sms("Grüße 👋"), smsMeta, samplePlan(SMS_CONTENT_TYPE, "text/plain; charset=utf-8"));
    expect(payload).toEqual({ contentType: "text/plain; charset=utf-8", body: Buffer.from("Grüße 👋"), attachments: [], subject: "" });
    expect(segments).toBe(0);
  });

  test("empty or malformed SMS content is refused", async () => {
    const blank = { ...sms("x"), body: Buffer.from(JSON.stringify({ encoding: "gsm7", dataCoding: 0, udhi: false, text: "  ", segments: ["AA=="] })) };
    const plan = samplePlan(SMS_CONTENT_TYPE, "text/plain");
    await expect(smsToText(blank, smsMeta, plan)).rejects.toThrow(new ConversionError("the SMS carries no text"));
    await expect(smsToText({ ...blank, body: Buffer.from("not json") }, smsMeta, plan)).rejects.toThrow("the SMS content is malformed: SMS content is not JSON");
  });
});

describe("SMS → message/rfc822", () => {
  test("a mail from the number's mail address with the SMS text", async () => {
    const { payload } = await smsToMail({ mailDomain: "uims.local" })(sms("Call me back"), smsMeta, samplePlan(SMS_CONTENT_TYPE, "message/rfc822"));
    expect(payload.contentType).toBe("message/rfc822");
    const mail = await simpleParser(payload.body);
    expect(mail.from?.value[0]?.address).toBe("+491701234567@sms.uims.local");
    expect(mail.subject).toBe("Message from +491701234567");
    expect(mail.text?.trimEnd()).toBe("Call me back");
  });
});
