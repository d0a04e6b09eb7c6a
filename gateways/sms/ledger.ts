import type { Store } from "../../common/store";
import { messageIdForms, type Receipt } from "./dlr";

/**
 * What the gateway knows of each mobile-terminated message, kept in the store so that receipts
 * arriving hours later, after a restart or on another replica's bind, still map back:
 *
 *   sms-msg:<messageId>   JSON MtRecord: the parts, their SMSC ids and receipt states, the verdict
 *   sms-part:<smscId>     JSON PartRef: which message and part an SMSC message id belongs to
 *
 * Records change by compare-and-set, so that a receipt and the submitting loop (or two receipts)
 * never overwrite each other, and a message gets exactly one verdict.
 */

export type PartState = "pending" | "submitted" | "delivered" | "failed";

export interface PartRecord {
  state: PartState;
  smscMessageId?: string;
  /** Receipt state word and error, once a receipt came. */
  receipt?: string;
}

export type Verdict = { kind: "delivered" } | { kind: "failed"; permanent: boolean; reason: string };

export interface MtRecord {
  messageId: string;
  /** The broker's attempt this record belongs to: a message routed here again starts over. */
  attempt: number;
  parts: PartRecord[];
  /** Octets of short_message over all parts (for accounting). */
  bytes: number;
  verdict?: Verdict;
  expiresAtUnixMs: number;
}

interface PartRef {
  messageId: string;
  attempt: number;
  /** 1-based. */
  part: number;
}

const MSG = (messageId: string) => `sms-msg:${messageId}`;
const PART = (smscId: string) => `sms-part:${smscId}`;
const MAX_ROUNDS = 32;

export class MtLedger {
  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async get(messageId: string): Promise<MtRecord | null> {
    const raw = await this.store.get(MSG(messageId));
    return raw === null ? null : (JSON.parse(raw) as MtRecord);
  }

  /** The record for this attempt: the existing one, or a fresh one with every part pending. */
  async open(messageId: string, attempt: number, parts: number, bytes: number, expiresAtUnixMs: number): Promise<MtRecord> {
    const fresh: MtRecord = { messageId, attempt, parts: Array.from({ length: parts }, () => ({ state: "pending" })), bytes, expiresAtUnixMs };
    const result = await this.update(messageId, (current) => (current && current.attempt === attempt ? null : fresh));
    return result ?? fresh;
  }

  /** Records a part the SMSC accepted: the receipt lookup first, then the part's state. */
  async submitted(messageId: string, attempt: number, part: number, smscMessageId: string): Promise<MtRecord | null> {
    const record = await this.get(messageId);
    const ttl = this.ttl(record?.expiresAtUnixMs ?? this.clock());
    if (smscMessageId) await this.store.set(PART(smscMessageId), JSON.stringify({ messageId, attempt, part } satisfies PartRef), ttl);
    return this.update(messageId, (r) => {
      const p = r?.attempt === attempt ? r.parts[part - 1] : undefined;
      if (!r || !p || p.state !== "pending") return null;
      p.state = "submitted";
      if (smscMessageId) p.smscMessageId = smscMessageId;
      return r;
    });
  }

  /** Sets the verdict unless the message has one already; returns the record as it stands. */
  async decide(messageId: string, attempt: number, verdict: Verdict): Promise<MtRecord | null> {
    return this.update(messageId, (r) => (!r || r.attempt !== attempt || r.verdict ? null : { ...r, verdict }));
  }

  /** The message and part an SMSC message id belongs to, trying the id forms SMSCs mix up. */
  async lookup(smscMessageId: string): Promise<PartRef | null> {
    const forms = messageIdForms(smscMessageId);
    const values = await this.store.getMany(forms.map(PART));
    const found = values.find((v) => v !== null);
    return found ? (JSON.parse(found) as PartRef) : null;
  }

  /**
   * Applies a receipt to its part and, when it settles the message, sets the verdict: failed as
   * soon as one part failed, delivered once every part is delivered. Returns the record (with
   * its verdict, new or earlier), or null when the receipt belongs to no current attempt.
   */
  async applyReceipt(ref: PartRef, receipt: Receipt): Promise<MtRecord | null> {
    let stale = false;
    const record = await this.update(ref.messageId, (r) => {
      const p = r?.parts[ref.part - 1];
      if (!r || !p || r.attempt !== ref.attempt) {
        stale = true;
        return null;
      }
      if (p.state === "delivered" || p.state === "failed") return null;
      const v = receipt.verdict;
      if (v.kind === "waiting") {
        p.receipt = describe(receipt);
        return r;
      }
      p.state = v.kind === "delivered" ? "delivered" : "failed";
      p.receipt = describe(receipt);
      if (!r.verdict) {
        if (v.kind === "failed") {
          r.verdict = { kind: "failed", permanent: v.permanent, reason: `part ${ref.part} of ${r.parts.length}: ${describe(receipt)}` };
        } else if (r.parts.every((q) => q.state === "delivered")) {
          r.verdict = { kind: "delivered" };
        }
      }
      return r;
    });
    return stale ? null : record;
  }

  /**
   * Compare-and-set loop: `change` gets the current record (null when absent) and returns the
   * new one, or null to leave it as it is. Resolves with the record as stored afterwards.
   */
  private async update(messageId: string, change: (current: MtRecord | null) => MtRecord | null): Promise<MtRecord | null> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const raw = await this.store.get(MSG(messageId));
      const current = raw === null ? null : (JSON.parse(raw) as MtRecord);
      const next = change(raw === null ? null : (JSON.parse(raw) as MtRecord));
      if (next === null) return current;
      if (await this.store.compareAndSet(MSG(messageId), raw, JSON.stringify(next), this.ttl(next.expiresAtUnixMs))) return next;
    }
    throw new Error(`the SMS record of message ${messageId} is too contended`);
  }

  /** Receipts may come until the message expires at the SMSC; kept a retention period beyond. */
  private ttl(expiresAtUnixMs: number): number {
    return Math.max(expiresAtUnixMs - this.clock(), 0) + this.retentionMs;
  }
}

function describe(receipt: Receipt): string {
  return receipt.error && !/^0+$/.test(receipt.error) ? `${receipt.state} (err ${receipt.error})` : receipt.state;
}
