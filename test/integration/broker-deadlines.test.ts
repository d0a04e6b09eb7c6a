import * as grpc from "@grpc/grpc-js";
import { NodeKind, ReportOutcome, type ReportRequest } from "../../gen/uims/broker/v1/broker";
import type { Release } from "../../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState } from "../../gen/uims/common/v1/types";
import { outerDigestValid, releaseSignatureValid } from "../../common/crypto/release";
import { BrokerClient } from "../../common/mesh/broker-client";
import { callUnary } from "../../common/mesh/peer";
import {
  STORE_KINDS,
  RecordingGateway,
  createProfile,
  generateMeshSecrets,
  identityFor,
  metaFor,
  startBroker,
  testStore,
  verifyKeysFrom,
  type RunningBroker,
} from "../support/mesh";

const { MESSAGE_STATE_ACCEPTED: ACCEPTED, MESSAGE_STATE_ROUTED: ROUTED, MESSAGE_STATE_DELIVERED: DELIVERED, MESSAGE_STATE_READ: READ, MESSAGE_STATE_EXPIRED: EXPIRED } = MessageState;
const RECEIPT_TIMEOUT_MS = 1_000;

describe.each(STORE_KINDS)("broker deadlines: fallback and expiry (%s store)", (kind) => {
  const secrets = generateMeshSecrets();
  // The broker's clock runs ahead by `skew` so that deadlines pass without sleeping; the skew
  // stays far inside the 30 s login window.
  let skew = 0;
  const clock = () => Date.now() + skew;
  let running: RunningBroker;
  let origin: RecordingGateway;
  let gwImB: RecordingGateway;
  let gwSms: RecordingGateway;
  let gwEmail: RecordingGateway;
  let processor: BrokerClient;

  beforeAll(async () => {
    running = await startBroker(secrets, testStore(kind), { env: { RECEIPT_TIMEOUT_MS: "1s" }, clock });
    origin = new RecordingGateway("gw-im-a", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwImB = new RecordingGateway("gw-im-b", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwSms = new RecordingGateway("gw-sms-1", Medium.MEDIUM_SMS, secrets, running.endpoint);
    gwEmail = new RecordingGateway("gw-email-1", Medium.MEDIUM_EMAIL, secrets, running.endpoint);
    await Promise.all([origin.start(), gwImB.start(), gwSms.start(), gwEmail.start()]);
    processor = new BrokerClient(running.endpoint, identityFor("proc-1", secrets));
    await processor.register({ nodeId: "proc-1", kind: NodeKind.NODE_KIND_PROCESSOR, medium: Medium.MEDIUM_UNSPECIFIED, endpoint: "127.0.0.1:1", capacity: 10, version: "test" });
    await createProfile(running, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }] });
    await createProfile(running, {
      clientId: "dora",
      addresses: [
        { medium: Medium.MEDIUM_SMS, address: "+491701234567" },
        { medium: Medium.MEDIUM_EMAIL, address: "dora@example.org" },
      ],
      preferredMedia: [Medium.MEDIUM_SMS, Medium.MEDIUM_EMAIL],
    });
    await createProfile(running, { clientId: "sam", addresses: [{ medium: Medium.MEDIUM_SMS, address: "+491709999999" }] });
    await createProfile(running, { clientId: "carol", addresses: [{ medium: Medium.MEDIUM_IM, address: "carol" }] });
    await createProfile(running, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }] });
    await gwImB.client.reportPresence({ gatewayId: "gw-im-b", clientId: "bob", online: true });
  });

  afterAll(async () => {
    processor.close();
    await Promise.all([origin.stop(), gwImB.stop(), gwSms.stop(), gwEmail.stop()]);
    await running.stop();
    await running.store.close();
  });

  beforeEach(() => {
    skew = 0;
  });

  const transaction = (messageId: string) => callUnary(running.admin.getTransaction.bind(running.admin), { messageId }, 5_000, running.adminMetadata);
  const scheduled = async () => (await running.store.sortedRangeByScore("txn:deadlines", -Infinity, Infinity, 10_000)).map((e) => e.member);
  const noticesFor = (messageId: string) => origin.notices.filter((n) => n.request.messageId === messageId);

  async function noticeFor(messageId: string, state: MessageState, timeoutMs = 5_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = noticesFor(messageId).find((n) => n.request.event?.state === state);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${MessageState[state]} notice for ${messageId}; got ${noticesFor(messageId).map((n) => MessageState[n.request.event!.state]).join(", ") || "none"}`);
      await origin.waitForNotices(origin.notices.length + 1, Math.max(deadline - Date.now(), 1)).catch(() => undefined);
    }
  }

  function report(messageId: string, release: Release, outcome: ReportOutcome, extra: Partial<ReportRequest> = {}): Omit<ReportRequest, "auth"> {
    return { messageId, releaseId: release.releaseId, attempt: release.meta!.attempt, outcome, failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED, reason: "", segments: 0, deliveredBytes: 0, atUnixMs: Date.now(), ...extra };
  }

  test("an SMS route without a delivery report by the deadline falls back to the next medium; the originator gets the re-route", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "dora" });
    const release = await origin.client.submit(meta);
    expect(release.meta).toMatchObject({ targetMedium: Medium.MEDIUM_SMS, destinationGatewayId: "gw-sms-1", attempt: 1 });
    const routed = await transaction(meta.messageId);
    expect(routed.deadlineUnixMs - release.meta!.releasedAtUnixMs).toBe(RECEIPT_TIMEOUT_MS);

    // Before the deadline nothing happens.
    await running.broker.protocol.processDeadlines();
    expect((await transaction(meta.messageId)).status?.state).toBe(ROUTED);

    skew = RECEIPT_TIMEOUT_MS + 100;
    await running.broker.protocol.processDeadlines();
    const notice = await noticeFor(meta.messageId, ROUTED);
    const reroute = notice.request.reroute!;
    expect(notice.request.event).toMatchObject({ state: ROUTED, medium: Medium.MEDIUM_EMAIL, attempt: 2, gatewayId: "gw-email-1", reason: "fallback: no delivery report from sms by the deadline" });
    expect(reroute.meta).toMatchObject({ targetMedium: Medium.MEDIUM_EMAIL, targetAddress: "dora@example.org", destinationGatewayId: "gw-email-1", attempt: 2 });
    expect(reroute.meta?.conversion).toMatchObject({ targetContentType: "message/rfc822" });
    expect(outerDigestValid(identityFor("gw-im-a", secrets).k1, reroute, notice.sessionKey)).toBe(true);
    expect(releaseSignatureValid(verifyKeysFrom(secrets), reroute)).toBe(true);

    const after = await transaction(meta.messageId);
    expect(after.status?.events.map((e) => [MessageState[e.state], Medium[e.medium], e.attempt])).toEqual([
      ["MESSAGE_STATE_ACCEPTED", "MEDIUM_IM", 0],
      ["MESSAGE_STATE_ROUTED", "MEDIUM_SMS", 1],
      ["MESSAGE_STATE_FAILED", "MEDIUM_SMS", 1],
      ["MESSAGE_STATE_ROUTED", "MEDIUM_EMAIL", 2],
    ]);
    expect(after.status?.events[2]).toMatchObject({ failureKind: FailureKind.FAILURE_KIND_TEMPORARY, reason: "no delivery report by the deadline" });
    expect(after.destinationGatewayId).toBe("gw-email-1");

    // The SMS receipt that comes too late is refused; the new destination reports with the new release.
    await expect(gwSms.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_DELIVERED))).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: `gateway "gw-sms-1" is not the destination of message "${meta.messageId}"`,
    });
    const delivered = await gwEmail.client.report(report(meta.messageId, reroute, ReportOutcome.REPORT_OUTCOME_DELIVERED, { reason: "250 2.0.0 queued" }));
    expect(delivered.state).toBe(DELIVERED);
    await noticeFor(meta.messageId, DELIVERED);
  });

  test("with no medium left, the broker keeps waiting for a report until the message expires, then tells the originator", async () => {
    const now = Date.now();
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "sam", expiresAtUnixMs: now + 3_000 });
    await origin.client.submit(meta);

    skew = RECEIPT_TIMEOUT_MS + 100;
    await running.broker.protocol.processDeadlines();
    const waiting = await transaction(meta.messageId);
    expect(waiting.status?.state).toBe(ROUTED);
    expect(waiting.deadlineUnixMs).toBe(meta.expiresAtUnixMs);
    expect(noticesFor(meta.messageId)).toHaveLength(0);

    skew = 3_100;
    await running.broker.protocol.processDeadlines();
    const notice = await noticeFor(meta.messageId, EXPIRED);
    expect(notice.request.event).toMatchObject({ state: EXPIRED, medium: Medium.MEDIUM_SMS, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "not delivered before the message expired" });
    expect((await transaction(meta.messageId)).status?.state).toBe(EXPIRED);
    expect(await scheduled()).not.toContain(meta.messageId);
  });

  test("a message waiting in an offline client's inbox past its expiry ends with an EXPIRED notice, never in silence", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "carol", expiresAtUnixMs: Date.now() + 2_000 });
    const release = await origin.client.submit(meta);
    expect(release.meta).toMatchObject({ targetMedium: Medium.MEDIUM_IM, targetAddress: "carol" });
    expect((await transaction(meta.messageId)).deadlineUnixMs).toBe(meta.expiresAtUnixMs);

    skew = 2_100;
    await running.broker.protocol.processDeadlines();
    const notice = await noticeFor(meta.messageId, EXPIRED);
    expect(notice.request.event).toMatchObject({ failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "not delivered before the message expired" });
    const txn = await transaction(meta.messageId);
    expect(txn.status?.events.map((e) => e.state)).toEqual([ACCEPTED, ROUTED, EXPIRED]);

    // A receipt after expiry changes nothing. (No im gateway has seen carol: the first one keeps her inbox.)
    expect(release.meta?.destinationGatewayId).toBe("gw-im-a");
    const late = await origin.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_DELIVERED));
    expect(late).toEqual({ state: EXPIRED, rerouted: false });
    expect(noticesFor(meta.messageId)).toHaveLength(1);
  });

  test("a finished (READ) transaction is not touched by the sweeper", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "bob", expiresAtUnixMs: Date.now() + 2_000 });
    const release = await origin.client.submit(meta);
    await gwImB.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_DELIVERED));
    await gwImB.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_READ));
    await noticeFor(meta.messageId, READ);
    const before = await transaction(meta.messageId);
    expect(await scheduled()).not.toContain(meta.messageId);

    skew = 2_100;
    await running.broker.protocol.processDeadlines();
    // Let the background sweeper run too.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await transaction(meta.messageId)).toEqual(before);
    expect(noticesFor(meta.messageId).map((n) => n.request.event?.state)).toEqual([DELIVERED, READ]);
  });

  test("a delivered message that is never read does not expire, and leaves the schedule at its expiry", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "bob", expiresAtUnixMs: Date.now() + 2_000 });
    const release = await origin.client.submit(meta);
    await gwImB.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_DELIVERED));
    await noticeFor(meta.messageId, DELIVERED);
    expect(await scheduled()).toContain(meta.messageId);

    skew = 2_100;
    await running.broker.protocol.processDeadlines();
    const txn = await transaction(meta.messageId);
    expect(txn.status?.state).toBe(DELIVERED);
    expect(txn.status?.events.map((e) => e.state)).toEqual([ACCEPTED, ROUTED, DELIVERED]);
    expect(noticesFor(meta.messageId).map((n) => n.request.event?.state)).toEqual([DELIVERED]);
    expect(await scheduled()).not.toContain(meta.messageId);
    // A read receipt after the expiry is still accepted.
    expect((await gwImB.client.report(report(meta.messageId, release, ReportOutcome.REPORT_OUTCOME_READ))).state).toBe(READ);
    await noticeFor(meta.messageId, READ);
  });

  test("the background sweeper does the same on its own, every second", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "carol", expiresAtUnixMs: Date.now() + 1_500 });
    await origin.client.submit(meta);
    skew = 1_600;
    const notice = await noticeFor(meta.messageId, EXPIRED, 3_000);
    expect(notice.request.event).toMatchObject({ state: EXPIRED, failureKind: FailureKind.FAILURE_KIND_PERMANENT });
  });
});
