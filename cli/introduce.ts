import type { AdminServiceClient } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { connectClient, type Connection, type Context } from "./connect";
import { CliError } from "./errors";

const INTRODUCTION_TIMEOUT_MS = 10_000;

/**
 * Connects a client of a local mesh once to its home gateway, so that the broker has seen it
 * there. The im gateway that takes a message for an offline client keeps it in that client's
 * inbox; for a client never seen anywhere the broker picks any im gateway, and with the embedded
 * store (one per process) the client's home gateway could not hand such messages over. The stream
 * uses manual_ack, so nothing waiting in the inbox counts as delivered because of this.
 */
export async function introduce(admin: Connection<AdminServiceClient>, ctx: Context, clientId: string, endpoint: string, token: string, home: string): Promise<void> {
  const client = connectClient({ endpoint, token }, ctx);
  const stream = client.client.inbox({ afterCursor: "", manualAck: true }, client.metadata());
  stream.on("error", () => undefined);
  try {
    const deadline = Date.now() + INTRODUCTION_TIMEOUT_MS;
    for (;;) {
      const res = await admin.call((c) => c.explainRoute, { sender: clientId, recipient: clientId, contentType: "", contentSize: 0, sourceMedium: Medium.MEDIUM_UNSPECIFIED });
      if (res.candidates.some((c) => c.medium === Medium.MEDIUM_IM && c.gatewayId === home && c.usable && c.reason === "online")) return;
      if (Date.now() > deadline) throw new CliError(`the broker did not see ${clientId} connect to ${home} within ${INTRODUCTION_TIMEOUT_MS / 1000} s; see the logs`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    stream.cancel();
    client.close();
  }
}
