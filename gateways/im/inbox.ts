import { Payload } from "../../gen/uims/common/v1/message";
import { InboxMessage } from "../../gen/uims/client/v1/client";
import type { Store } from "../../common/store";

/**
 * Each client's inbox: an append-only log in the store (so an offline client gets its messages
 * when it reconnects, from any gateway sharing the store), a per-client delivered position, and
 * live subscribers for clients that are connected to this process.
 */
export interface InboxEntry {
  cursor: string;
  message: InboxMessage;
}

/** The JSON form entries had before they were stored as protobuf; still read, never written. */
interface LegacyEntry {
  messageId: string;
  sender: string;
  senderAddress: string;
  sourceMedium: number;
  payload: string;
  sentAtUnixMs: number;
  traceId: string;
}

/** '{' opens a JSON entry; a protobuf InboxMessage starts with a field tag, never with it. */
const JSON_OPENING = 0x7b;

function decodeEntry(value: Buffer): InboxMessage {
  if (value[0] !== JSON_OPENING) return InboxMessage.decode(value);
  const s = JSON.parse(value.toString()) as LegacyEntry;
  return {
    messageId: s.messageId,
    sender: s.sender,
    senderAddress: s.senderAddress,
    sourceMedium: s.sourceMedium,
    payload: Payload.decode(Buffer.from(s.payload, "base64")),
    sentAtUnixMs: s.sentAtUnixMs,
    traceId: s.traceId,
  };
}

type Listener = (entry: InboxEntry) => void;

/** Stream ids "<ms>-<seq>" compare numerically, part by part. */
export function cursorAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am > bm || (am === bm && as > bs);
}

export class Inboxes {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly positions = new Map<string, string | null>();
  /** When this process last extended each inbox's expiry. */
  private readonly extended = new Map<string, number>();

  constructor(
    private readonly store: Store,
    /**
     * Entries kept per client, delivered or not: the newest are kept, so a client can resume from
     * any of them; content older than that (and older than `retentionMs`) is gone from the inbox.
     */
    private readonly maxEntries = 1_000,
    private readonly retentionMs = 7 * 86_400_000,
  ) {}

  /** Appends a message once per message id; returns its cursor (the existing one for a repeat). */
  async append(clientId: string, message: InboxMessage): Promise<string> {
    const marker = `inbox-msg:${clientId}:${message.messageId}`;
    if (!(await this.store.setIfAbsent(marker, "pending", 30 * 86_400_000))) {
      const existing = await this.store.get(marker);
      if (existing && existing !== "pending") return existing;
    }
    // Stored as the protobuf the client receives: content never passes through text.
    const cursor = await this.store.streamAppend(`inbox:${clientId}`, InboxMessage.encode(message).finish(), this.maxEntries);
    // An inbox nobody reads expires as a whole; new messages extend it. Extended at most every
    // tenth of the retention from this process, by a tenth more: every message stays for at
    // least the retention without a write per message.
    const now = Date.now();
    if ((this.extended.get(clientId) ?? -Infinity) + this.retentionMs / 10 <= now) {
      if (this.extended.size >= 100_000) this.extended.clear();
      this.extended.set(clientId, now);
      void this.store.expire(`inbox:${clientId}`, Math.ceil(this.retentionMs * 1.1)).catch(() => this.extended.delete(clientId));
    }
    // The marker goes out first on the store's ordered connection, so an acknowledgement that
    // follows the live write always finds it; the live write does not wait for it.
    const marked = this.store.set(marker, cursor, 30 * 86_400_000);
    for (const listener of this.listeners.get(clientId) ?? []) listener({ cursor, message });
    await marked;
    return cursor;
  }

  /** The message's cursor in this client's inbox, or null when it was never delivered there. */
  async cursorOf(clientId: string, messageId: string): Promise<string | null> {
    const cursor = await this.store.get(`inbox-msg:${clientId}:${messageId}`);
    return cursor === null || cursor === "pending" ? null : cursor;
  }

  async read(clientId: string, afterCursor: string, count: number): Promise<InboxEntry[]> {
    const entries = await this.store.streamRange(`inbox:${clientId}`, afterCursor, count);
    return entries.map(({ id, value }) => ({ cursor: id, message: decodeEntry(value) }));
  }

  /** Where a client resumes when it gives no cursor: after everything delivered. */
  async deliveredPosition(clientId: string): Promise<string> {
    return (await this.store.get(`inbox-pos:${clientId}`)) ?? "";
  }

  /**
   * Moves the delivered position forward (never back), safely across replicas. The last
   * position this process wrote is tried first, so a stream's usual advance is one round trip.
   */
  async advance(clientId: string, cursor: string): Promise<void> {
    const key = `inbox-pos:${clientId}`;
    let current = this.positions.has(clientId) ? this.positions.get(clientId)! : await this.store.get(key);
    for (let i = 0; i < 8; i++) {
      if (current !== null && !cursorAfter(cursor, current)) return;
      if (await this.store.compareAndSet(key, current, cursor)) {
        if (this.positions.size > 100_000) this.positions.clear();
        this.positions.set(clientId, cursor);
        return;
      }
      current = await this.store.get(key);
    }
  }

  subscribe(clientId: string, listener: Listener): () => void {
    let set = this.listeners.get(clientId);
    if (!set) this.listeners.set(clientId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(clientId);
    };
  }

  subscribers(clientId: string): number {
    return this.listeners.get(clientId)?.size ?? 0;
  }
}
