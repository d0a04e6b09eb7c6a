import type { Logger } from "pino";
import type { Store } from "../../common/store";

/**
 * A durable schedule of work items (message ids) in the store: an item is due at a time, a
 * worker claims it (so only one replica works on it), and failed work is put back for later.
 * What the work is lives in the item's own record; this only says when to look at it again.
 */
export class WorkQueue {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly active = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly key: string,
    private readonly work: (id: string) => Promise<void>,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    /** While an item is being worked on, it is due again after this long (in case the process dies). */
    private readonly leaseMs = 15_000,
  ) {}

  /** Schedules an item (or moves it to a new time). */
  async schedule(id: string, atUnixMs: number): Promise<void> {
    await this.store.sortedAdd(this.key, id, atUnixMs);
  }

  async remove(id: string): Promise<void> {
    await this.store.sortedRemove(this.key, id);
  }

  /**
   * Runs an item now in this process, with its lease recorded first (unless the caller has just
   * recorded one: `leased`).
   */
  async runNow(id: string, leased = false): Promise<void> {
    if (!leased) await this.schedule(id, this.clock() + this.leaseMs);
    await this.track(id);
  }

  start(intervalMs = 250): void {
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.active]);
  }

  /** Waits for the work in progress (graceful shutdown). */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active]);
  }

  get inProgress(): number {
    return this.active.size;
  }

  async poll(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const now = this.clock();
      const due = await this.store.sortedRangeByScore(this.key, 0, now, 64);
      for (const { member } of due) {
        if (!(await this.store.sortedRemove(this.key, member))) continue;
        await this.schedule(member, now + this.leaseMs);
        void this.track(member);
      }
    } catch (err) {
      this.logger.warn({ err, queue: this.key }, "work queue poll failed");
    } finally {
      this.running = false;
    }
  }

  private track(id: string): Promise<void> {
    const p = this.work(id).catch((err: unknown) => this.logger.error({ err, id, queue: this.key }, "work item failed"));
    this.active.add(p);
    void p.finally(() => this.active.delete(p));
    return p;
  }
}
