import { readCommonConfig, type CommonConfig, type EnvReader } from "./config";
import { verifyKeyFromRaw, type VerifyKeys } from "./crypto/keys";
import { channelOptions, clientCredentials } from "./grpc-client";
import { TscsAuthority } from "./crypto/tscs";
import { BrokerClient } from "./mesh/broker-client";
import type { MeshIdentity } from "./mesh/peer";
import { PeerClients } from "./mesh/peers";
import type { Store } from "./store";

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
    streamLifetimeMs: config.meshStreamLifetimeMs,
    clock,
  };
}

/** Room for protobuf framing and the release around a payload at the cap. */
export const ENVELOPE_BYTES = 64 * 1024;

/**
 * What a gateway or processor needs to take part in the mesh: its dialling identity, the broker
 * client, clients of its peers, and the TSCS authority that admits calls to it.
 */
export function joinMesh(config: MemberConfig & { maxPayloadBytes: number; sessionKeyTtlMs: number }, store: Store, clock: () => number) {
  const maxMessageBytes = config.maxPayloadBytes + ENVELOPE_BYTES;
  const identity = meshIdentity(config, maxMessageBytes, clock);
  return {
    maxMessageBytes,
    identity,
    broker: new BrokerClient(config.brokerAddr, identity),
    peers: new PeerClients(identity),
    tscs: new TscsAuthority({ audience: config.nodeId, k1: config.k1, store, windowMs: config.tscsWindowMs, sessionKeyTtlMs: config.sessionKeyTtlMs, clock }),
  };
}
