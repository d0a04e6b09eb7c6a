import { createLogger } from "../../common/logger";
import { SmtpSink } from "../../test/support/smtp";
import { classifyRelayError, relayTarget, SmtpRelay } from "./smtp-out";

const logger = createLogger({ service: "test", nodeId: "test", level: "silent" });
const raw = Buffer.from("From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n");

describe("classifying what the relay answered", () => {
  test("5yz is permanent with the reply as reason; 4yz and 503 are not", () => {
    expect(classifyRelayError({ responseCode: 550, response: "550 5.1.1 no such user", message: "x" })).toEqual({ ok: false, permanent: true, reason: "550 5.1.1 no such user" });
    expect(classifyRelayError({ responseCode: 451, response: "451 4.3.0 later", message: "x" })).toEqual({ ok: false, permanent: false, reason: "451 4.3.0 later" });
    expect(classifyRelayError({ responseCode: 503, response: "503 bad sequence", message: "x" }).permanent).toBe(false);
  });

  test("no reply at all (refused connection, timeout) is temporary", () => {
    expect(classifyRelayError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ESOCKET" }))).toEqual({
      ok: false,
      permanent: false,
      reason: "relay unreachable: ESOCKET: connect ECONNREFUSED 127.0.0.1:1",
    });
  });

  test("the relay's address is shown without credentials", () => {
    expect(relayTarget("smtp://user:secret@relay.example.org:587")).toBe("smtp://relay.example.org:587");
    expect(relayTarget(undefined)).toBe("");
  });
});

describe("the relay against a real SMTP peer", () => {
  const sink = new SmtpSink();
  beforeAll(() => sink.start());
  afterAll(() => sink.stop());

  test("sends the raw message with the given envelope, the null sender included", async () => {
    const relay = new SmtpRelay({ url: sink.url, timeoutMs: 5_000, unhealthyAfter: 3, name: "uims.local", logger });
    expect(await relay.send({ from: "postmaster@uims.local", to: ["b@example.org"] }, raw)).toMatchObject({ ok: true, response: expect.stringMatching(/^250 /) });
    expect(await relay.send({ from: "", to: ["c@example.org"] }, raw)).toMatchObject({ ok: true });
    const first = await sink.waitForMail((m) => m.envelope.to.includes("b@example.org"));
    expect(first.envelope.from).toBe("postmaster@uims.local");
    expect(first.raw.equals(raw)).toBe(true);
    expect((await sink.waitForMail((m) => m.envelope.to.includes("c@example.org"))).envelope.from).toBe("");
    relay.close();
  });

  test("unhealthy after N transient failures in a row; a probe brings it back once the relay answers", async () => {
    const relay = new SmtpRelay({ url: sink.url, timeoutMs: 5_000, unhealthyAfter: 2, name: "uims.local", logger });
    sink.refuseNext(2, 421, "4.3.2 shutting down");
    expect(await relay.send({ from: "a@uims.local", to: ["d@example.org"] }, raw)).toMatchObject({ ok: false, permanent: false });
    expect(relay.health().healthy).toBe(true);
    expect(await relay.send({ from: "a@uims.local", to: ["d@example.org"] }, raw)).toMatchObject({ ok: false, permanent: false });
    const down = relay.health();
    expect(down.healthy).toBe(false);
    expect(down.detail).toMatch(/^relay smtp:\/\/127\.0\.0\.1:\d+ failed its last 2 attempts: 421/);
    // health() started a probe (connect, EHLO, QUIT), which succeeds: the sink only refuses messages.
    for (let i = 0; i < 100 && !relay.health().healthy; i++) await new Promise((r) => setTimeout(r, 20));
    expect(relay.health().healthy).toBe(true);
    relay.close();
  });

  test("a permanent refusal does not count against the relay's health", async () => {
    const relay = new SmtpRelay({ url: sink.url, timeoutMs: 5_000, unhealthyAfter: 1, name: "uims.local", logger });
    sink.refuseNext(1, 550, "5.1.1 unknown");
    expect(await relay.send({ from: "a@uims.local", to: ["e@example.org"] }, raw)).toEqual({ ok: false, permanent: true, reason: "550 5.1.1 unknown" });
    expect(relay.health().healthy).toBe(true);
    relay.close();
  });

  test("an unreachable relay fails temporarily; no relay configured is unhealthy and sends nothing", async () => {
    const closed = new SmtpSink();
    const port = await closed.start();
    await closed.stop();
    const relay = new SmtpRelay({ url: `smtp://127.0.0.1:${port}`, timeoutMs: 2_000, unhealthyAfter: 1, name: "uims.local", logger });
    expect(await relay.send({ from: "a@uims.local", to: ["f@example.org"] }, raw)).toMatchObject({ ok: false, permanent: false, reason: expect.stringMatching(/^relay unreachable: /) });
    expect(relay.health().healthy).toBe(false);
    relay.close();

    const none = new SmtpRelay({ timeoutMs: 1_000, unhealthyAfter: 1, name: "uims.local", logger });
    expect(none.health()).toEqual({ healthy: false, detail: expect.stringContaining("SMTP_RELAY_URL") });
    expect(await none.send({ from: "a@uims.local", to: ["f@example.org"] }, raw)).toMatchObject({ ok: false, permanent: false });
  });
});
