import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { AdminServiceClient } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { LocalMesh } from "../cli/local-mesh";
import { callUnary } from "../common/mesh/peer";
import { startRedisServer, type RedisServerHandle } from "../cli/redis-server";
import type { LoadTarget, Party } from "./load";

/** The mesh under test: broker and two im gateways as processes, on a Redis of their own. */
export interface BenchMesh {
  mesh: LocalMesh;
  redis: RedisServerHandle;
  target: LoadTarget;
  brokerPid: number;
  senderGatewayPid: number;
  receiverGatewayPid: number;
  stop(): Promise<void>;
}

export async function startBenchMesh(opts: { senders: number; receivers: number; logDir?: string }): Promise<BenchMesh> {
  const redis = await startRedisServer();
  const mesh = new LocalMesh({
    components: [
      { nodeId: "broker-0", kind: "broker" },
      { nodeId: "gw-im-1", kind: "im" },
      { nodeId: "gw-im-2", kind: "im" },
    ],
    redisUrl: redis.url,
    logDir: opts.logDir ?? mkdtempSync(join(tmpdir(), "uims-bench-")),
    // No per-client limit: the load generator is one client per sender on purpose.
    env: { LOG_LEVEL: "info", CLIENT_SEND_RATE: "0" },
  });
  await mesh.start();
  const admin = new AdminServiceClient(mesh.broker.endpoint, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${mesh.secrets.UIMS_ADMIN_TOKEN}`);
  const create = async (clientId: string): Promise<Party> => {
    const res = await callUnary(
      admin.createProfile.bind(admin),
      { profile: { clientId, displayName: "", addresses: [{ medium: Medium.MEDIUM_IM, address: clientId }], preferredMedia: [Medium.MEDIUM_IM], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0 } },
      5_000,
      metadata,
    );
    return { clientId, token: res.clientToken };
  };
  const senders = await Promise.all(Array.from({ length: opts.senders }, (_, i) => create(`sender-${i}`)));
  const receivers = await Promise.all(Array.from({ length: opts.receivers }, (_, i) => create(`receiver-${i}`)));
  admin.close();
  return {
    mesh,
    redis,
    brokerPid: mesh.broker.process.pid!,
    senderGatewayPid: mesh.components.get("gw-im-1")!.process.pid!,
    receiverGatewayPid: mesh.components.get("gw-im-2")!.process.pid!,
    target: {
      senderEndpoint: mesh.components.get("gw-im-1")!.clientEndpoint!,
      receiverEndpoint: mesh.components.get("gw-im-2")!.clientEndpoint!,
      senders,
      receivers,
    },
    async stop() {
      await mesh.stop();
      await redis.stop();
    },
  };
}
