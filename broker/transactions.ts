import { MetaInformation } from "../gen/uims/common/v1/message";
import { FailureKind, Medium, MessageState, type MessageStatus, type StatusEvent } from "../gen/uims/common/v1/types";
import { CasRecords, type Store } from "../common/store";

/**
 * A message's transaction at the broker, in the store, so that any broker replica can continue
 * it. Updates are compare-and-set on the whole record: two replicas handling the same message
 * never lose each other's writes.
 */
export interface Transaction {
  messageId: string;
  /** IMI' of the current attempt, protobuf bytes in base64. */
  meta: string;
  /**
   * Inner IDs (hex) the broker minted for the current attempt. Usually one; a retried submit or a
   * re-sent re-route notice mints another with its own C_ack, and any of them is accepted.
   */
  releaseIds: string[];
  state: MessageState;
  confirmed: boolean;
  attempt: number;
  triedMedia: Medium[];
  events: StatusEvent[];
  segments: number;
  /** When the current step times out (no report by then means fallback or expiry). */
  deadlineUnixMs: number;
  accounted: boolean;
  traceId: string;
}

const FINAL_STATES = new Set([MessageState.MESSAGE_STATE_READ, MessageState.MESSAGE_STATE_FAILED, MessageState.MESSAGE_STATE_EXPIRED]);

export function isFinal(state: MessageState): boolean {
  return FINAL_STATES.has(state);
}

export function encodeMeta(meta: MetaInformation): string {
  return Buffer.from(MetaInformation.encode(meta).finish()).toString("base64");
}

export function decodeMeta(txn: Transaction): MetaInformation {
  return MetaInformation.decode(Buffer.from(txn.meta, "base64"));
}

export function traceIdOf(traceparent: string | undefined): string {
  const parts = (traceparent ?? "").split("-");
  return parts.length === 4 && parts[1]?.length === 32 ? parts[1] : "";
}

export function statusOf(txn: Transaction): MessageStatus {
  const meta = decodeMeta(txn);
  return {
    messageId: txn.messageId,
    state: txn.state,
    medium: meta.targetMedium,
    events: txn.events,
    traceId: txn.traceId,
    segments: txn.segments,
    recipient: meta.recipient,
  };
}

export function event(state: MessageState, fields: Partial<StatusEvent> & { atUnixMs: number }): StatusEvent {
  return { state, medium: Medium.MEDIUM_UNSPECIFIED, failureKind: FailureKind.FAILURE_KIND_UNSPECIFIED, reason: "", attempt: 0, gatewayId: "", ...fields };
}

const KEY = (id: string) => `txn:${id}`;
const DEADLINES = "txn:deadlines";

export class TransactionStore {
  private readonly records: CasRecords<Transaction>;

  constructor(
    private readonly store: Store,
    /** How long a finished transaction stays queryable. */
    private readonly retentionMs: number,
  ) {
    this.records = new CasRecords(store);
  }

  get(messageId: string): Promise<Transaction | null> {
    return this.records.get(KEY(messageId));
  }

  /** Creates the transaction unless one exists; returns false when it already existed. */
  async create(txn: Transaction): Promise<boolean> {
    // The deadline is written alongside; for an existing transaction it only re-states a deadline
    // the sweeper checks against the transaction anyway.
    const [created] = await Promise.all([this.records.create(KEY(txn.messageId), txn, this.ttlFor(txn)), this.store.sortedAdd(DEADLINES, txn.messageId, txn.deadlineUnixMs)]);
    return created;
  }

  /**
   * Applies `change` atomically. `change` returns the new record, or null to leave it as it is.
   * Returns [before, after] of the write that won, or null when there is no such transaction.
   */
  async update(messageId: string, change: (txn: Transaction) => Transaction | null): Promise<{ before: Transaction; after: Transaction | null } | null> {
    const result = await this.records.update(
      KEY(messageId),
      (txn) => {
        const changed = change(txn);
        if (changed === null) return false;
        if (changed !== txn) Object.assign(txn, changed);
        return true;
      },
      (txn) => this.ttlFor(txn),
    );
    if (!result?.after) return result;
    const { before, after } = result;
    if (isFinal(after.state)) await this.store.sortedRemove(DEADLINES, messageId);
    else if (after.deadlineUnixMs !== before.deadlineUnixMs) await this.store.sortedAdd(DEADLINES, messageId, after.deadlineUnixMs);
    return { before, after };
  }

  /** Messages whose deadline has passed, oldest first. */
  async due(nowUnixMs: number, limit: number): Promise<string[]> {
    return (await this.store.sortedRangeByScore(DEADLINES, 0, nowUnixMs, limit)).map((e) => e.member);
  }

  /** Takes a due message for this replica; false when another replica already took it. */
  claimDue(messageId: string): Promise<boolean> {
    return this.store.sortedRemove(DEADLINES, messageId);
  }

  /** Puts a deadline back (after a failed attempt to act on it). */
  async reschedule(messageId: string, atUnixMs: number): Promise<void> {
    await this.store.sortedAdd(DEADLINES, messageId, atUnixMs);
  }

  private ttlFor(txn: Transaction): number {
    const meta = decodeMeta(txn);
    return Math.max(meta.expiresAtUnixMs - Date.now(), 0) + this.retentionMs;
  }
}
