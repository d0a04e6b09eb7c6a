import { FailureKind, Medium, MessageState } from "../../gen/uims/common/v1/types";
import { callUnary } from "../../common/mesh/peer";
import { createProfile, generateMeshSecrets, startBroker, startImGateway, testStore, type RunningBroker, type RunningImGateway } from "../support/mesh";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";


describe("a message that cannot be delivered ends with a non-delivery report to its sender", () => {
  const secrets = generateMeshSecrets();
  let broker: RunningBroker;
  let gw1: RunningImGateway;
  let gw2: RunningImGateway;
  let aliceToken = "";

  beforeAll(async () => {
    broker = await startBroker(secrets, testStore("redis"));
    gw1 = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore("redis"), { env: { UNREACHABLE_AFTER_MS: "1s" } });
    gw2 = await startImGateway(secrets, broker.endpoint, "gw-im-2", testStore("redis"));
    aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    await createProfile(broker, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }], preferredMedia: [Medium.MEDIUM_IM] });
    // bob was last seen on gw-im-2, so the broker routes his messages there.
    await broker.store.set("presence:bob", JSON.stringify({ gatewayId: "gw-im-2", online: true, atUnixMs: Date.now() }));
  });

  afterAll(async () => {
    await gw1.stop();
    await broker.stop();
    await Promise.all([gw1.store.close(), gw2.store.close(), broker.store.close()]);
  });

  test("the destination stays unreachable: retried, handed back to the broker, no other medium: FAILED and an NDR in alice's inbox", async () => {
    await gw2.stop();
    const alice = gw1.clientFor(aliceToken);
    const sent = await callUnary(
      alice.client.send.bind(alice.client),
      { recipient: "bob", payload: { contentType: "text/plain", body: Buffer.from("anyone there?"), attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
      5_000,
      alice.metadata,
    );
    const failed = await until(async () => {
      const s = (await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata)).status;
      return s?.state === MessageState.MESSAGE_STATE_FAILED ? s : undefined;
    });
    const last = failed.events[failed.events.length - 1]!;
    expect(last).toMatchObject({ state: MessageState.MESSAGE_STATE_FAILED, failureKind: FailureKind.FAILURE_KIND_TEMPORARY });
    expect(last.reason).toContain("destination unreachable");

    const { received, cancel: cancelInbox } = followInbox(alice);
    await until(async () => (received.length > 0 ? true : undefined));
    expect(received[0]!.message).toMatchObject({ messageId: `ndr-${sent.messageId}`, senderAddress: "uims:postmaster" });
    expect(received[0]!.message?.payload?.body.toString()).toContain("could not be delivered");
    cancelInbox();
  });
});
