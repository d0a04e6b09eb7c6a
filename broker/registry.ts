import { GatewayInfo } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { isKnownMedium } from "../common/addresses";
import { AbortedError, InvalidArgumentError } from "../common/errors";
import type { Store } from "../common/store";

// Store layout:
//   node:<node id>  JSON NodeRecord, expiring when the node stops sending heartbeats for long
//                   (Heartbeat then answers known=false and the node registers again).
//   nodes           score-0 sorted set of node ids, for listing.
const NODE_PREFIX = "node:";
const INDEX_KEY = "nodes";

const DEFAULT_REFRESH_MS = 500;
// A silent node stays listed (as unhealthy) for operators to see, then disappears; Kubernetes
// gives every new pod a new name, so entries must not pile up forever.
const DEFAULT_EXPIRE_AFTER_MS = 60 * 60_000;
const MISSED_HEARTBEATS = 3;
const CAS_ATTEMPTS = 8;

export type NodeKind = "gateway" | "processor";

export interface NodeRecord {
  nodeId: string;
  kind: NodeKind;
  /** Medium served; MEDIUM_UNSPECIFIED for processors. */
  medium: Medium;
  /** host:port where other mesh members reach the node. */
  endpoint: string;
  /** Messages the node can have in flight at once; 0 when undeclared. */
  capacity: number;
  version: string;
  registeredAtUnixMs: number;
  lastHeartbeatUnixMs: number;
  reportedHealthy: boolean;
  detail: string;
  inFlight: number;
}

export interface RegistryOptions {
  heartbeatIntervalMs: number;
  clock?: () => number;
  /** Longest age of the in-memory snapshot that routing reads. */
  refreshMs?: number;
  /** How long a node that sends no heartbeat stays in the registry. */
  expireAfterMs?: number;
}

/** What a node declares when it registers; health fields default to healthy, idle. */
export type NodeRegistration = Pick<NodeRecord, "nodeId" | "kind" | "medium" | "endpoint" | "capacity" | "version"> &
  Partial<Pick<NodeRecord, "reportedHealthy" | "detail" | "inFlight">>;

export interface HeartbeatReport {
  inFlight: number;
  healthy: boolean;
  detail: string;
}

function load(rec: NodeRecord): number {
  if (rec.capacity > 0) return rec.inFlight / rec.capacity;
  return rec.inFlight > 0 ? Number.POSITIVE_INFINITY : 0;
}

function byId(a: NodeRecord, b: NodeRecord): number {
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

function parse(raw: string): NodeRecord {
  return JSON.parse(raw) as NodeRecord;
}

function checkRecord(rec: NodeRecord): void {
  if (!rec.nodeId) throw new InvalidArgumentError("node_id", "must not be empty");
  if (rec.nodeId.length > 128 || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(rec.nodeId)) {
    throw new InvalidArgumentError("node_id", "must be 1 to 128 of [A-Za-z0-9._-], starting with a letter or digit");
  }
  if (rec.kind !== "gateway" && rec.kind !== "processor") throw new InvalidArgumentError("kind", "must be gateway or processor");
  if (rec.kind === "gateway" && !isKnownMedium(rec.medium)) throw new InvalidArgumentError("medium", "a gateway must name the medium it serves");
  if (rec.kind === "processor" && rec.medium !== Medium.MEDIUM_UNSPECIFIED && !isKnownMedium(rec.medium)) {
    throw new InvalidArgumentError("medium", `unknown medium ${rec.medium}`);
  }
  if (!rec.endpoint) throw new InvalidArgumentError("endpoint", "must not be empty");
  if (!Number.isInteger(rec.capacity) || rec.capacity < 0) throw new InvalidArgumentError("capacity", "must be a whole number");
}

/**
 * The gateway and processor registry. Entries live in the store, shared by every broker replica;
 * routing reads a snapshot kept in memory, refreshed every `refreshMs` in the background once
 * `startRefreshing` runs (a message never waits for it), otherwise when a reader finds it older.
 */
export class GatewayRegistry {
  readonly heartbeatIntervalMs: number;
  private readonly clock: () => number;
  private readonly refreshMs: number;
  private readonly expireAfterMs: number;
  private cached: { at: number; records: readonly NodeRecord[] } | undefined;
  private refreshing: Promise<readonly NodeRecord[]> | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    opts: RegistryOptions,
  ) {
    if (!(opts.heartbeatIntervalMs > 0)) throw new RangeError("heartbeatIntervalMs must be positive");
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs;
    this.clock = opts.clock ?? Date.now;
    this.refreshMs = opts.refreshMs ?? DEFAULT_REFRESH_MS;
    this.expireAfterMs = Math.max(opts.expireAfterMs ?? DEFAULT_EXPIRE_AFTER_MS, MISSED_HEARTBEATS * 2 * opts.heartbeatIntervalMs);
  }

  /**
   * Adds or replaces a node's entry. A registration counts as a heartbeat; registeredAt and
   * lastHeartbeat are set here.
   */
  async register(rec: NodeRegistration): Promise<NodeRecord> {
    const now = this.clock();
    const record: NodeRecord = {
      nodeId: rec.nodeId,
      kind: rec.kind,
      medium: rec.medium,
      endpoint: rec.endpoint,
      capacity: rec.capacity,
      version: rec.version,
      registeredAtUnixMs: now,
      lastHeartbeatUnixMs: now,
      reportedHealthy: rec.reportedHealthy ?? true,
      detail: rec.detail ?? "",
      inFlight: rec.inFlight ?? 0,
    };
    checkRecord(record);
    await this.store.set(NODE_PREFIX + record.nodeId, JSON.stringify(record), this.expireAfterMs);
    await this.store.sortedAdd(INDEX_KEY, record.nodeId, 0);
    this.remember(record);
    return record;
  }

  /** Records a heartbeat. false when the node is not registered (or its entry expired). */
  async heartbeat(nodeId: string, report: HeartbeatReport): Promise<boolean> {
    if (!nodeId) throw new InvalidArgumentError("node_id", "must not be empty");
    const key = NODE_PREFIX + nodeId;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = await this.store.get(key);
      if (raw === null) return false;
      const record: NodeRecord = {
        ...parse(raw),
        lastHeartbeatUnixMs: this.clock(),
        inFlight: report.inFlight,
        reportedHealthy: report.healthy,
        detail: report.detail,
      };
      // Compare-and-set, so that a heartbeat never overwrites a re-registration that raced it.
      if (await this.store.compareAndSet(key, raw, JSON.stringify(record), this.expireAfterMs)) {
        this.remember(record);
        return true;
      }
    }
    throw new AbortedError(`node "${nodeId}" is being changed concurrently; try again`);
  }

  /** Removes a node's entry (graceful shutdown). false when there was none. */
  async deregister(nodeId: string): Promise<boolean> {
    const removed = (await this.store.del(NODE_PREFIX + nodeId)) > 0;
    await this.store.sortedRemove(INDEX_KEY, nodeId);
    if (this.cached) this.cached = { at: this.cached.at, records: this.cached.records.filter((r) => r.nodeId !== nodeId) };
    return removed;
  }

  async get(nodeId: string): Promise<NodeRecord | null> {
    if (!nodeId) return null;
    const raw = await this.store.get(NODE_PREFIX + nodeId);
    return raw === null ? null : parse(raw);
  }

  /** Every entry, read from the store, by node id; only gateways of `medium` when one is given. */
  async list(medium?: Medium): Promise<NodeRecord[]> {
    const all = await this.loadAll();
    const wanted = medium === undefined || medium === Medium.MEDIUM_UNSPECIFIED ? all : all.filter((r) => r.medium === medium && r.kind === "gateway");
    return [...wanted];
  }

  /** Reported healthy at the last heartbeat, and that heartbeat is recent (3 intervals). */
  isHealthy(rec: NodeRecord, now: number = this.clock()): boolean {
    return rec.reportedHealthy && now - rec.lastHeartbeatUnixMs <= MISSED_HEARTBEATS * this.heartbeatIntervalMs;
  }

  /**
   * Every entry, from an in-memory copy at most `refreshMs` old (twice that while the background
   * refresh runs). Routing calls this for every message, so concurrent callers share one store read.
   */
  async snapshot(): Promise<readonly NodeRecord[]> {
    const now = this.clock();
    // With the background refresh running, a copy one missed tick old is still current enough.
    const maxAge = this.refreshTimer ? 2 * this.refreshMs : this.refreshMs;
    if (this.cached && now - this.cached.at < maxAge) return this.cached.records;
    return this.refresh();
  }

  /** Refreshes the snapshot every `refreshMs` until the returned function is called. */
  startRefreshing(onError: (err: unknown) => void): () => void {
    const timer = setInterval(() => void this.refresh().catch(onError), this.refreshMs);
    timer.unref();
    this.refreshTimer = timer;
    return () => {
      clearInterval(timer);
      if (this.refreshTimer === timer) this.refreshTimer = undefined;
    };
  }

  private refresh(): Promise<readonly NodeRecord[]> {
    if (!this.refreshing) {
      this.refreshing = this.loadAll()
        .then((records) => {
          this.cached = { at: this.clock(), records };
          return records;
        })
        .finally(() => {
          this.refreshing = undefined;
        });
    }
    return this.refreshing;
  }

  /**
   * One entry from the snapshot, or from the store when the snapshot does not know it yet (a node
   * that just registered with another replica). Calls on a message's path use this.
   */
  async lookup(nodeId: string): Promise<NodeRecord | null> {
    return (await this.snapshot()).find((r) => r.nodeId === nodeId) ?? (await this.get(nodeId));
  }

  /** Healthy nodes of a kind (and medium), least loaded first, then by node id. */
  async healthyNodes(kind: NodeKind, medium?: Medium): Promise<NodeRecord[]> {
    const records = await this.snapshot();
    const now = this.clock();
    return records
      .filter((r) => r.kind === kind && (medium === undefined || r.medium === medium) && this.isHealthy(r, now))
      .sort((a, b) => load(a) - load(b) || byId(a, b));
  }

  toGatewayInfo(rec: NodeRecord, now: number = this.clock()): GatewayInfo {
    const healthy = this.isHealthy(rec, now);
    let detail = rec.detail;
    if (!healthy && rec.reportedHealthy) detail = `no heartbeat for ${Math.round((now - rec.lastHeartbeatUnixMs) / 1000)} s`;
    else if (!healthy && !detail) detail = "reported unhealthy";
    return GatewayInfo.fromPartial({
      nodeId: rec.nodeId,
      kind: rec.kind,
      medium: rec.medium,
      endpoint: rec.endpoint,
      healthy,
      detail,
      inFlight: rec.inFlight,
      capacity: rec.capacity,
      lastHeartbeatUnixMs: rec.lastHeartbeatUnixMs,
      version: rec.version,
    });
  }

  private async loadAll(): Promise<NodeRecord[]> {
    const ids: string[] = [];
    for (let after = ""; ; ) {
      const page = await this.store.sortedRangeByMember(INDEX_KEY, after, 1000);
      ids.push(...page);
      const last = page[page.length - 1];
      if (page.length < 1000 || last === undefined) break;
      after = last;
    }
    if (ids.length === 0) return [];
    const raws = await this.store.getMany(ids.map((id) => NODE_PREFIX + id));
    const records: NodeRecord[] = [];
    const expired: string[] = [];
    raws.forEach((raw, i) => {
      if (raw !== null) records.push(parse(raw));
      else expired.push(ids[i] as string);
    });
    if (expired.length > 0) await this.forget(expired);
    return records.sort(byId);
  }

  /** Drops index entries of expired nodes, re-adding any node that registered again meanwhile. */
  private async forget(nodeIds: readonly string[]): Promise<void> {
    for (const id of nodeIds) {
      await this.store.sortedRemove(INDEX_KEY, id);
      if ((await this.store.get(NODE_PREFIX + id)) !== null) await this.store.sortedAdd(INDEX_KEY, id, 0);
    }
  }

  /** Keeps this replica's snapshot in step with its own writes. */
  private remember(record: NodeRecord): void {
    if (!this.cached) return;
    const others = this.cached.records.filter((r) => r.nodeId !== record.nodeId);
    this.cached = { at: this.cached.at, records: [...others, record].sort(byId) };
  }
}
