import { AckKind } from "../../gen/uims/client/v1/client";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { callUnary } from "../../common/mesh/peer";
import { createProfile, generateMeshSecrets, startBroker, startImGateway, STORE_KINDS, testStore, type RunningBroker, type RunningImGateway } from "../support/mesh";
import { until } from "../support/wait";
import { followInbox } from "../support/inbox";

function text(body: string) {
  return { contentType: "text/plain; charset=utf-8", body: Buffer.from(body), attachments: [], subject: "" };
}


describe.each(STORE_KINDS)("im gateways through the broker (%s stores)", (kind) => {
  const secrets = generateMeshSecrets();
  let broker: RunningBroker;
  let gw1: RunningImGateway;
  let gw2: RunningImGateway;
  let aliceToken = "";
  let bobToken = "";

  beforeAll(async () => {
    broker = await startBroker(secrets, testStore(kind));
    gw1 = await startImGateway(secrets, broker.endpoint, "gw-im-1", testStore(kind));
    gw2 = await startImGateway(secrets, broker.endpoint, "gw-im-2", testStore(kind));
    aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    bobToken = (await createProfile(broker, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
  });

  afterAll(async () => {
    await gw1.stop();
    await gw2.stop();
    await broker.stop();
    await Promise.all([gw1.store.close(), gw2.store.close(), broker.store.close()]);
  });

  test("alice on gw-im-1 sends to bob on gw-im-2: live arrival, delivered, then read", async () => {
    const alice = gw1.clientFor(aliceToken);
    const bob = gw2.clientFor(bobToken);
    const { received, cancel: cancelInbox } = followInbox(bob);
    // Presence reaches the broker asynchronously; wait until bob counts as online on gw-im-2.
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":true') || undefined);

    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text("hello bob"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    expect(sent.status?.state).toBe(MessageState.MESSAGE_STATE_ROUTED);
    await until(() => (received.length > 0 ? true : undefined));
    expect(received[0]!.message?.payload?.body.toString()).toBe("hello bob");
    expect(received[0]!.message?.sender).toBe("alice");

    const delivered = await until(async () => {
      const s = await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata);
      return s.status?.state === MessageState.MESSAGE_STATE_DELIVERED ? s : undefined;
    });
    expect(delivered.status?.events.map((e) => e.state)).toEqual(
      expect.arrayContaining([MessageState.MESSAGE_STATE_ACCEPTED, MessageState.MESSAGE_STATE_ROUTED, MessageState.MESSAGE_STATE_TRANSMITTED, MessageState.MESSAGE_STATE_DELIVERED]),
    );

    await callUnary(bob.client.acknowledge.bind(bob.client), { messageId: sent.messageId, kind: AckKind.ACK_KIND_READ }, 5_000, bob.metadata);
    await until(async () => {
      const s = await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata);
      return s.status?.state === MessageState.MESSAGE_STATE_READ ? s : undefined;
    });
    cancelInbox();
  });

  test("a repeated idempotency key returns the first message; a key whose send died is taken over", async () => {
    const alice = gw1.clientFor(aliceToken);
    // To herself, so that bob's inbox stays as the next test expects it.
    const send = (key: string) => callUnary(alice.client.send.bind(alice.client), { recipient: "alice", payload: text("once"), idempotencyKey: key, priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    const first = await send("k-1");
    const again = await send("k-1");
    expect(again).toMatchObject({ messageId: first.messageId, duplicate: true });
    // A claim left by a process that died before storing its message (40 s ago).
    await gw1.store.set("idem:alice:k-2", `lost-message|${Date.now() - 40_000}`, 60_000);
    const retried = await send("k-2");
    expect(retried.duplicate).toBe(false);
    expect(await gw1.store.get("idem:alice:k-2")).toContain(retried.messageId);
    // A fresh claim still being accepted elsewhere: ABORTED, retry shortly.
    await gw1.store.set("idem:alice:k-3", `busy-message|${Date.now()}`, 60_000);
    await expect(send("k-3")).rejects.toMatchObject({ code: 10 });
  });

  test("an unknown recipient is refused at send and nothing is stored", async () => {
    const alice = gw1.clientFor(aliceToken);
    await expect(
      callUnary(alice.client.send.bind(alice.client), { recipient: "nobody", payload: text("x"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata),
    ).rejects.toMatchObject({ code: 5, details: expect.stringContaining("nobody") });
    // Only the messages of the tests before are kept: the refused one left nothing behind.
    const before = (await gw1.store.scanKeys("out:*")).length;
    await expect(
      callUnary(alice.client.send.bind(alice.client), { recipient: "nobody", payload: text("x"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata),
    ).rejects.toMatchObject({ code: 5 });
    expect(await gw1.store.scanKeys("out:*")).toHaveLength(before);
  });

  test("bob offline: the message waits and arrives once on reconnect", async () => {
    const alice = gw1.clientFor(aliceToken);
    const bob = gw2.clientFor(bobToken);
    await until(async () => ((await broker.store.get("presence:bob")) ?? "").includes('"online":false') || undefined);
    const sent = await callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text("while you were away"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    await until(async () => {
      const s = await callUnary(alice.client.getStatus.bind(alice.client), { messageId: sent.messageId }, 5_000, alice.metadata);
      return s.status?.state === MessageState.MESSAGE_STATE_TRANSMITTED ? s : undefined;
    });
    const { received, cancel: cancelInbox } = followInbox(bob);
    await until(() => (received.some((r) => r.message?.messageId === sent.messageId) ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(received.map((r) => r.message?.messageId)).toEqual([sent.messageId]);
    cancelInbox();
  });
});
