import type { Store } from "../common/store";
import type { Presence } from "./router";

/** Where each im client was last seen, and whether its inbox stream is open (for routing). */
export class PresenceBook {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  async get(clientId: string): Promise<Presence | null> {
    const raw = await this.store.get(`presence:${clientId}`);
    return raw === null ? null : (JSON.parse(raw) as Presence);
  }

  async set(clientId: string, gatewayId: string, online: boolean): Promise<void> {
    const presence: Presence = { gatewayId, online, atUnixMs: this.clock() };
    await this.store.set(`presence:${clientId}`, JSON.stringify(presence));
  }
}
