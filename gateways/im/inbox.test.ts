import { InboxMessage } from "../../gen/uims/client/v1/client";
import { Payload } from "../../gen/uims/common/v1/message";
import { Medium } from "../../gen/uims/common/v1/types";
import type { Store } from "../../common/store";
import { setTimeout as sleep } from "node:timers/promises";
import { STORE_KINDS, testStore, withOverrides } from "../../test/support/store";
import { until } from "../../test/support/wait";
import { Inboxes } from "./inbox";

function message(id: string, body: Buffer): InboxMessage {
  return {
    messageId: id,
    sender: "alice",
    senderAddress: "im:alice",
    sourceMedium: Medium.MEDIUM_IM,
    payload: { ...Payload.fromPartial({}), contentType: "application/octet-stream", body, subject: "s" },
    sentAtUnixMs: 1_700_000_000_000,
    traceId: "0af7651916cd43dd8448eb211c80319c",
  };
}

describe.each(STORE_KINDS)("inbox on the %s store", (kind) => {
  let store: Store;
  let inboxes: Inboxes;

  beforeEach(() => {
    store = testStore(kind);
    inboxes = new Inboxes(store);
  });
  afterEach(() => store.close());

  it("keeps content byte for byte, once per message id, in order", async () => {
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const first = await inboxes.append("bob", message("m1", every));
    expect(await inboxes.append("bob", message("m1", every))).toBe(first);
    await inboxes.append("bob", message("m2", Buffer.from("second")));
    const entries = await inboxes.read("bob", "", 10);
    expect(entries.map((e) => e.message.messageId)).toEqual(["m1", "m2"]);
    expect(entries[0]).toEqual({ cursor: first, message: message("m1", every) });
    expect(await inboxes.cursorOf("bob", "m1")).toBe(first);
  });

  it("reads entries written in the earlier JSON form", async () => {
    const payload = Payload.encode(message("old", Buffer.from("from before")).payload!).finish();
    const legacy = {
      messageId: "old",
      sender: "alice",
      senderAddress: "im:alice",
      sourceMedium: Medium.MEDIUM_IM,
      payload: Buffer.from(payload).toString("base64"),
      sentAtUnixMs: 1_700_000_000_000,
      traceId: "0af7651916cd43dd8448eb211c80319c",
    };
    const cursor = await store.streamAppend("inbox:bob", JSON.stringify(legacy));
    await inboxes.append("bob", message("new", Buffer.from("after")));
    const entries = await inboxes.read("bob", "", 10);
    expect(entries[0]).toEqual({ cursor, message: message("old", Buffer.from("from before")) });
    expect(entries[1]?.message.payload?.body.toString()).toBe("after");
  });

  it("keeps every message for the retention after it arrived, without an expiry write per message, then expires when idle", async () => {
    let extensions = 0;
    const counted = withOverrides(store, {
      expire: (key: string, ttlMs: number) => {
        extensions++;
        return store.expire(key, ttlMs);
      },
    });
    const retentionMs = 1_000;
    const short = new Inboxes(counted, 1_000, retentionMs);
    for (let i = 0; i < 10; i++) await short.append("carol", message(`a${i}`, Buffer.from("x")));
    expect(extensions).toBe(1);
    await sleep(300);
    await short.append("carol", message("late", Buffer.from("y")));
    expect(extensions).toBe(2);
    // The first messages are older than the retention by now; "late" is not, and keeps them.
    await sleep(900);
    expect((await short.read("carol", "", 20)).map((e) => e.message.messageId)).toContain("late");
    await until(async () => ((await short.read("carol", "", 20)).length === 0 ? true : undefined), 3_000, "the idle inbox expired");
  });
});
