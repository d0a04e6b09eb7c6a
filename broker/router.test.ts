import * as grpc from "@grpc/grpc-js";
import type { Profile } from "../gen/uims/admin/v1/admin";
import { NodeKind } from "../gen/uims/broker/v1/broker";
import { Medium } from "../gen/uims/common/v1/types";
import { parseRecipient, type Recipient } from "../common/addresses";
import { BrokerClient } from "../common/mesh/broker-client";
import { callUnary } from "../common/mesh/peer";
import {
  RecordingGateway,
  STORE_KINDS,
  createProfile,
  generateMeshSecrets,
  identityFor,
  metaFor,
  startBroker,
  testStore,
  type RunningBroker,
} from "../test/support/mesh";
import { inQuietHours, localMinute, planRoute, SMS_CONTENT_TYPE, targetContentType, type RouteInput, type RouteNode } from "./router";

const { MEDIUM_IM: IM, MEDIUM_EMAIL: EMAIL, MEDIUM_SMS: SMS, MEDIUM_VOICE: VOICE, MEDIUM_FAX: FAX } = Medium;
const TEXT = "text/plain; charset=utf-8";
// Monday 15 January 2024, 22:30 UTC: 23:30 in Berlin (UTC+1), 17:30 in New York (UTC-5).
const MONDAY_2230_UTC = Date.UTC(2024, 0, 15, 22, 30);

function profile(p: Partial<Profile> & { clientId: string }): Profile {
  return { displayName: "", addresses: [], preferredMedia: [], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0, ...p };
}

const BOB = profile({
  clientId: "bob",
  addresses: [
    { medium: IM, address: "bob" },
    { medium: SMS, address: "+491701234567" },
    { medium: EMAIL, address: "bob@example.org" },
  ],
  preferredMedia: [IM, SMS, EMAIL],
  limits: { maxMessagesPerDay: 0, maxSmsSegments: 4, maxPayloadBytes: 0 },
});

const ALL_GATEWAYS: Record<number, RouteNode[]> = {
  [IM]: [
    { nodeId: "gw-im-a", endpoint: "10.0.0.1:50051" },
    { nodeId: "gw-im-b", endpoint: "10.0.0.2:50051" },
  ],
  [EMAIL]: [{ nodeId: "gw-email-1", endpoint: "10.0.1.1:50051" }],
  [SMS]: [{ nodeId: "gw-sms-1", endpoint: "10.0.2.1:50051" }],
  [VOICE]: [{ nodeId: "gw-voice-1", endpoint: "10.0.3.1:50051" }],
  [FAX]: [{ nodeId: "gw-fax-1", endpoint: "10.0.4.1:50051" }],
};

function recipient(raw: string): Recipient {
  const parsed = parseRecipient(raw);
  if ("error" in parsed) throw new Error(parsed.error);
  return parsed;
}

function input(overrides: Partial<RouteInput> & { gatewaysOf?: Partial<Record<number, RouteNode[]>> } = {}): RouteInput {
  const { gatewaysOf, ...rest } = overrides;
  const table = { ...ALL_GATEWAYS, ...(gatewaysOf ?? {}) };
  return {
    nowUnixMs: MONDAY_2230_UTC,
    sender: null,
    recipient: recipient("bob"),
    recipientProfile: BOB,
    presence: { gatewayId: "gw-im-b", online: true, atUnixMs: MONDAY_2230_UTC - 1_000 },
    sourceContentType: TEXT,
    excludeMedia: [],
    gateways: (medium) => table[medium] ?? [],
    processors: [{ nodeId: "proc-1", endpoint: "10.0.9.1:50051" }],
    ...rest,
  };
}

const offline = { gatewayId: "gw-im-b", online: false, atUnixMs: MONDAY_2230_UTC - 60_000 };

describe("planRoute: preferences and presence", () => {
  test("the first preferred medium that works is chosen; candidates keep the preference order", () => {
    const plan = planRoute(input({ recipientProfile: { ...BOB, preferredMedia: [EMAIL, SMS, IM] } }));
    expect(plan.chosen).toMatchObject({ medium: EMAIL, address: "bob@example.org", gateway: { nodeId: "gw-email-1" }, immediate: true });
    expect(plan.candidates.map((c) => c.medium)).toEqual([EMAIL, SMS, IM]);
    expect(plan.candidates.every((c) => c.usable)).toBe(true);
    expect(plan.refusal).toBeUndefined();
  });

  test("without preferences the order of the addresses is used", () => {
    const plan = planRoute(input({ recipientProfile: { ...BOB, preferredMedia: [], addresses: [BOB.addresses[2]!, BOB.addresses[0]!] } }));
    expect(plan.candidates.map((c) => c.medium)).toEqual([EMAIL, IM]);
    expect(plan.chosen?.medium).toBe(EMAIL);
  });

  test("im online: im, on the gateway that holds the client's stream", () => {
    const plan = planRoute(input());
    expect(plan.chosen).toMatchObject({ medium: IM, address: "bob", gateway: { nodeId: "gw-im-b", endpoint: "10.0.0.2:50051" }, immediate: true });
    expect(plan.chosen?.conversion).toBeUndefined();
    expect(plan.candidates[0]).toMatchObject({ medium: IM, usable: true, reason: "online", gatewayId: "gw-im-b" });
  });

  test("im offline with sms available: sms first, since it reaches the recipient now", () => {
    const plan = planRoute(input({ presence: offline }));
    expect(plan.chosen).toMatchObject({ medium: SMS, address: "+491701234567", immediate: true });
    expect(plan.candidates[0]).toMatchObject({ medium: IM, usable: true, reason: "offline: the message waits in the inbox" });
  });

  test("im offline and nothing else: the im inbox, not immediate", () => {
    const plan = planRoute(input({ presence: offline, gatewaysOf: { [SMS]: [], [EMAIL]: [] } }));
    expect(plan.chosen).toMatchObject({ medium: IM, address: "bob", gateway: { nodeId: "gw-im-b" }, immediate: false });
    expect(plan.refusal).toBeUndefined();
  });

  test("never seen, or seen on a gateway that is gone: any im gateway keeps it, not immediate", () => {
    const onlyIm = { [SMS]: [], [EMAIL]: [] };
    expect(planRoute(input({ presence: null, gatewaysOf: onlyIm })).chosen).toMatchObject({ medium: IM, gateway: { nodeId: "gw-im-a" }, immediate: false });
    const gone = { gatewayId: "gw-im-z", online: true, atUnixMs: MONDAY_2230_UTC };
    expect(planRoute(input({ presence: gone, gatewaysOf: onlyIm })).chosen).toMatchObject({ medium: IM, gateway: { nodeId: "gw-im-a" }, immediate: false });
  });
});

describe("planRoute: quiet hours", () => {
  const nightBerlin = { startMinute: 22 * 60, endMinute: 7 * 60, timeZone: "Europe/Berlin", media: [] };
  const quietBob = (quietHours: Profile["quietHours"], preferredMedia = [SMS, EMAIL, IM]) => ({ ...BOB, preferredMedia, quietHours });

  test("local minutes follow the time zone", () => {
    expect(localMinute(MONDAY_2230_UTC, "Europe/Berlin")).toBe(23 * 60 + 30);
    expect(localMinute(MONDAY_2230_UTC, "America/New_York")).toBe(17 * 60 + 30);
    expect(localMinute(MONDAY_2230_UTC, "")).toBe(22 * 60 + 30);
  });

  test("an overnight window refuses sms and e-mail (the default media: all but im) and im is chosen", () => {
    const plan = planRoute(input({ recipientProfile: quietBob(nightBerlin) }));
    expect(plan.candidates.map((c) => [c.medium, c.usable, c.reason])).toEqual([
      [SMS, false, "quiet hours"],
      [EMAIL, false, "quiet hours"],
      [IM, true, "online"],
    ]);
    expect(plan.chosen?.medium).toBe(IM);
  });

  test("overnight windows wrap midnight; the end minute is outside the window", () => {
    const p = quietBob(nightBerlin);
    const berlin = (h: number, m: number) => Date.UTC(2024, 0, 16, h - 1, m);
    expect(inQuietHours(p, SMS, berlin(21, 59))).toBe(false);
    expect(inQuietHours(p, SMS, berlin(22, 0))).toBe(true);
    expect(inQuietHours(p, SMS, berlin(3, 0))).toBe(true);
    expect(inQuietHours(p, SMS, berlin(6, 59))).toBe(true);
    expect(inQuietHours(p, SMS, berlin(7, 0))).toBe(false);
    expect(inQuietHours(p, SMS, berlin(12, 0))).toBe(false);
    expect(inQuietHours(p, IM, berlin(3, 0))).toBe(false);
    expect(planRoute(input({ nowUnixMs: berlin(12, 0), recipientProfile: p })).chosen?.medium).toBe(SMS);
  });

  test("the same instant is quiet in one time zone and not in another", () => {
    expect(inQuietHours(quietBob(nightBerlin), SMS, MONDAY_2230_UTC)).toBe(true);
    expect(inQuietHours(quietBob({ ...nightBerlin, timeZone: "America/New_York" }), SMS, MONDAY_2230_UTC)).toBe(false);
  });

  test("a daytime window applies only to the media it names; an empty window never applies", () => {
    const office = { startMinute: 17 * 60, endMinute: 18 * 60, timeZone: "America/New_York", media: [EMAIL] };
    const plan = planRoute(input({ recipientProfile: quietBob(office, [EMAIL, SMS]) }));
    expect(plan.candidates[0]).toMatchObject({ medium: EMAIL, usable: false, reason: "quiet hours" });
    expect(plan.chosen?.medium).toBe(SMS);
    expect(inQuietHours(quietBob({ startMinute: 600, endMinute: 600, timeZone: "UTC", media: [] }), SMS, MONDAY_2230_UTC)).toBe(false);
    expect(inQuietHours(null, SMS, MONDAY_2230_UTC)).toBe(false);
  });

  test("an im recipient can be quieted when the window names im", () => {
    const plan = planRoute(input({ recipientProfile: quietBob({ ...nightBerlin, media: [IM, SMS] }, [IM, SMS, EMAIL]) }));
    expect(plan.candidates.map((c) => c.usable)).toEqual([false, false, true]);
    expect(plan.chosen?.medium).toBe(EMAIL);
  });
});

describe("planRoute: explicit addresses, rights, health and conversion", () => {
  const quietAllDay = { ...BOB, preferredMedia: [EMAIL], quietHours: { startMinute: 0, endMinute: 1439, timeZone: "UTC", media: [] } };

  test("an explicit address overrides the preferences and skips quiet hours", () => {
    const plan = planRoute(input({ recipient: recipient("sms:+441234567890"), recipientProfile: quietAllDay }));
    expect(plan.chosen).toMatchObject({ medium: SMS, address: "+441234567890", gateway: { nodeId: "gw-sms-1" } });
    expect(plan.candidates).toHaveLength(1);
  });

  test("an explicit address needs no profile", () => {
    const plan = planRoute(input({ recipient: recipient("mailto:carol@example.org"), recipientProfile: null, presence: null }));
    expect(plan.chosen).toMatchObject({ medium: EMAIL, address: "carol@example.org", conversion: { targetContentType: "message/rfc822" } });
  });

  test("an explicit im address goes to im whatever the preferences", () => {
    const plan = planRoute(input({ recipient: recipient("im:bob"), recipientProfile: { ...quietAllDay, preferredMedia: [SMS] } }));
    expect(plan.chosen).toMatchObject({ medium: IM, address: "bob", immediate: true });
  });

  test("the sender's rights (send_media) exclude media, also for explicit addresses", () => {
    const sender = profile({ clientId: "alice", sendMedia: [IM, EMAIL] });
    const plan = planRoute(input({ sender, presence: offline }));
    expect(plan.candidates.find((c) => c.medium === SMS)).toMatchObject({ usable: false, reason: "sender may not send to sms" });
    // im is offline and sms is not allowed: e-mail reaches the recipient now.
    expect(plan.chosen?.medium).toBe(EMAIL);
    const explicit = planRoute(input({ sender, recipient: recipient("sms:+441234567890") }));
    expect(explicit.chosen).toBeUndefined();
    expect(explicit.refusal).toBe("sms: sender may not send to sms");
    expect(planRoute(input({ sender: profile({ clientId: "root" }) })).chosen?.medium).toBe(IM);
  });

  test("a medium without a healthy gateway is skipped with its reason", () => {
    const plan = planRoute(input({ gatewaysOf: { [IM]: [] } }));
    expect(plan.candidates[0]).toMatchObject({ medium: IM, usable: false, reason: "no healthy im gateway" });
    expect(plan.chosen?.medium).toBe(SMS);
  });

  test("a conversion without a healthy processor is refused with a clear reason", () => {
    const plan = planRoute(input({ recipient: recipient("sms:+441234567890"), processors: [] }));
    expect(plan.chosen).toBeUndefined();
    expect(plan.refusal).toBe("sms: needs a conversion to application/vnd.uims.sms but no processor is healthy");
    // Content the medium takes as it is needs no processor.
    expect(planRoute(input({ processors: [] })).chosen?.medium).toBe(IM);
  });

  test("excludeMedia (fallback) skips media already tried", () => {
    const plan = planRoute(input({ excludeMedia: [IM] }));
    expect(plan.candidates[0]).toMatchObject({ medium: IM, usable: false, reason: "already tried for this message" });
    expect(plan.chosen?.medium).toBe(SMS);
    const none = planRoute(input({ excludeMedia: [IM, SMS, EMAIL] }));
    expect(none.chosen).toBeUndefined();
    expect(none.refusal).toBe("im: already tried for this message; sms: already tried for this message; email: already tried for this message");
  });

  test("refusal texts: no profile, a profile without addresses, a preferred medium without address", () => {
    expect(planRoute(input({ recipientProfile: null })).refusal).toBe("recipient has no profile");
    expect(planRoute(input({ recipientProfile: profile({ clientId: "empty" }) })).refusal).toBe("profile has no addresses");
    const plan = planRoute(input({ recipientProfile: profile({ clientId: "dave", preferredMedia: [FAX], addresses: [] }) }));
    expect(plan.refusal).toBe("fax: no address for this medium");
  });

  test("every refused candidate is named with its reason", () => {
    const plan = planRoute(input({ presence: offline, gatewaysOf: { [IM]: [], [SMS]: [] }, processors: [] }));
    expect(plan.chosen).toBeUndefined();
    expect(plan.refusal).toBe("im: no healthy im gateway; sms: no healthy sms gateway; email: needs a conversion to message/rfc822 but no processor is healthy");
  });
});

describe("planRoute: conversion plans", () => {
  test.each([
    [TEXT, IM, undefined],
    ["message/rfc822", IM, TEXT],
    [TEXT, EMAIL, "message/rfc822"],
    ["message/rfc822", EMAIL, undefined],
    [TEXT, SMS, SMS_CONTENT_TYPE],
    [SMS_CONTENT_TYPE, SMS, undefined],
    [TEXT, VOICE, "audio/wav"],
    ["audio/ogg", VOICE, undefined],
    [TEXT, FAX, "image/tiff"],
    ["application/pdf", FAX, undefined],
    ["image/tiff", FAX, undefined],
    ["  Message/RFC822 ; x=y", EMAIL, undefined],
    ["", SMS, SMS_CONTENT_TYPE],
  ])("%j to medium %i needs %j", (source, medium, target) => {
    expect(targetContentType(source, medium)).toBe(target);
  });

  test("the plan carries the source and target types and the recipient's SMS segment limit", () => {
    const plan = planRoute(input({ recipient: recipient("bob"), recipientProfile: { ...BOB, preferredMedia: [SMS] } }));
    expect(plan.chosen).toMatchObject({
      medium: SMS,
      processor: { nodeId: "proc-1" },
      conversion: { sourceContentType: TEXT, targetMedium: SMS, targetContentType: SMS_CONTENT_TYPE, maxSegments: 4 },
    });
    expect(plan.candidates[0]?.conversion).toBe(`text/plain -> ${SMS_CONTENT_TYPE}`);
    const mail = planRoute(input({ recipientProfile: { ...BOB, preferredMedia: [EMAIL] } }));
    expect(mail.chosen?.conversion).toMatchObject({ targetContentType: "message/rfc822", maxSegments: 0 });
    // An explicit SMS address has no profile behind it: no segment limit.
    const explicit = planRoute(input({ recipient: recipient("sms:+441234567890"), recipientProfile: null }));
    expect(explicit.chosen?.conversion?.maxSegments).toBe(0);
  });
});

describe.each(STORE_KINDS)("routing through the broker (%s store)", (kind) => {
  const secrets = generateMeshSecrets();
  let running: RunningBroker;
  let gwIm: RecordingGateway;
  let gwSms: RecordingGateway;
  let processor: BrokerClient;

  beforeAll(async () => {
    running = await startBroker(secrets, testStore(kind));
    gwIm = new RecordingGateway("gw-im-a", IM, secrets, running.endpoint);
    gwSms = new RecordingGateway("gw-sms-1", SMS, secrets, running.endpoint);
    await Promise.all([gwIm.start(), gwSms.start()]);
    processor = new BrokerClient(running.endpoint, identityFor("proc-1", secrets));
    await processor.register({ nodeId: "proc-1", kind: NodeKind.NODE_KIND_PROCESSOR, medium: Medium.MEDIUM_UNSPECIFIED, endpoint: "127.0.0.1:1", capacity: 10, version: "test" });
    await createProfile(running, { clientId: "alice", addresses: [{ medium: IM, address: "alice" }] });
    await createProfile(running, {
      clientId: "bob",
      addresses: [
        { medium: IM, address: "bob" },
        { medium: SMS, address: "+491701234567" },
      ],
      preferredMedia: [IM, SMS],
      limits: { maxMessagesPerDay: 0, maxSmsSegments: 2, maxPayloadBytes: 0 },
    });
    await createProfile(running, {
      clientId: "dave",
      addresses: [
        { medium: EMAIL, address: "dave@example.org" },
        { medium: FAX, address: "+4930123456" },
      ],
      preferredMedia: [EMAIL, FAX],
    });
  });

  afterAll(async () => {
    processor.close();
    await Promise.all([gwIm.stop(), gwSms.stop()]);
    await running.stop();
    await running.store.close();
  });

  const explain = (sender: string, to: string) =>
    callUnary(running.admin.explainRoute.bind(running.admin), { sender, recipient: to, contentType: TEXT, contentSize: 11, sourceMedium: IM }, 5_000, running.adminMetadata);

  test("ExplainRoute is a dry run: it explains the route and stores no transaction", async () => {
    const res = await explain("alice", "bob");
    // bob has never been seen online: sms reaches him now, im would wait in the inbox.
    expect(res.chosen).toMatchObject({ medium: SMS, address: "+491701234567", gatewayId: "gw-sms-1", usable: true, conversion: `text/plain -> ${SMS_CONTENT_TYPE}` });
    expect(res.candidates.map((c) => [c.medium, c.usable, c.reason])).toEqual([
      [IM, true, "offline: the message waits in the inbox"],
      [SMS, true, "available"],
    ]);
    expect(res.refusal).toBe("");
    expect(await running.store.scanKeys("txn:*")).toEqual([]);
    expect(await running.store.sortedCount("txn:deadlines")).toBe(0);
    expect(gwIm.notices).toHaveLength(0);
  });

  test("ExplainRoute lists each medium's reason when there is no route", async () => {
    const res = await explain("alice", "dave");
    expect(res.chosen).toBeUndefined();
    expect(res.refusal).toBe("email: no healthy email gateway; fax: no healthy fax gateway");
  });

  test("Submit to an unknown recipient: NOT_FOUND naming the recipient", async () => {
    await expect(gwIm.client.submit(metaFor("gw-im-a", { sender: "alice", recipient: "carol" }))).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: 'recipient "carol" is unknown',
    });
  });

  test("Submit with no route at all: FAILED_PRECONDITION listing each medium's reason", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "dave" });
    await expect(gwIm.client.submit(meta)).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: 'no route to "dave": email: no healthy email gateway; fax: no healthy fax gateway',
    });
    await expect(callUnary(running.admin.getTransaction.bind(running.admin), { messageId: meta.messageId }, 5_000, running.adminMetadata)).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  test("Submit follows the explained route", async () => {
    const explained = await explain("alice", "bob");
    const release = await gwIm.client.submit(metaFor("gw-im-a", { sender: "alice", recipient: "bob" }));
    expect(release.meta).toMatchObject({
      targetMedium: explained.chosen?.medium,
      targetAddress: explained.chosen?.address,
      destinationGatewayId: explained.chosen?.gatewayId,
      processorId: "proc-1",
      conversion: { targetContentType: SMS_CONTENT_TYPE, maxSegments: 2 },
    });
  });
});
