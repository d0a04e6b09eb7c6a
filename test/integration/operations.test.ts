import * as grpc from "@grpc/grpc-js";
import { Medium } from "../../gen/uims/common/v1/types";
import { registry, startMetricsServer } from "../../common/metrics";
import { callUnary } from "../../common/mesh/peer";
import { createStore } from "../../common/store";
import { healthStatus } from "../support/health";
import { createProfile, generateMeshSecrets, startBroker, startImGateway, testStore, type RunningBroker, type RunningImGateway } from "../support/mesh";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server";
import { until } from "../support/wait";


function text(body: string | Buffer) {
  return { contentType: "text/plain", body: Buffer.isBuffer(body) ? body : Buffer.from(body), attachments: [], subject: "" };
}

describe("operations: metrics, health, limits", () => {
  const secrets = generateMeshSecrets();
  let redis: RedisServerHandle;
  let broker: RunningBroker;
  let gw: RunningImGateway;
  let aliceToken = "";

  beforeAll(async () => {
    redis = await startRedisServer();
    broker = await startBroker(secrets, testStore("memory"));
    // The gateway's store is a Redis of its own, so that the test can take it away.
    gw = await startImGateway(secrets, broker.endpoint, "gw-im-1", createStore({ redisUrl: redis.url, readyWaitMs: 200 }), {
      env: { CLIENT_SEND_RATE: "5", CLIENT_SEND_BURST: "5", MAX_PAYLOAD_BYTES: "65536" },
    });
    aliceToken = (await createProfile(broker, { clientId: "alice", addresses: [{ medium: Medium.MEDIUM_IM, address: "alice" }], preferredMedia: [Medium.MEDIUM_IM] })).clientToken;
    await createProfile(broker, { clientId: "bob", addresses: [{ medium: Medium.MEDIUM_IM, address: "bob" }], preferredMedia: [Medium.MEDIUM_IM] });
  });

  afterAll(async () => {
    await gw.stop();
    await broker.stop();
    await gw.store.close();
    await redis.stop();
  });

  test("Prometheus metrics count messages, steps and refusals, served over HTTP", async () => {
    const alice = gw.clientFor(aliceToken);
    await callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text("hi"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
    await expect(callUnary(alice.client.send.bind(alice.client), { recipient: "nobody", payload: text("hi"), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata)).rejects.toMatchObject({ code: 5 });
    const server = await startMetricsServer(0, "127.0.0.1");
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(body).toMatch(/uims_messages_total\{role="sent",medium="im",outcome="accepted"\} [1-9]/);
      expect(body).toMatch(/uims_refusals_total\{rpc="Send",code="NOT_FOUND"\} 1/);
      expect(body).toMatch(/uims_step_duration_seconds_count\{step="uims.broker.release",outcome="ok"\} [1-9]/);
      expect(body).toContain("uims_process_cpu_seconds_total");
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
    } finally {
      await server.close();
    }
    expect(await registry.getSingleMetricAsString("uims_streams_open")).toContain("uims_streams_open");
  });

  test("per-client rate limit: RESOURCE_EXHAUSTED with a retry-after-ms hint", async () => {
    const alice = gw.clientFor(aliceToken);
    let refused: grpc.ServiceError | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      try {
        await callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text(`m${i}`), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata);
      } catch (err) {
        refused = err as grpc.ServiceError;
      }
    }
    expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(Number(refused?.metadata.get("retry-after-ms")[0])).toBeGreaterThan(0);
  });

  test("a payload over the gateway's cap: RESOURCE_EXHAUSTED, nothing stored", async () => {
    await new Promise((r) => setTimeout(r, 1_200));
    const alice = gw.clientFor(aliceToken);
    const stored = (await gw.store.scanKeys("out:*")).length;
    await expect(
      callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text(Buffer.alloc(300 * 1024, 1)), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata),
    ).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    // Between the cap and the transport limit, the gateway names the field.
    await expect(
      callUnary(alice.client.send.bind(alice.client), { recipient: "bob", payload: text(Buffer.alloc(80 * 1024, 1)), idempotencyKey: "", priority: 0, ttlSeconds: 0 }, 5_000, alice.metadata),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining("payload") });
    expect((await gw.store.scanKeys("out:*")).length).toBe(stored);
  });

  test("health follows the store: NOT_SERVING while Redis is gone, SERVING again when it is back", async () => {
    expect(await healthStatus(gw.clientEndpoint)).toBe("SERVING");
    expect(await healthStatus(`127.0.0.1:${gw.meshPort}`, "uims.gateway.v1.GatewayService")).toBe("SERVING");
    await redis.stop();
    await until(async () => ((await healthStatus(gw.clientEndpoint).catch(() => "")) === "NOT_SERVING" ? true : undefined), 15_000);
    expect(await healthStatus(`127.0.0.1:${gw.meshPort}`)).toBe("NOT_SERVING");
    redis = await startRedisServer(redis.port);
    await until(async () => ((await healthStatus(gw.clientEndpoint).catch(() => "")) === "SERVING" ? true : undefined), 20_000);
  }, 40_000);
});
