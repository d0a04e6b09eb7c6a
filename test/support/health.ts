import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

/** A grpc.health.v1 client for tests: the status a server reports for a service ("" = the whole server). */
type HealthClient = grpc.Client & {
  check(req: { service: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

const HealthClientCtor = grpc.makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => HealthClient;

export async function healthStatus(endpoint: string, service = "", credentials = grpc.credentials.createInsecure()): Promise<string> {
  const client = new HealthClientCtor(endpoint, credentials);
  try {
    return await new Promise((resolve, reject) => {
      client.check({ service }, { deadline: new Date(Date.now() + 3_000) }, (err, res) => (err ? reject(err) : resolve(res?.status ?? "")));
    });
  } finally {
    client.close();
  }
}
