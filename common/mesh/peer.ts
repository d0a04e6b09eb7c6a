import * as grpc from "@grpc/grpc-js";
import type { Login, SessionGrant } from "../../gen/uims/common/v1/auth";
import type { Keyring } from "../crypto/keys";
import { SessionKeyPool } from "../crypto/tscs";

/** Who this process is on the mesh, and how it dials other members. */
export interface MeshIdentity {
  nodeId: string;
  k1: Keyring;
  credentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions;
  /** Deadline of one call to a peer. */
  callTimeoutMs: number;
  /** Session keys fetched per set-up. */
  keyBatch: number;
  /** New calls move to a fresh stream after this long (see MultiplexedClient); unset: never. */
  streamLifetimeMs?: number;
  clock?: () => number;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Calls a generated unary method with a deadline and returns a promise. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number, metadata = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, metadata, { deadline: Date.now() + timeoutMs }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

export function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** A refusal that means our cached session key died with the callee's state (restart, store loss). */
function isStaleSessionKey(err: unknown): boolean {
  return errorCode(err) === grpc.status.UNAUTHENTICATED && /session key is unknown/.test(String((err as Error).message));
}

/** A session key pool for one callee, with one transparent retry when a cached key went stale. */
export class SessionKeys {
  readonly pool: SessionKeyPool;

  constructor(identity: MeshIdentity, audience: string, setUp: (login: Login) => Promise<SessionGrant>) {
    this.pool = new SessionKeyPool({
      k1: identity.k1,
      nodeId: identity.nodeId,
      audience,
      batch: identity.keyBatch,
      setUp,
      ...(identity.clock ? { clock: identity.clock } : {}),
    });
  }

  async with<T>(work: (sessionKey: Buffer) => Promise<T>): Promise<T> {
    try {
      return await work(await this.pool.acquire());
    } catch (err) {
      if (!isStaleSessionKey(err)) throw err;
      this.pool.clear();
      return work(await this.pool.acquire());
    }
  }
}
