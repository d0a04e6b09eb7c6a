import type * as grpc from "@grpc/grpc-js";
import type { ClientServiceClient, InboxResponse } from "../../gen/uims/client/v1/client";

/** A live inbox stream that records what arrives. */
export function followInbox(h: { client: ClientServiceClient; metadata: grpc.Metadata }, afterCursor = ""): { received: InboxResponse[]; cancel(): void } {
  const received: InboxResponse[] = [];
  const stream = h.client.inbox({ afterCursor, manualAck: false }, h.metadata);
  stream.on("data", (r: InboxResponse) => received.push(r));
  stream.on("error", () => undefined);
  return { received, cancel: () => stream.cancel() };
}
