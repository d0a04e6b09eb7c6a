import * as grpc from "@grpc/grpc-js";
import { BrokerServiceClient, BrokerServiceService, SubmitResponse, type SubmitRequest } from "../../gen/uims/broker/v1/broker";
import { freeLoopbackPort } from "../../cli/local-mesh";
import { channelOptions } from "../grpc-client";
import { bindServer, createGrpcServer, serverCredentials } from "../grpc-server";
import { connectionAgeOptions } from "../../broker/server";
import { MultiplexedClient, multiplexed } from "./multiplex";

/** A broker stand-in that answers SubmitStream items after `delayMs` and counts them. */
async function replica(port: number, delayMs = 0, serverOptions: grpc.ServerOptions = {}): Promise<{ served: () => number; stop: () => void }> {
  let served = 0;
  const { server } = createGrpcServer({ maxMessageBytes: 1 << 20, reflection: false, channelOptions: serverOptions });
  server.addService(BrokerServiceService, {
    submitStream: multiplexed<SubmitRequest, SubmitResponse>(async () => {
      served++;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      return SubmitResponse.fromPartial({});
    }),
  });
  await bindServer(server, "127.0.0.1", port, serverCredentials());
  return { served: () => served, stop: () => server.forceShutdown() };
}

function clientFor(target: string): BrokerServiceClient {
  return new BrokerServiceClient(target, grpc.credentials.createInsecure(), {
    ...channelOptions({ maxMessageBytes: 1 << 20 }),
    // Try a replica that is down again within a tenth of a second (the default waits a second and more).
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 200,
  });
}

const request = (): SubmitRequest => ({ auth: undefined, meta: undefined });

/** Calls every 10 ms for `ms`; resolves with how many failed. */
async function traffic(clients: Array<MultiplexedClient<SubmitRequest, SubmitResponse>>, ms: number): Promise<number> {
  const calls: Array<Promise<unknown>> = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    for (const c of clients) calls.push(c.call(request()));
    await new Promise((r) => setTimeout(r, 10));
  }
  const results = await Promise.allSettled(calls);
  return results.filter((r) => r.status === "rejected").length;
}

describe("MultiplexedClient stream lifetime", () => {
  test("a replica that comes up later gets calls once streams move on; without a lifetime it gets none", async () => {
    const [portA, portB] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const a = await replica(portA);
    const target = `ipv4:127.0.0.1:${portA},127.0.0.1:${portB}`;
    const rotating = clientFor(target);
    const fixed = clientFor(target);
    const withLifetime = new MultiplexedClient<SubmitRequest, SubmitResponse>(() => rotating.submitStream(), 2_000, 200);
    const withoutLifetime = new MultiplexedClient<SubmitRequest, SubmitResponse>(() => fixed.submitStream(), 2_000);
    let b: Awaited<ReturnType<typeof replica>> | undefined;
    try {
      expect(await traffic([withLifetime, withoutLifetime], 300)).toBe(0);
      expect(a.served()).toBeGreaterThan(0);
      b = await replica(portB);
      expect(await traffic([withLifetime], 1_500)).toBe(0);
      const servedByB = b.served();
      expect(servedByB).toBeGreaterThan(0);
      expect(await traffic([withoutLifetime], 500)).toBe(0);
      expect(b.served()).toBe(servedByB);
      // Retired streams end once answered: one stream each remains.
      expect(withLifetime.openStreams).toBeLessThanOrEqual(2);
    } finally {
      withLifetime.close();
      withoutLifetime.close();
      rotating.close();
      fixed.close();
      a.stop();
      b?.stop();
    }
  });

  test("calls on a stream that is retired still get their answers", async () => {
    const port = await freeLoopbackPort();
    const slow = await replica(port, 300);
    const client = clientFor(`127.0.0.1:${port}`);
    const multiplexedClient = new MultiplexedClient<SubmitRequest, SubmitResponse>(() => client.submitStream(), 2_000, 40);
    try {
      const first = multiplexedClient.call(request());
      await new Promise((r) => setTimeout(r, 100));
      // Past the lifetime: this call opens the next stream, the first stream is half-closed.
      const second = multiplexedClient.call(request());
      expect(multiplexedClient.openStreams).toBe(2);
      await expect(Promise.all([first, second])).resolves.toHaveLength(2);
      expect(slow.served()).toBe(2);
      const deadline = Date.now() + 2_000;
      while (multiplexedClient.openStreams > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(multiplexedClient.openStreams).toBe(1);
    } finally {
      multiplexedClient.close();
      client.close();
      slow.stop();
    }
  });

  test("the broker's connection age cuts no call of clients whose streams move on", async () => {
    const port = await freeLoopbackPort();
    // Connections are asked to go away every 300 ms, far more often than in production.
    const broker = await replica(port, 20, connectionAgeOptions({ maxConnectionAgeMs: 300, meshStreamLifetimeMs: 100 }));
    const client = clientFor(`127.0.0.1:${port}`);
    const multiplexedClient = new MultiplexedClient<SubmitRequest, SubmitResponse>(() => client.submitStream(), 2_000, 100);
    try {
      expect(await traffic([multiplexedClient], 1_500)).toBe(0);
      expect(broker.served()).toBeGreaterThan(100);
    } finally {
      multiplexedClient.close();
      client.close();
      broker.stop();
    }
  });
});
