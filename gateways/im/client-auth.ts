import { createHash } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { UnauthenticatedError } from "../../common/errors";
import type { BrokerClient } from "../../common/mesh/broker-client";
import { errorCode } from "../../common/mesh/peer";

/**
 * Client tokens: `authorization: Bearer <token>`. The gateway hashes the token and asks the
 * broker whose it is (tokens are stored hashed there), caching answers briefly so that a busy
 * client does not cost a broker call per request. A rotated token stops working within the TTL.
 */
export class ClientAuthenticator {
  private readonly cache = new Map<string, { clientId: string; expiresAt: number }>();

  constructor(
    private readonly broker: BrokerClient,
    private readonly ttlMs = 30_000,
    private readonly clock: () => number = Date.now,
  ) {}

  async authenticate(metadata: grpc.Metadata): Promise<string> {
    const values = metadata.get("authorization");
    const header = values.length === 1 ? String(values[0]) : "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new UnauthenticatedError("missing client token: send `authorization: Bearer <token>`");
    const hash = createHash("sha256").update(match[1]!).digest();
    const key = hash.toString("hex");
    const cached = this.cache.get(key);
    const now = this.clock();
    if (cached && cached.expiresAt > now) return cached.clientId;
    try {
      const clientId = await this.broker.resolveClientToken(hash);
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, { clientId, expiresAt: now + this.ttlMs });
      return clientId;
    } catch (err) {
      if (errorCode(err) === status.NOT_FOUND) throw new UnauthenticatedError("client token is not valid");
      throw err;
    }
  }
}
