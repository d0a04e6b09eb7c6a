import * as grpc from "@grpc/grpc-js";
import { GrpcStatusError, InvalidArgumentError, RelayedRefusal } from "../../common/errors";
import { StoreUnavailableError } from "../../common/store";
import { formatReply, refusalReply, smtpError } from "./replies";
import { mapRecipient } from "./smtp-in";

describe("recipient mapping", () => {
  const map = (address: string) => mapRecipient(address, "uims.local", "sms.uims.local");

  test("a profile at the mail domain, case-insensitively", () => {
    expect(map("bob@uims.local")).toEqual({ ok: true, recipient: "bob" });
    expect(map("Bob.Smith@UIMS.LOCAL")).toEqual({ ok: true, recipient: "bob.smith" });
    expect(map("bob@uims.local.")).toEqual({ ok: true, recipient: "bob" });
  });

  test("an E.164 number at the SMS domain is an explicit sms: address", () => {
    expect(map("+491701234567@sms.uims.local")).toEqual({ ok: true, recipient: "sms:+491701234567" });
    expect(map("+491701234567@SMS.uims.local")).toEqual({ ok: true, recipient: "sms:+491701234567" });
  });

  test("what cannot be a profile or a number is an unknown user", () => {
    for (const address of ["bob+tag@uims.local", "\"quoted\"@uims.local", "0170123@sms.uims.local", "bob@sms.uims.local"]) {
      const m = map(address);
      expect(m.ok).toBe(false);
      if (!m.ok) expect(m.reply).toMatchObject({ code: 550, status: "5.1.1" });
    }
  });

  test("every other domain is refused: no relaying", () => {
    for (const address of ["bob@example.org", "bob@uims.local.example.org", "bob@xuims.local", "+491701234567@sms.example.org"]) {
      const m = map(address);
      expect(m.ok).toBe(false);
      if (!m.ok) expect(formatReply(m.reply)).toBe(`550 5.7.1 <${address}>: relaying denied`);
    }
  });
});

describe("replies for refusals", () => {
  const reply = (err: unknown) => formatReply(refusalReply(err, "bob@uims.local"));

  test("the broker's refusals, as Originator.accept passes them on", () => {
    expect(reply(new RelayedRefusal(grpc.status.NOT_FOUND, 'recipient "bob" is unknown'))).toBe('550 5.1.1 <bob@uims.local>: user unknown (recipient "bob" is unknown)');
    expect(reply(new RelayedRefusal(grpc.status.PERMISSION_DENIED, "no right"))).toMatch(/^550 5\.7\.1 /);
    expect(reply(new RelayedRefusal(grpc.status.INVALID_ARGUMENT, "meta.subject: too long"))).toMatch(/^554 5\.6\.0 /);
    expect(reply(new RelayedRefusal(grpc.status.FAILED_PRECONDITION, 'no route to "bob": im: no healthy im gateway'))).toMatch(/^451 4\.4\.4 .*no healthy im gateway.*try again later$/);
    expect(reply(new RelayedRefusal(grpc.status.ALREADY_EXISTS, "still being accepted"))).toMatch(/^451 4\.3\.0 /);
  });

  test("transient failures and anything unexpected: 4yz, the sender tries again", () => {
    expect(reply(new GrpcStatusError(grpc.status.UNAVAILABLE, "connection refused"))).toMatch(/^451 4\.3\.0 .*try again later$/);
    expect(reply(new GrpcStatusError(grpc.status.DEADLINE_EXCEEDED, "deadline"))).toMatch(/^451 4\.3\.0 /);
    expect(reply(new GrpcStatusError(grpc.status.RESOURCE_EXHAUSTED, "limit"))).toMatch(/^452 4\.3\.1 /);
    expect(reply(new StoreUnavailableError("down"))).toMatch(/^451 4\.3\.0 /);
    expect(reply(new Error("boom"))).toMatch(/^451 4\.3\.0 /);
    // Internals never reach the sender.
    expect(reply(new Error("boom"))).not.toContain("boom");
  });

  test("a payload over the core's limit is 552", () => {
    expect(reply(new InvalidArgumentError("payload", "9000000 bytes exceed the limit of 8388608"))).toMatch(/^552 5\.3\.4 message too big/);
  });

  test("the broker's reason is kept on one short line", () => {
    const r = reply(new RelayedRefusal(grpc.status.NOT_FOUND, `a\r\nb ${"x".repeat(1000)}`));
    expect(r).not.toMatch(/[\r\n]/);
    expect(r.length).toBeLessThan(400);
  });

  test("smtp-server gets the code as responseCode and the enhanced status at the start of the text", () => {
    const err = smtpError({ code: 550, status: "5.7.1", text: "<x@y>: relaying denied" });
    expect(err.responseCode).toBe(550);
    expect(err.message).toBe("5.7.1 <x@y>: relaying denied");
  });
});
