import { startRedisServer } from "./redis-server";

// One redis-server for the whole run; each test isolates itself with its own key prefix.
// Workers inherit process.env from here.
export default async function globalSetup(): Promise<void> {
  const redis = await startRedisServer();
  process.env.UIMS_TEST_REDIS_URL = redis.url;
  (globalThis as { __UIMS_REDIS__?: typeof redis }).__UIMS_REDIS__ = redis;
}
