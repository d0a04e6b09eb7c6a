import type { RedisServerHandle } from "./redis-server";

export default async function globalTeardown(): Promise<void> {
  const redis = (globalThis as { __UIMS_REDIS__?: RedisServerHandle }).__UIMS_REDIS__;
  await redis?.stop();
}
