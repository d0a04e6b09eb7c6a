import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { TlsFiles } from "./config";

/** Client keepalive defaults; servers allow pings every 10 s (SERVER_MIN_PING_INTERVAL_MS). */
export const CLIENT_KEEPALIVE_TIME_MS = 30_000;
export const CLIENT_KEEPALIVE_TIMEOUT_MS = 10_000;

/**
 * Plaintext without TLS files; with them, mTLS: the peer must present a certificate signed by
 * our CA, and we present our certificate and key.
 */
export function clientCredentials(tls?: TlsFiles): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(readFileSync(tls.caFile), readFileSync(tls.keyFile), readFileSync(tls.certFile));
}

export interface ChannelOptionsInput {
  /** Largest message sent or received, in bytes. */
  maxMessageBytes: number;
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * Spread calls over every address the target resolves to (default true). A headless
   * Kubernetes Service resolves to one address per replica; grpc-js's default policy,
   * pick_first, would send everything to one of them.
   */
  roundRobin?: boolean;
  /** TLS only: the name to check in the server certificate when it differs from the target host. */
  tlsServerName?: string;
}

/** Channel options for mesh clients: message limits, keepalive and load balancing. */
export function channelOptions(input: ChannelOptionsInput): grpc.ChannelOptions {
  const options: grpc.ChannelOptions = {
    "grpc.max_receive_message_length": input.maxMessageBytes,
    "grpc.max_send_message_length": input.maxMessageBytes,
    // Long-lived streams between mesh members must notice a dead peer within seconds, not when
    // the kernel gives up on the TCP connection; pings also keep idle connections through NATs.
    "grpc.keepalive_time_ms": input.keepaliveTimeMs ?? CLIENT_KEEPALIVE_TIME_MS,
    "grpc.keepalive_timeout_ms": input.keepaliveTimeoutMs ?? CLIENT_KEEPALIVE_TIMEOUT_MS,
    "grpc.keepalive_permit_without_calls": 1,
  };
  if (input.roundRobin ?? true) {
    options["grpc.service_config"] = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });
  }
  if (input.tlsServerName !== undefined) {
    options["grpc.ssl_target_name_override"] = input.tlsServerName;
    options["grpc.default_authority"] = input.tlsServerName;
  }
  return options;
}

/** A deadline `ms` from now, for `{ deadline }` call options. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}
