import * as grpc from "@grpc/grpc-js";
import { AdminServiceClient } from "../gen/uims/admin/v1/admin";
import { ClientServiceClient } from "../gen/uims/client/v1/client";
import { channelOptions } from "../common/grpc-client";
import { callUnary } from "../common/mesh/peer";
import type { AdminTarget, ClientTarget } from "./state";

/** What every command gets from the global options. */
export interface Context {
  stateDir: string;
  /** Deadline of each unary call. */
  timeoutMs: number;
}

// Attachments make client messages large; the gateway enforces its own limit and says so.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function options(): grpc.ChannelOptions {
  // One endpoint, no balancing: a client stays on its home gateway.
  return channelOptions({ maxMessageBytes: MAX_MESSAGE_BYTES, roundRobin: false });
}

function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

type UnaryMethod<Req, Res> = Parameters<typeof callUnary<Req, Res>>[0];

export interface Connection<C> {
  client: C;
  endpoint: string;
  /** A fresh copy per call: grpc-js may change the metadata it is given. */
  metadata(): grpc.Metadata;
  call<Req, Res>(method: (client: C) => UnaryMethod<Req, Res>, request: Req): Promise<Res>;
  close(): void;
}

function connection<C extends grpc.Client>(client: C, endpoint: string, token: string, ctx: Context): Connection<C> {
  return {
    client,
    endpoint,
    metadata: () => bearer(token),
    call: (method, request) => callUnary(method(client).bind(client), request, ctx.timeoutMs, bearer(token)),
    close: () => client.close(),
  };
}

export function connectClient(target: ClientTarget, ctx: Context): Connection<ClientServiceClient> {
  return connection(new ClientServiceClient(target.endpoint, grpc.credentials.createInsecure(), options()), target.endpoint, target.token, ctx);
}

export function connectAdmin(target: AdminTarget, ctx: Context): Connection<AdminServiceClient> {
  return connection(new AdminServiceClient(target.endpoint, grpc.credentials.createInsecure(), options()), target.endpoint, target.token, ctx);
}

/** Resolves once the channel is connected; rejects after `timeoutMs`. */
export function waitForReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise((ok, fail) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? fail(err) : ok())));
}
