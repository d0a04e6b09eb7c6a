import { GatewayClient } from "./gateway-client";
import type { MeshIdentity } from "./peer";
import { ProcessorClient } from "./processor-client";

/** Connections to other mesh members, one per node, replaced when a node's endpoint changes. */
export class PeerClients {
  private readonly gateways = new Map<string, GatewayClient>();
  private readonly processors = new Map<string, ProcessorClient>();

  constructor(private readonly identity: MeshIdentity) {}

  gateway(nodeId: string, endpoint: string): GatewayClient {
    const cached = this.gateways.get(nodeId);
    if (cached && cached.endpoint === endpoint) return cached;
    cached?.close();
    const client = new GatewayClient(nodeId, endpoint, this.identity);
    this.gateways.set(nodeId, client);
    return client;
  }

  processor(nodeId: string, endpoint: string): ProcessorClient {
    const cached = this.processors.get(nodeId);
    if (cached && cached.endpoint === endpoint) return cached;
    cached?.close();
    const client = new ProcessorClient(nodeId, endpoint, this.identity);
    this.processors.set(nodeId, client);
    return client;
  }

  close(): void {
    for (const c of this.gateways.values()) c.close();
    for (const c of this.processors.values()) c.close();
    this.gateways.clear();
    this.processors.clear();
  }
}
