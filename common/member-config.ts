import { readCommonConfig, type CommonConfig, type EnvReader } from "./config";
import { verifyKeyFromRaw, type VerifyKeys } from "./crypto/keys";
import { channelOptions, clientCredentials } from "./grpc-client";
import type { MeshIdentity } from "./mesh/peer";

/** What every mesh member other than the broker reads: how to reach the broker and be reached. */
export interface MemberConfig extends CommonConfig {
  /** The broker's gRPC target; one that resolves to several replicas spreads calls over them. */
  brokerAddr: string;
  /** Where other mesh members reach this node (host:port), as registered with the broker. */
  advertiseAddr: string;
  /** The broker's release signature keys (public halves). */
  verifyKeys: VerifyKeys;
}

export function readMemberConfig(r: EnvReader): MemberConfig {
  const common = readCommonConfig(r);
  const ring = r.keyring("UIMS_RELEASE_VERIFY_KEYS");
  const verifyKeys: VerifyKeys = new Map();
  for (const [id, raw] of ring.all) {
    if (raw.length !== 32) r.problem("UIMS_RELEASE_VERIFY_KEYS", `key "${id}" is not a 32-byte Ed25519 public key`);
    else verifyKeys.set(id, verifyKeyFromRaw(raw));
  }
  const advertised = r.optionalHostPort("ADVERTISE_ADDR");
  const host = common.grpcHost === "0.0.0.0" || common.grpcHost === "::" ? "127.0.0.1" : common.grpcHost;
  return {
    ...common,
    brokerAddr: r.grpcTarget("BROKER_ADDR"),
    advertiseAddr: advertised?.address ?? `${host}:${common.grpcPort}`,
    verifyKeys,
  };
}

/** How this process dials other members: its identity, keys, credentials and limits. */
export function meshIdentity(config: CommonConfig, maxMessageBytes: number, clock: () => number = Date.now): MeshIdentity {
  return {
    nodeId: config.nodeId,
    k1: config.k1,
    credentials: clientCredentials(config.tls),
    channelOptions: channelOptions({ maxMessageBytes }),
    callTimeoutMs: 5_000,
    // Session keys per set-up: one login serves this many calls (each key is still used once).
    keyBatch: 64,
    clock,
  };
}
