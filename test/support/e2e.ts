import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { AdminServiceClient, type Profile } from "../../gen/uims/admin/v1/admin";
import { ClientServiceClient, type InboxResponse } from "../../gen/uims/client/v1/client";
import { LocalMesh, type ComponentSpec } from "../../cli/local-mesh";
import { callUnary } from "../../common/mesh/peer";
import { startRedisServer, type RedisServerHandle } from "./redis-server";

/** A mesh of separate processes on loopback with its own redis-server, for end-to-end tests. */

export const REPO_ROOT = resolve(__dirname, "..", "..");

export function requireBuild(): void {
  if (!existsSync(join(REPO_ROOT, "dist", "broker", "main.js"))) throw new Error("dist/ is missing: run `make build` (make test does it first)");
}

export interface E2EMesh {
  mesh: LocalMesh;
  redis: RedisServerHandle;
  admin: AdminServiceClient;
  adminMetadata: grpc.Metadata;
  stop(): Promise<void>;
}

export async function startE2EMesh(components: ComponentSpec[], env: Record<string, string> = {}): Promise<E2EMesh> {
  requireBuild();
  const redis = await startRedisServer();
  const mesh = new LocalMesh({ components, redisUrl: redis.url, logDir: mkdtempSync(join(tmpdir(), "uims-e2e-")), env: { LOG_LEVEL: "info", ...env } });
  try {
    await mesh.start();
  } catch (err) {
    await mesh.stop("SIGKILL");
    await redis.stop();
    throw err;
  }
  const admin = new AdminServiceClient(mesh.broker.endpoint, grpc.credentials.createInsecure());
  const adminMetadata = new grpc.Metadata();
  adminMetadata.set("authorization", `Bearer ${mesh.secrets.UIMS_ADMIN_TOKEN}`);
  return {
    mesh,
    redis,
    admin,
    adminMetadata,
    async stop() {
      admin.close();
      await mesh.stop("SIGKILL");
      await redis.stop();
    },
  };
}

export async function addProfile(e: E2EMesh, profile: Partial<Profile> & { clientId: string }): Promise<string> {
  const full: Profile = { displayName: "", addresses: [], preferredMedia: [], sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0, ...profile };
  const res = await callUnary(e.admin.createProfile.bind(e.admin), { profile: full }, 5_000, e.adminMetadata);
  return res.clientToken;
}

export interface ClientHandle {
  client: ClientServiceClient;
  metadata: grpc.Metadata;
  close(): void;
}

export function connectClient(endpoint: string, token: string): ClientHandle {
  const client = new ClientServiceClient(endpoint, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return { client, metadata, close: () => client.close() };
}

export { followInbox } from "./inbox";

export { until } from "./wait";

/** Generates the Python stubs once per run. */
export function pythonStubs(): string {
  const out = mkdtempSync(join(tmpdir(), "uims-pygen-"));
  execFileSync(join(REPO_ROOT, "scripts", "gen-python.sh"), [out], { stdio: "pipe" });
  return out;
}
