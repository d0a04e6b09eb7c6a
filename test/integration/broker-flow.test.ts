import { ReportOutcome } from "../../gen/uims/broker/v1/broker";
import { FailureKind, Medium, MessageState } from "../../gen/uims/common/v1/types";
import { outerDigestValid, releaseSignatureValid } from "../../common/crypto/release";
import { callUnary } from "../../common/mesh/peer";
import { NodeKind } from "../../gen/uims/broker/v1/broker";
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
import { BrokerClient } from "../../common/mesh/broker-client";
import { until } from "../support/wait";

describe.each(STORE_KINDS)("broker phases 1, 2 and 4 (%s store)", (kind) => {
  const secrets = generateMeshSecrets();
  let running: RunningBroker;
  let gwA: RecordingGateway;
  let gwB: RecordingGateway;
  let gwSms: RecordingGateway;
  let processor: BrokerClient;

  beforeAll(async () => {
    running = await startBroker(secrets, testStore(kind));
    gwA = new RecordingGateway("gw-im-a", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwB = new RecordingGateway("gw-im-b", Medium.MEDIUM_IM, secrets, running.endpoint);
    gwSms = new RecordingGateway("gw-sms-1", Medium.MEDIUM_SMS, secrets, running.endpoint);
    await Promise.all([gwA.start(), gwB.start(), gwSms.start()]);
    processor = new BrokerClient(running.endpoint, identityFor("proc-1", secrets));
    await processor.register({ nodeId: "proc-1", kind: NodeKind.NODE_KIND_PROCESSOR, medium: Medium.MEDIUM_UNSPECIFIED, endpoint: "127.0.0.1:1", capacity: 10, version: "test" });
    await createProfile(running, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] });
    await createProfile(running, {
      clientId: "bob",
      addresses: [
        { medium: Medium.MEDIUM_IM, address: "bob" },
        { medium: Medium.MEDIUM_SMS, address: "+491701234567" },
      ],
      preferredMedia: [Medium.MEDIUM_IM, Medium.MEDIUM_SMS],
      limits: { maxMessagesPerDay: 0, maxSmsSegments: 3, maxPayloadBytes: 0 },
    });
    await gwB.client.reportPresence({ gatewayId: "gw-im-b", clientId: "bob", online: true });
  });

  afterAll(async () => {
    processor.close();
    await Promise.all([gwA.stop(), gwB.stop(), gwSms.stop()]);
    await running.stop();
    await running.store.close();
  });

  test("submit, release, confirm, delivered, read: notices reach the originator and usage is booked", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", senderAddress: "im:alice", recipient: "bob" });
    const release = await gwA.client.submit(meta);
    expect(releaseSignatureValid(verifyKeysFrom(secrets), release)).toBe(true);
    expect(release.meta).toMatchObject({ targetMedium: Medium.MEDIUM_IM, targetAddress: "bob", destinationGatewayId: "gw-im-b", attempt: 1, recipientId: "bob" });
    expect(release.meta?.destinationEndpoint).toBe(gwB.endpoint);

    const confirmed = await gwA.client.confirm({ messageId: meta.messageId, releaseId: release.releaseId, attempt: 1 });
    expect(confirmed.state).toBe(MessageState.MESSAGE_STATE_ROUTED);

    const base = { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1, failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED, reason: "", segments: 0, deliveredBytes: 11, atUnixMs: Date.now() };
    expect((await gwB.client.report({ ...base, outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED })).state).toBe(MessageState.MESSAGE_STATE_DELIVERED);
    await gwA.waitForNotices(1);
    expect(gwA.notices[0]!.request.event?.state).toBe(MessageState.MESSAGE_STATE_DELIVERED);

    expect((await gwB.client.report({ ...base, outcome: ReportOutcome.REPORT_OUTCOME_READ })).state).toBe(MessageState.MESSAGE_STATE_READ);
    await gwA.waitForNotices(2);
    expect(gwA.notices.map((n) => n.request.event?.state)).toEqual([MessageState.MESSAGE_STATE_DELIVERED, MessageState.MESSAGE_STATE_READ]);

    const usage = await callUnary(running.admin.getUsage.bind(running.admin), { sender: "alice", medium: Medium.MEDIUM_UNSPECIFIED, fromDay: "", toDay: "" }, 5_000, running.adminMetadata);
    expect(usage.rows).toEqual([expect.objectContaining({ sender: "alice", medium: Medium.MEDIUM_IM, messages: 1, bytes: 11 })]);

    const txn = await callUnary(running.admin.getTransaction.bind(running.admin), { messageId: meta.messageId }, 5_000, running.adminMetadata);
    expect(txn.status?.events.map((e) => e.state)).toEqual([
      MessageState.MESSAGE_STATE_ACCEPTED,
      MessageState.MESSAGE_STATE_ROUTED,
      MessageState.MESSAGE_STATE_DELIVERED,
      MessageState.MESSAGE_STATE_READ,
    ]);
    expect(txn.status?.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
  });

  test("a temporary failure re-routes to the next medium with a release the originator can check", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "bob" });
    const release = await gwA.client.submit(meta);
    const before = gwA.notices.length;
    const res = await gwB.client.report({
      messageId: meta.messageId,
      releaseId: release.releaseId,
      attempt: 1,
      outcome: ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED,
      failureKind: FailureKind.FAILURE_KIND_TEMPORARY,
      reason: "client did not take it",
      segments: 0,
      deliveredBytes: 0,
      atUnixMs: Date.now(),
    });
    expect(res).toEqual({ state: MessageState.MESSAGE_STATE_ROUTED, rerouted: true });
    await gwA.waitForNotices(before + 1);
    const notice = gwA.notices[before]!;
    const reroute = notice.request.reroute!;
    expect(reroute.meta).toMatchObject({ targetMedium: Medium.MEDIUM_SMS, targetAddress: "+491701234567", destinationGatewayId: "gw-sms-1", attempt: 2, processorId: "proc-1" });
    expect(reroute.meta?.conversion).toMatchObject({ targetContentType: "application/vnd.uims.sms", maxSegments: 3 });
    expect(outerDigestValid(gwA.client["identity"].k1, reroute, notice.sessionKey)).toBe(true);
    expect(releaseSignatureValid(verifyKeysFrom(secrets), reroute)).toBe(true);

    // The old destination can no longer report; the new one reports with the new release.
    await expect(
      gwB.client.report({ messageId: meta.messageId, releaseId: release.releaseId, attempt: 1, outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED, failureKind: 0, reason: "", segments: 0, deliveredBytes: 0, atUnixMs: Date.now() }),
    ).rejects.toMatchObject({ code: 7, details: expect.stringContaining("not the destination") });
    const delivered = await gwSms.client.report({ messageId: meta.messageId, releaseId: reroute.releaseId, attempt: 2, outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED, failureKind: 0, reason: "DELIVRD", segments: 2, deliveredBytes: 140, atUnixMs: Date.now() });
    expect(delivered.state).toBe(MessageState.MESSAGE_STATE_DELIVERED);
  });

  test("after DELIVERED only a permanent failure from the destination counts (a bounce): FAILED, no fallback; after READ nothing", async () => {
    const meta = metaFor("gw-im-a", { sender: "alice", recipient: "bob" });
    const release = await gwA.client.submit(meta);
    const base = { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1, segments: 0, deliveredBytes: 5, atUnixMs: Date.now() };
    const notDelivered = (failureKind: FailureKind, reason: string) => ({ ...base, outcome: ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED, failureKind, reason });
    expect((await gwB.client.report({ ...base, outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED, failureKind: 0, reason: "" })).state).toBe(MessageState.MESSAGE_STATE_DELIVERED);
    // The originator giving up, or a temporary failure, does not undo a delivery.
    expect(await gwA.client.report(notDelivered(FailureKind.FAILURE_KIND_PERMANENT, "unreachable"))).toEqual({ state: MessageState.MESSAGE_STATE_DELIVERED, rerouted: false });
    expect(await gwB.client.report(notDelivered(FailureKind.FAILURE_KIND_TEMPORARY, "later"))).toEqual({ state: MessageState.MESSAGE_STATE_DELIVERED, rerouted: false });
    expect(await gwB.client.report(notDelivered(FailureKind.FAILURE_KIND_PERMANENT, "bounced: 550 5.1.1 no such user"))).toEqual({ state: MessageState.MESSAGE_STATE_FAILED, rerouted: false });
    const failedNotice = await until(() => gwA.notices.find((n) => n.request.messageId === meta.messageId && n.request.event?.state === MessageState.MESSAGE_STATE_FAILED));
    expect(failedNotice.request.event).toMatchObject({ failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "bounced: 550 5.1.1 no such user" });
    expect(failedNotice.request.reroute).toBeUndefined();

    const read = metaFor("gw-im-a", { sender: "alice", recipient: "bob" });
    const readRelease = await gwA.client.submit(read);
    const readBase = { messageId: read.messageId, releaseId: readRelease.releaseId, attempt: 1, segments: 0, deliveredBytes: 5, atUnixMs: Date.now(), failureKind: 0, reason: "" };
    await gwB.client.report({ ...readBase, outcome: ReportOutcome.REPORT_OUTCOME_READ });
    expect(await gwB.client.report({ ...readBase, outcome: ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "x" })).toEqual({ state: MessageState.MESSAGE_STATE_READ, rerouted: false });
  });

  test("a bounce may reach any email replica: another email gateway reports it, an sms gateway may not", async () => {
    const mail1 = new RecordingGateway("gw-email-1", Medium.MEDIUM_EMAIL, secrets, running.endpoint);
    const mail2 = new RecordingGateway("gw-email-2", Medium.MEDIUM_EMAIL, secrets, running.endpoint);
    await Promise.all([mail1.start(), mail2.start()]);
    try {
      const meta = metaFor("gw-im-a", { sender: "alice", recipient: "mailto:erin@example.org", contentType: "message/rfc822" });
      const release = await gwA.client.submit(meta);
      const destination = release.meta!.destinationGatewayId;
      const other = destination === "gw-email-1" ? mail2 : mail1;
      const base = { messageId: meta.messageId, releaseId: release.releaseId, attempt: 1, segments: 0, deliveredBytes: 5, atUnixMs: Date.now() };
      const bounce = { ...base, outcome: ReportOutcome.REPORT_OUTCOME_NOT_DELIVERED, failureKind: FailureKind.FAILURE_KIND_PERMANENT, reason: "bounced: 550 5.1.1" };
      await (destination === "gw-email-1" ? mail1 : mail2).client.report({ ...base, outcome: ReportOutcome.REPORT_OUTCOME_DELIVERED, failureKind: 0, reason: "" });
      await expect(gwSms.client.report(bounce)).rejects.toMatchObject({ code: 7 });
      expect(await other.client.report(bounce)).toEqual({ state: MessageState.MESSAGE_STATE_FAILED, rerouted: false });
    } finally {
      await Promise.all([mail1.stop(), mail2.stop()]);
    }
  });
});
