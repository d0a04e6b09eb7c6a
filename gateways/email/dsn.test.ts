import { composeBounce } from "./bounce";
import { readDeliveryStatus } from "./dsn";

const CRLF = (lines: string[]) => Buffer.from(lines.join("\r\n"));

describe("delivery status notifications", () => {
  test("a report as the gateway itself writes one: each recipient's action, status and diagnostic", async () => {
    const raw = await composeBounce(
      {
        to: "alice@example.org",
        subject: "hello",
        recipients: [
          { address: "bob@example.net", status: "5.1.1", diagnostic: "550 5.1.1 user unknown" },
          { address: "carol@example.net", status: "5.2.2", diagnostic: "552 5.2.2 mailbox full" },
        ],
        originalHeaders: "Subject: hello",
        originalMessageId: "<m1@example.org>",
        arrivedAtUnixMs: Date.now(),
      },
      { from: "postmaster@example.net", reportingMta: "example.net", id: "r1", now: new Date() },
    );
    expect(await readDeliveryStatus(raw)).toEqual([
      { action: "failed", recipient: "bob@example.net", status: "5.1.1", diagnostic: "550 5.1.1 user unknown" },
      { action: "failed", recipient: "carol@example.net", status: "5.2.2", diagnostic: "552 5.2.2 mailbox full" },
    ]);
  });

  test("another MTA's report: quoted-printable, folded fields, a delayed recipient", async () => {
    const raw = CRLF([
      "From: MAILER-DAEMON@mx.example.net",
      "To: postmaster@uims.local",
      "Subject: Delivery delayed",
      "MIME-Version: 1.0",
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain",
      "",
      "Still trying.",
      "--b1",
      "Content-Type: message/delivery-status",
      "Content-Transfer-Encoding: quoted-printable",
      "",
      "Reporting-MTA: dns; mx.example.net",
      "",
      "Original-Recipient: rfc822; dave@example.net",
      "Action: delayed",
      "Status: 4.4.1",
      "Diagnostic-Code: smtp; 421 4.4.1 connection timed out while talking to a=",
      "nother host",
      "",
      "Final-Recipient: rfc822;erin@example.net",
      "Action: failed",
      "Status: 5.7.1",
      "Diagnostic-Code: smtp; 550 5.7.1",
      " refused by policy",
      "",
      "--b1--",
      "",
    ]);
    expect(await readDeliveryStatus(raw)).toEqual([
      { action: "delayed", recipient: "dave@example.net", status: "4.4.1", diagnostic: "421 4.4.1 connection timed out while talking to another host" },
      { action: "failed", recipient: "erin@example.net", status: "5.7.1", diagnostic: "550 5.7.1 refused by policy" },
    ]);
  });

  test("a mail that is not a report is none", async () => {
    expect(await readDeliveryStatus(CRLF(["Subject: out of office", "Content-Type: text/plain", "", "I am away."]))).toBeNull();
  });
});
