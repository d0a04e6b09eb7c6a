import type { Logger } from "pino";
import type { StatusEvent } from "../gen/uims/common/v1/types";
import { MessageState } from "../gen/uims/common/v1/types";
import { makeRelease, type ReleaseKeys } from "../common/crypto/release";
import { GatewayClient } from "../common/mesh/gateway-client";
import type { MeshIdentity } from "../common/mesh/peer";
import type { Store } from "../common/store";
import { retries } from "../common/metrics";
import { Attr, step } from "../common/tracing";
import type { GatewayRegistry } from "./registry";
import { decodeMeta, type TransactionStore } from "./transactions";

/**
 * The broker's notices to originating gateways (the final delivery notice of patent 0047-0048,
 * plus re-routes and read receipts). Every notice is written to the store before it is sent, so
 * a notice survives a broker crash and any replica can finish it; a notice whose immediate send
 * fails is retried with backoff by whichever replica claims it.
 */
export interface NoticeJob {
  messageId: string;
  originGatewayId: string;
  /** Position of the event in the transaction's history: unique per message. */
  seq: number;
  event: StatusEvent;
  segments: number;
  /** Set for a re-route: the attempt whose release the notice carries. */
  rerouteAttempt: number;
  /** The message's trace, so that the notice's span joins it. */
  traceparent: string;
  tries: number;
}

const DUE = "notices:due";
const KEY = (member: string) => `notice:${member}`;
/** An immediate send that has not finished by then is taken over by the sweeper. */
const LEASE_MS = 5_000;
const MAX_BACKOFF_MS = 60_000;

export class Notifier {
  private readonly clients = new Map<string, GatewayClient>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(
    private readonly deps: {
      store: Store;
      registry: GatewayRegistry;
      transactions: TransactionStore;
      identity: MeshIdentity;
      releaseKeys: ReleaseKeys;
      logger: Logger;
      clock: () => number;
      /** How long notices are retried before they are dropped (the originator is gone). */
      giveUpAfterMs: number;
    },
  ) {}

  async enqueue(job: Omit<NoticeJob, "tries">): Promise<void> {
    const full: NoticeJob = { ...job, tries: 0 };
    const member = `${job.messageId}:${job.seq}`;
    await Promise.all([this.deps.store.set(KEY(member), JSON.stringify(full), this.deps.giveUpAfterMs), this.deps.store.sortedAdd(DUE, member, this.deps.clock() + LEASE_MS)]);
    void this.deliver(member, full);
  }

  start(intervalMs = 500): void {
    this.timer = setInterval(() => void this.sweep(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  /** Sends notices whose immediate send failed or never finished. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = this.deps.clock();
      for (const { member } of await this.deps.store.sortedRangeByScore(DUE, 0, now, 100)) {
        if (!(await this.deps.store.sortedRemove(DUE, member))) continue;
        const raw = await this.deps.store.get(KEY(member));
        if (raw === null) continue;
        const job = JSON.parse(raw) as NoticeJob;
        await this.deps.store.sortedAdd(DUE, member, now + LEASE_MS);
        await this.deliver(member, job);
      }
    } catch (err) {
      this.deps.logger.warn({ err }, "notice sweep failed");
    } finally {
      this.sweeping = false;
    }
  }

  private async deliver(member: string, job: NoticeJob): Promise<void> {
    await step("uims.broker.notify", { traceparent: job.traceparent, attributes: { [Attr.messageId]: job.messageId, "uims.state": MessageState[job.event.state] ?? "", "uims.rerouted": job.rerouteAttempt > 0 } }, () => this.send(member, job)).catch(() => undefined);
  }

  private async send(member: string, job: NoticeJob): Promise<void> {
    try {
      const client = await this.clientFor(job.originGatewayId);
      await client.notify(async (sessionKey) => {
        if (job.rerouteAttempt === 0) return { messageId: job.messageId, event: job.event, segments: job.segments };
        return { messageId: job.messageId, event: job.event, segments: job.segments, reroute: await this.mintReroute(job, sessionKey) };
      });
      await Promise.all([this.deps.store.del(KEY(member)), this.deps.store.sortedRemove(DUE, member)]);
    } catch (err) {
      if ((err as { obsolete?: boolean }).obsolete) {
        // A later report or fallback superseded this re-route: nothing left to tell.
        await this.deps.store.del(KEY(member)).catch(() => undefined);
        await this.deps.store.sortedRemove(DUE, member).catch(() => undefined);
        return;
      }
      const tries = job.tries + 1;
      retries.inc({ kind: "notice" });
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(tries, 10)) * (0.5 + Math.random() / 2);
      this.deps.logger.warn({ err, messageId: job.messageId, origin: job.originGatewayId, tries }, "notice not delivered; will retry");
      await this.deps.store.set(KEY(member), JSON.stringify({ ...job, tries }), this.deps.giveUpAfterMs).catch(() => undefined);
      await this.deps.store.sortedAdd(DUE, member, this.deps.clock() + delay).catch(() => undefined);
    }
  }

  /**
   * A re-route release is made with this notice's session key as C_ack, which the originator
   * knows (it issued it). Each minted ID is added to the attempt's accepted IDs.
   */
  private async mintReroute(job: NoticeJob, sessionKey: Buffer) {
    let release: ReturnType<typeof makeRelease> | undefined;
    const result = await this.deps.transactions.update(job.messageId, (txn) => {
      if (txn.attempt !== job.rerouteAttempt || txn.state !== MessageState.MESSAGE_STATE_ROUTED) return null;
      release = makeRelease(this.deps.releaseKeys, decodeMeta(txn), sessionKey);
      txn.releaseIds.push(release.releaseId.toString("hex"));
      return txn;
    });
    if (!result?.after || !release) throw Object.assign(new Error("re-route is no longer current"), { obsolete: true });
    return release;
  }

  private async clientFor(nodeId: string): Promise<GatewayClient> {
    const node = await this.deps.registry.lookup(nodeId);
    if (!node) throw new Error(`originating gateway ${nodeId} is not registered`);
    const cached = this.clients.get(nodeId);
    if (cached && cached.endpoint === node.endpoint) return cached;
    cached?.close();
    const client = new GatewayClient(nodeId, node.endpoint, this.deps.identity);
    this.clients.set(nodeId, client);
    return client;
  }
}
