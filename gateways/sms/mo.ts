import { createHash } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { Priority } from "../../gen/uims/common/v1/types";
import { CLIENT_ID_PATTERN } from "../../common/addresses";
import { decodeGsm7, decodeUcs2 } from "../../common/content/gsm7";
import { errorCode } from "../../common/mesh/peer";
import type { Store } from "../../common/store";
import { backoffMs } from "../core/backoff";
import type { AcceptInput } from "../core/types";
import { WorkQueue } from "../core/work-queue";
import { phoneDigits } from "./config";
import type { IncomingDeliverSm } from "./smpp-session";
import { Status } from "./smpp-status";

/**
 * Mobile-originated SMS: a deliver_sm that is not a receipt. The text is decoded at this edge
 * (GSM 03.38 or UCS-2, from the bytes), concatenated parts are collected in the store until the
 * message is whole, and the message enters the mesh as text/plain from an outside sender
 * "sms:+<number>" to the profile its number (or an "@profile " prefix) names.
 *
 * The deliver_sm_resp says whether the mesh has the message: ESME_ROK only once the gateway core
 * stored it (accept() returned), ESME_RX_T_APPN (temporary: the SMSC delivers it again) when the
 * mesh could not take it now, ESME_RX_P_APPN (permanent) when it can never be delivered (no
 * such recipient, an encoding that is not text). A part of a longer message is answered ESME_ROK
 * once it is in the store; the last part gets the answer for the whole message.
 */

export const TEXT_PLAIN = "text/plain; charset=utf-8";

/** Which alphabet a data_coding carries, by SMPP 3.4 §5.2.19 and the GSM 03.38 coding groups. */
export function alphabetOf(dataCoding: number): "gsm7" | "ascii" | "latin1" | "ucs2" | undefined {
  switch (dataCoding) {
    case 0x00:
      return "gsm7";
    case 0x01:
      return "ascii";
    case 0x03:
      return "latin1";
    case 0x08:
      return "ucs2";
  }
  // General data coding with a message class (uncompressed): bits 3-2 name the alphabet.
  if ((dataCoding & 0xf0) === 0x10) return [("gsm7" as const), undefined, ("ucs2" as const), undefined][(dataCoding >> 2) & 0x03];
  // Data coding / message class group: bit 2 clear is the default alphabet, set is 8-bit data.
  if ((dataCoding & 0xf0) === 0xf0) return dataCoding & 0x04 ? undefined : "gsm7";
  return undefined;
}

/** The text of user data in a data_coding, or undefined when it is not text the gateway reads. */
export function decodeUserData(dataCoding: number, bytes: Buffer): string | undefined {
  switch (alphabetOf(dataCoding)) {
    case "gsm7":
      return decodeGsm7(bytes);
    case "ascii":
      return bytes.toString("ascii");
    case "latin1":
      return bytes.toString("latin1");
    case "ucs2":
      return decodeUcs2(bytes);
    default:
      return undefined;
  }
}

export interface Concatenation {
  reference: number;
  total: number;
  /** 1-based. */
  seq: number;
}

/**
 * The concatenation information element of a user data header: 0x00 (8-bit reference) or 0x08
 * (16-bit reference). Undefined when there is none or it is malformed (then the part is read
 * as a message of its own).
 */
export function concatenationOf(udh: Buffer | null): Concatenation | undefined {
  if (!udh || udh.length < 2) return undefined;
  const end = Math.min(udh[0]! + 1, udh.length);
  for (let i = 1; i + 1 < end; ) {
    const id = udh[i]!;
    const len = udh[i + 1]!;
    const ie = udh.subarray(i + 2, i + 2 + len);
    if (ie.length < len) return undefined;
    let c: Concatenation | undefined;
    if (id === 0x00 && len === 3) c = { reference: ie[0]!, total: ie[1]!, seq: ie[2]! };
    if (id === 0x08 && len === 4) c = { reference: ie.readUInt16BE(0), total: ie[2]!, seq: ie[3]! };
    if (c) return c.total >= 1 && c.seq >= 1 && c.seq <= c.total ? c : undefined;
    i += 2 + len;
  }
  return undefined;
}

const EXPLICIT = /^@([A-Za-z0-9][A-Za-z0-9._-]{0,63})\s+([\s\S]*)$/;

/**
 * Who a mobile-originated message is for: a text starting with "@<profile> " names the profile
 * (the rest is the message); otherwise the number it was sent to, through SMS_INBOUND_NUMBERS.
 */
export function resolveRecipient(text: string, destinationAddr: string, numbers: ReadonlyMap<string, string>): { recipient: string; text: string } | undefined {
  const explicit = EXPLICIT.exec(text);
  if (explicit) {
    const profile = explicit[1]!.toLowerCase();
    if (CLIENT_ID_PATTERN.test(profile)) return { recipient: profile, text: explicit[2] ?? "" };
  }
  const profile = numbers.get(phoneDigits(destinationAddr));
  return profile ? { recipient: profile, text } : undefined;
}

/** The sender's address in the mesh: numbers in international form ("sms:+<digits>"), a name as it is. */
export function senderAddressOf(sourceAddr: string): string {
  const value = sourceAddr.trim();
  return /^\+?[0-9]+$/.test(value) ? `sms:+${phoneDigits(value)}` : `sms:${value}`;
}

interface StoredPart {
  /** base64 of the user data (no header); dropped once the message is handed over. */
  data?: string;
  dataCoding: number;
  /** Recognises the same part delivered again. */
  digest: string;
}

interface MoGroup {
  source: string;
  destination: string;
  total: number;
  parts: Record<string, StoredPart>;
  firstAtUnixMs: number;
  /** Handed over (or refused for good): a later copy of a part is a duplicate. */
  doneAtUnixMs?: number;
  /** One handler at a time hands the whole message over. */
  claimUntilUnixMs?: number;
}

export interface MoReceiverOptions {
  nodeId: string;
  store: Store;
  logger: Logger;
  accept: (input: AcceptInput) => Promise<{ message: { messageId: string } }>;
  inboundNumbers: ReadonlyMap<string, string>;
  reassemblyTimeoutMs: number;
  clock?: () => number;
}

const CLAIM_MS = 30_000;
const PERMANENT_REFUSALS = new Set<number>([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED]);

export class MoReceiver {
  /** Concatenated messages whose parts stopped coming: handed over incomplete when due. */
  readonly overdue: WorkQueue;
  private readonly clock: () => number;
  private readonly log: Logger;

  constructor(private readonly o: MoReceiverOptions) {
    this.clock = o.clock ?? Date.now;
    this.log = o.logger.child({ direction: "mo" });
    this.overdue = new WorkQueue(o.store, `sms-mo-due:${o.nodeId}`, (key) => this.flushIncomplete(key), o.logger, this.clock);
  }

  /** Handles one mobile-originated deliver_sm; resolves with the deliver_sm_resp status. */
  async receive(pdu: IncomingDeliverSm): Promise<number> {
    const concat = pdu.sar ?? concatenationOf(pdu.udh);
    if (alphabetOf(pdu.dataCoding) === undefined) {
      this.log.warn({ from: pdu.sourceAddr, dataCoding: pdu.dataCoding }, "incoming SMS is not text (binary data coding); refused");
      return Status.ESME_RX_P_APPN;
    }
    if (!concat || concat.total === 1) {
      return this.handOver(pdu.sourceAddr, pdu.destinationAddr, decodeUserData(pdu.dataCoding, pdu.data) ?? "", "");
    }
    return this.collect(pdu, concat);
  }

  private groupKey(source: string, destination: string, c: Concatenation): string {
    return `sms-mo:${phoneDigits(source)}:${phoneDigits(destination)}:${c.reference}:${c.total}`;
  }

  private ttl(): number {
    return Math.max(2 * this.o.reassemblyTimeoutMs, 3_600_000);
  }

  private async collect(pdu: IncomingDeliverSm, c: Concatenation): Promise<number> {
    const key = this.groupKey(pdu.sourceAddr, pdu.destinationAddr, c);
    const digest = createHash("sha256").update(pdu.data).digest("base64").slice(0, 22);
    const seq = String(c.seq);
    for (let round = 0; round < 32; round++) {
      const now = this.clock();
      const raw = await this.o.store.get(key);
      let group = raw === null ? null : (JSON.parse(raw) as MoGroup);
      if (group?.doneAtUnixMs !== undefined) {
        // The same part again (the SMSC missed our answer): already handed over.
        if (group.parts[seq]?.digest === digest) return Status.ESME_ROK;
        // A new message that happens to reuse the reference.
        group = null;
      }
      const fresh = group === null;
      const next: MoGroup = group ?? { source: pdu.sourceAddr, destination: pdu.destinationAddr, total: c.total, parts: {}, firstAtUnixMs: now };
      next.parts[seq] = { data: pdu.data.toString("base64"), dataCoding: pdu.dataCoding, digest };
      const complete = Object.keys(next.parts).length === c.total;
      if (complete) {
        if ((next.claimUntilUnixMs ?? 0) > now) return Status.ESME_RX_T_APPN; // being handed over right now
        next.claimUntilUnixMs = now + CLAIM_MS;
      }
      if (!(await this.o.store.compareAndSet(key, raw, JSON.stringify(next), this.ttl()))) continue;
      if (!complete) {
        if (fresh) await this.overdue.schedule(key, now + this.o.reassemblyTimeoutMs);
        return Status.ESME_ROK;
      }
      return this.finish(key, next, joinParts(next));
    }
    return Status.ESME_RX_T_APPN;
  }

  /** Hands a whole (or given-up) concatenated message over and records the outcome. */
  private async finish(key: string, group: MoGroup, text: string): Promise<number> {
    const idempotencyKey = createHash("sha256")
      .update(key)
      .update(Object.values(group.parts).map((p) => p.digest).join(","))
      .digest("hex")
      .slice(0, 32);
    const status = await this.handOver(group.source, group.destination, text, `sms-mo-${idempotencyKey}`);
    const done = status !== Status.ESME_RX_T_APPN;
    for (let round = 0; round < 32; round++) {
      const raw = await this.o.store.get(key);
      if (raw === null) break;
      const current = JSON.parse(raw) as MoGroup;
      delete current.claimUntilUnixMs;
      if (done) {
        current.doneAtUnixMs = this.clock();
        for (const p of Object.values(current.parts)) delete p.data;
      }
      if (await this.o.store.compareAndSet(key, raw, JSON.stringify(current), this.ttl())) break;
    }
    if (done) await this.overdue.remove(key);
    return status;
  }

  /** Due when a concatenated message stayed incomplete: what arrived is handed over, gaps marked. */
  private async flushIncomplete(key: string): Promise<void> {
    const raw = await this.o.store.get(key);
    const group = raw === null ? null : (JSON.parse(raw) as MoGroup);
    if (!group || group.doneAtUnixMs !== undefined) {
      await this.overdue.remove(key);
      return;
    }
    const now = this.clock();
    if ((group.claimUntilUnixMs ?? 0) > now) return; // a handler is on it; due again after the lease
    const claimed: MoGroup = { ...group, claimUntilUnixMs: now + CLAIM_MS };
    if (!(await this.o.store.compareAndSet(key, raw, JSON.stringify(claimed), this.ttl()))) return;
    const missing = group.total - Object.keys(group.parts).length;
    this.log.warn({ from: group.source, parts: group.total, missing }, "concatenated SMS incomplete after the reassembly timeout; handing over what arrived");
    const status = await this.finish(key, claimed, joinParts(claimed));
    if (status === Status.ESME_RX_T_APPN) await this.overdue.schedule(key, this.clock() + backoffMs(3, 1_000, 60_000));
  }

  private async handOver(source: string, destination: string, text: string, idempotencyKey: string): Promise<number> {
    const target = resolveRecipient(text, destination, this.o.inboundNumbers);
    if (!target) {
      this.log.warn({ from: source, to: destination }, "incoming SMS for a number no profile has; refused");
      return Status.ESME_RX_P_APPN;
    }
    try {
      const { message } = await this.o.accept({
        sender: "",
        senderAddress: senderAddressOf(source),
        recipient: target.recipient,
        payload: { contentType: TEXT_PLAIN, body: Buffer.from(target.text, "utf8"), subject: "", attachments: [] },
        idempotencyKey,
        priority: Priority.PRIORITY_NORMAL,
        ttlMs: 0,
      });
      this.log.info({ messageId: message.messageId, from: senderAddressOf(source), recipient: target.recipient }, "incoming SMS accepted");
      return Status.ESME_ROK;
    } catch (err) {
      const code = errorCode(err);
      const permanent = code !== undefined && PERMANENT_REFUSALS.has(code);
      this.log.warn({ from: source, recipient: target.recipient, reason: (err as Error).message, permanent }, "incoming SMS not accepted");
      return permanent ? Status.ESME_RX_P_APPN : Status.ESME_RX_T_APPN;
    }
  }
}

/**
 * The text of a concatenated message: the parts' bytes joined in order and decoded once (a
 * character may straddle two parts), runs separated by a marker where parts are missing.
 */
function joinParts(group: MoGroup): string {
  let out = "";
  let run: Buffer[] = [];
  let coding = -1;
  const flush = () => {
    if (run.length > 0) out += decodeUserData(coding, Buffer.concat(run)) ?? "";
    run = [];
  };
  for (let seq = 1; seq <= group.total; seq++) {
    const part = group.parts[String(seq)];
    if (!part?.data) {
      flush();
      out += `[part ${seq} of ${group.total} missing]`;
      continue;
    }
    if (part.dataCoding !== coding) flush();
    coding = part.dataCoding;
    run.push(Buffer.from(part.data, "base64"));
  }
  flush();
  return out;
}
