import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { AckKind } from "../../gen/uims/client/v1/client";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { callUnary } from "../../common/mesh/peer";
import { REPO_ROOT, addProfile, connectClient, followInbox, pythonStubs, startE2EMesh, until, type ClientHandle, type E2EMesh } from "../support/e2e";

const run = promisify(execFile);

function text(body: string) {
  return { contentType: "text/plain; charset=utf-8", body: Buffer.from(body), attachments: [], subject: "" };
}

async function status(h: ClientHandle, messageId: string) {
  return (await callUnary(h.client.getStatus.bind(h.client), { messageId }, 5_000, h.metadata)).status!;
}

async function send(h: ClientHandle, recipient: string, body: string) {
  return callUnary(h.client.send.bind(h.client), { recipient, payload: text(body), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, h.metadata);
}

/** Every server in its own process on loopback, sharing one real Redis. */
describe("im end to end: broker and two im gateways as processes on one Redis", () => {
  let e: E2EMesh;
  let tokens: Record<string, string>;
  let gw1 = "";
  let gw2 = "";

  beforeAll(async () => {
    // A short "unreachable" window so that the crash test sees retries, not a fallback.
    e = await startE2EMesh(
      [
        { nodeId: "broker-0", kind: "broker" },
        { nodeId: "gw-im-1", kind: "im" },
        { nodeId: "gw-im-2", kind: "im" },
      ],
      { UNREACHABLE_AFTER_MS: "60s" },
    );
    tokens = {};
    for (const id of ["alice", "bob", "dave", "erin"]) {
      tokens[id] = await addProfile(e, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] });
    }
    gw1 = e.mesh.components.get("gw-im-1")!.clientEndpoint!;
    gw2 = e.mesh.components.get("gw-im-2")!.clientEndpoint!;
  }, 60_000);

  afterAll(async () => {
    await e?.stop();
  });

  test("alice sends to bob live; bob reads; alice sees delivered, then read", async () => {
    const alice = connectClient(gw1, tokens.alice!);
    const bob = connectClient(gw2, tokens.bob!);
    const inbox = followInbox(bob);
    await until(async () => ((await e.mesh.components.get("gw-im-2") && (await presenceOnline(e, "bob"))) ? true : undefined), 5_000, "bob online");
    const sent = await send(alice, "bob", "hello bob");
    await until(() => (inbox.received.some((r) => r.message?.messageId === sent.messageId) ? true : undefined), 10_000, "arrival");
    expect(inbox.received.find((r) => r.message?.messageId === sent.messageId)?.message?.payload?.body.toString()).toBe("hello bob");
    await until(async () => ((await status(alice, sent.messageId)).state === MessageState.MESSAGE_STATE_DELIVERED ? true : undefined), 10_000, "delivered");
    await callUnary(bob.client.acknowledge.bind(bob.client), { messageId: sent.messageId, kind: AckKind.ACK_KIND_READ }, 5_000, bob.metadata);
    const final = await until(async () => {
      const s = await status(alice, sent.messageId);
      return s.state === MessageState.MESSAGE_STATE_READ ? s : undefined;
    }, 10_000, "read");
    expect(final.events.map((ev) => ev.state)).toEqual([
      MessageState.MESSAGE_STATE_ACCEPTED,
      MessageState.MESSAGE_STATE_ROUTED,
      MessageState.MESSAGE_STATE_TRANSMITTED,
      MessageState.MESSAGE_STATE_DELIVERED,
      MessageState.MESSAGE_STATE_READ,
    ]);
    inbox.cancel();
    alice.close();
    bob.close();
  });

  test("bob offline: the message waits and arrives once when he reconnects", async () => {
    const alice = connectClient(gw1, tokens.alice!);
    const bob = connectClient(gw2, tokens.bob!);
    await until(async () => ((await presenceOnline(e, "bob")) ? undefined : true), 5_000, "bob offline");
    const sent = await send(alice, "bob", "while you were away");
    await until(async () => ((await status(alice, sent.messageId)).state === MessageState.MESSAGE_STATE_TRANSMITTED ? true : undefined), 10_000, "transmitted");
    const inbox = followInbox(bob);
    await until(() => (inbox.received.some((r) => r.message?.messageId === sent.messageId) ? true : undefined), 10_000, "arrival on reconnect");
    await new Promise((r) => setTimeout(r, 300));
    expect(inbox.received.map((r) => r.message?.messageId)).toEqual([sent.messageId]);
    inbox.cancel();
    // A second reconnect without a cursor gets nothing again: it was delivered once.
    const again = followInbox(bob);
    await new Promise((r) => setTimeout(r, 500));
    expect(again.received).toEqual([]);
    again.cancel();
    alice.close();
    bob.close();
  });

  test("an unknown recipient is refused at send and nothing is stored", async () => {
    const alice = connectClient(gw1, tokens.alice!);
    const before = await outboxCount(e);
    await expect(send(alice, "nobody", "x")).rejects.toMatchObject({ code: 5, details: 'recipient "nobody" is unknown' });
    expect(await outboxCount(e)).toBe(before);
    alice.close();
  });

  test("the destination gateway killed mid-flight and restarted: every message arrives once, nothing lost", async () => {
    const dave = connectClient(gw1, tokens.dave!);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await send(dave, "erin", `before ${i}`)).messageId);
    await e.mesh.stopComponent("gw-im-2", "SIGKILL");
    for (let i = 0; i < 10; i++) ids.push((await send(dave, "erin", `during ${i}`)).messageId);
    await e.mesh.startComponent(e.mesh.components.get("gw-im-2")!.spec);
    const erin = connectClient(gw2, tokens.erin!);
    const inbox = followInbox(erin);
    await until(() => (new Set(inbox.received.map((r) => r.message?.messageId)).size >= ids.length ? true : undefined), 30_000, "all 20 messages");
    await new Promise((r) => setTimeout(r, 500));
    const received = inbox.received.map((r) => r.message?.messageId);
    expect(received.sort()).toEqual([...ids].sort());
    await until(async () => {
      const states = await Promise.all(ids.map(async (id) => (await status(dave, id)).state));
      return states.every((s) => s === MessageState.MESSAGE_STATE_DELIVERED) ? true : undefined;
    }, 20_000, "every message delivered");
    inbox.cancel();
    dave.close();
    erin.close();
  }, 60_000);

  test("a Python client generated from proto/ sends and receives through the public API", async () => {
    const stubs = pythonStubs();
    const { stdout } = await run("/usr/bin/python3", [
      join(REPO_ROOT, "test", "python", "client_roundtrip.py"),
      "--stubs", stubs,
      "--sender-gateway", gw1,
      "--sender-token", tokens.alice!,
      "--recipient-gateway", gw2,
      "--recipient-token", tokens.bob!,
      "--to", "bob",
      "--text", "grüße aus Python",
    ], { timeout: 30_000 });
    const result = JSON.parse(stdout.trim().split("\n").pop()!) as { received_text: string; received_sender: string; state: string };
    expect(result).toMatchObject({ received_text: "grüße aus Python", received_sender: "alice", state: "MESSAGE_STATE_DELIVERED" });
  }, 40_000);
});

async function presenceOnline(e: E2EMesh, clientId: string): Promise<boolean> {
  const { createClient } = await import("redis");
  const client = createClient({ url: e.redis.url });
  await client.connect();
  try {
    return ((await client.get(`uims:presence:${clientId}`)) ?? "").includes('"online":true');
  } finally {
    await client.close();
  }
}

async function outboxCount(e: E2EMesh): Promise<number> {
  const { createClient } = await import("redis");
  const client = createClient({ url: e.redis.url });
  await client.connect();
  try {
    let n = 0;
    for await (const keys of client.scanIterator({ MATCH: "uims:out:*", COUNT: 1000 })) n += keys.length;
    return n;
  } finally {
    await client.close();
  }
}
