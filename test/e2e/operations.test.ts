import { readFileSync } from "node:fs";
import { Medium, MessageState } from "../../gen/uims/common/v1/types";
import { callUnary } from "../../common/mesh/peer";
import { addProfile, connectClient, followInbox, startE2EMesh, until, type E2EMesh } from "../support/e2e";

/** Graceful shutdown under load, and what the logs of a whole run never contain. */
describe("operations across processes", () => {
  let e: E2EMesh;
  let tokens: Record<string, string>;

  beforeAll(async () => {
    e = await startE2EMesh([
      { nodeId: "broker-0", kind: "broker" },
      { nodeId: "gw-im-1", kind: "im" },
      { nodeId: "gw-im-2", kind: "im" },
    ]);
    tokens = {};
    for (const id of ["alice", "bob"]) {
      tokens[id] = await addProfile(e, { clientId: id, addresses: [{ medium: Medium.MEDIUM_IM, address: id }], preferredMedia: [Medium.MEDIUM_IM] });
    }
  }, 60_000);

  afterAll(async () => {
    await e?.stop();
  });

  test("SIGTERM to the originating gateway under load: it drains, exits 0, and every accepted message arrives once", async () => {
    const gw1 = e.mesh.components.get("gw-im-1")!;
    const alice = connectClient(gw1.clientEndpoint!, tokens.alice!);
    const accepted: string[] = [];
    let stop = false;
    const sender = async (worker: number) => {
      for (let i = 0; !stop; i++) {
        try {
          const res = await callUnary(
            alice.client.send.bind(alice.client),
            { recipient: "bob", payload: { contentType: "text/plain", body: Buffer.from(`secret-body-${worker}-${i}`), attachments: [], subject: "" }, idempotencyKey: "", priority: 0, ttlSeconds: 0 },
            5_000,
            alice.metadata,
          );
          accepted.push(res.messageId);
        } catch {
          // Refused while shutting down (UNAVAILABLE): never accepted, so nothing to deliver.
        }
      }
    };
    const workers = Array.from({ length: 6 }, (_, w) => sender(w));
    await until(() => (accepted.length >= 30 ? true : undefined), 10_000, "load");
    const exitCode = await e.mesh.stopComponent("gw-im-1", "SIGTERM");
    stop = true;
    await Promise.all(workers);
    alice.close();
    expect(exitCode).toBe(0);
    expect(accepted.length).toBeGreaterThanOrEqual(30);

    await e.mesh.startComponent(gw1.spec);
    const bob = connectClient(e.mesh.components.get("gw-im-2")!.clientEndpoint!, tokens.bob!);
    const inbox = followInbox(bob);
    await until(() => (accepted.every((id) => inbox.received.some((r) => r.message?.messageId === id)) ? true : undefined), 30_000, "every accepted message");
    await new Promise((r) => setTimeout(r, 500));
    const ids = inbox.received.map((r) => r.message?.messageId);
    expect(ids.length).toBe(new Set(ids).size);
    inbox.cancel();
    bob.close();

    const aliceAgain = connectClient(e.mesh.components.get("gw-im-1")!.clientEndpoint!, tokens.alice!);
    await until(async () => {
      for (const id of accepted) {
        const s = await callUnary(aliceAgain.client.getStatus.bind(aliceAgain.client), { messageId: id }, 5_000, aliceAgain.metadata);
        if (s.status?.state !== MessageState.MESSAGE_STATE_DELIVERED) return undefined;
      }
      return true;
    }, 30_000, "every accepted message DELIVERED at its sender");
    aliceAgain.close();
  }, 90_000);

  test("no secret, token or message content appears in any log", () => {
    const logs = [...e.mesh.components.values()].map((c) => readFileSync(c.logFile, "utf8")).join("\n");
    expect(logs.length).toBeGreaterThan(0);
    const secrets = [
      ...(Object.values(e.mesh.secrets) as string[]).flatMap((v) => v.split(",").map((entry: string) => entry.slice(entry.indexOf(":") + 1))),
      tokens.alice!,
      tokens.bob!,
    ];
    for (const secret of secrets) expect(logs).not.toContain(secret);
    expect(logs).not.toContain("secret-body-");
  });
});
