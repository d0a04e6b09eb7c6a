import * as smpp from "smpp";
import { encodeGsm7, encodeUcs2 } from "../../common/content/gsm7";
import { alphabetOf, concatenationOf, decodeUserData } from "../../gateways/sms/mo";
import { shortMessageBytes } from "../../gateways/sms/smpp-session";

/**
 * A small SMSC on the `smpp` package's server, on loopback, for a mesh on one machine (`uims up`)
 * and for tests: it takes transceiver binds (checking system_id and password), answers submit_sm
 * with generated message ids and records them, can refuse the next submits with a given status,
 * sends delivery receipts for recorded submits (on request, or for every submit after a short
 * delay with `autoReceiptMs`) and mobile-originated messages (GSM 7-bit or UCS-2, single or
 * concatenated), tells `onSms` about every whole message it received, and can be stopped and
 * started again on the same port (SMSC down, then up).
 */

export interface RecordedSubmit {
  smscMessageId: string;
  sourceAddr: string;
  sourceTon: number;
  sourceNpi: number;
  destinationAddr: string;
  destTon: number;
  destNpi: number;
  esmClass: number;
  dataCoding: number;
  registeredDelivery: number;
  /** short_message as on the wire, user data header included. */
  shortMessage: Buffer;
}

/** A whole mobile-terminated message as the SMSC received it: its parts joined and decoded. */
export interface ReceivedSms {
  /** Source address as submitted, "+" added for an international number (TON 1). */
  from: string;
  /** Destination, "+" added for an international number. */
  to: string;
  /** "GSM 7-bit", "UCS-2", "ASCII", "Latin-1" or "data_coding 0x.." */
  encoding: string;
  segments: number;
  /** The text; undefined for user data that is not text. */
  text: string | undefined;
  /** The SMSC's message id of each part, in order. */
  smscMessageIds: string[];
}

export interface ReceiptOptions {
  /** Receipt text err field (3 digits). Default "000". */
  err?: string;
  /** Carry receipted_message_id and message_state TLVs. Default true. */
  tlvs?: boolean;
  /** Carry the receipt text. Default true. */
  text?: boolean;
  /** Write the id into the receipt text in decimal (some SMSCs do, after answering in hex). */
  decimalIdInText?: boolean;
}

export interface LocalSmscOptions {
  systemId: string;
  password: string;
  /** Answer every accepted submit_sm that asks for a receipt with DELIVRD after this many ms. Unset: only sendReceipt() sends receipts. */
  autoReceiptMs?: number;
  /** Every whole message received (a concatenated one once its last part arrived). */
  onSms?: (sms: ReceivedSms) => void;
  /** Every automatic receipt: the deliver_sm_resp status, or the error when it could not be sent. */
  onReceipt?: (submit: RecordedSubmit, stat: string, outcome: { status: number } | { error: Error }) => void;
}

const MESSAGE_STATE: Record<string, number> = { ENROUTE: 1, DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8 };
const ENCODING_NAMES: Record<string, string> = { gsm7: "GSM 7-bit", ucs2: "UCS-2", ascii: "ASCII", latin1: "Latin-1" };
/** Parts of concatenated messages kept at most, so that parts that never complete do not pile up. */
const MAX_PENDING_PARTS = 1_000;

export class LocalSmsc {
  readonly submits: RecordedSubmit[] = [];
  binds = 0;
  refusedBinds = 0;
  /** submit_sm refused through failNext(). */
  refusedSubmits = 0;
  /** deliver_sm sent by this SMSC and the status each was answered with (undefined: no answer yet). */
  readonly delivered: Array<{ kind: "receipt" | "mo"; status?: number }> = [];
  private server: smpp.Server | null = null;
  private port = 0;
  private readonly bound = new Set<smpp.Session>();
  private readonly failures: number[] = [];
  private silent = false;
  private nextId = 0x2a000;
  private waiters: Array<() => void> = [];
  private readonly receiptTimers = new Set<NodeJS.Timeout>();
  /** Parts of concatenated messages by destination and reference, until the last one arrives. */
  private readonly partial = new Map<string, Map<number, RecordedSubmit>>();

  constructor(private readonly opts: LocalSmscOptions) {}

  get url(): string {
    return `smpp://127.0.0.1:${this.port}`;
  }

  get boundSessions(): number {
    return this.bound.size;
  }

  /** Listens on loopback (the same port as before after a stop); resolves with the port. */
  async start(): Promise<number> {
    const server = smpp.createServer((session) => this.onSession(session));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        server.off("error", reject);
        // Connections have their own handlers; nothing later on the listener ends the process.
        server.on("error", () => undefined);
        resolve();
      });
    });
    const address = server.address();
    this.port = typeof address === "object" && address ? address.port : this.port;
    return this.port;
  }

  /** Drops every connection and stops listening: the SMSC is down. Receipts not sent yet are dropped. */
  async stop(): Promise<void> {
    for (const t of this.receiptTimers) clearTimeout(t);
    this.receiptTimers.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const s of [...server.sessions]) s.destroy();
    this.bound.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next `count` submit_sm are refused with `status`. */
  failNext(count: number, status: number): void {
    for (let i = 0; i < count; i++) this.failures.push(status);
  }

  /** While silent, submit_sm and enquire_link get no answer. */
  setSilent(silent: boolean): void {
    this.silent = silent;
  }

  /** Resolves when the condition holds (checked on every event and every 20 ms). */
  async until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error("the SMSC did not see what was expected in time");
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  /** Sends a delivery receipt for a recorded submit; resolves with the deliver_sm_resp status. */
  sendReceipt(submit: RecordedSubmit, stat: string, opts: ReceiptOptions = {}): Promise<number> {
    const err = opts.err ?? "000";
    const date = receiptDate(new Date());
    const id = opts.decimalIdInText ? BigInt(`0x${submit.smscMessageId}`).toString(10) : submit.smscMessageId;
    const text = `id:${id} sub:001 dlvrd:${stat === "DELIVRD" ? "001" : "000"} submit date:${date} done date:${date} stat:${stat} err:${err} text:`;
    const withTlvs = opts.tlvs ?? true;
    return this.deliver("receipt", {
      source_addr_ton: submit.destTon,
      source_addr_npi: submit.destNpi,
      source_addr: submit.destinationAddr,
      dest_addr_ton: submit.sourceTon,
      dest_addr_npi: submit.sourceNpi,
      destination_addr: submit.sourceAddr,
      esm_class: 0x04,
      data_coding: 0,
      short_message: opts.text === false ? Buffer.alloc(0) : Buffer.from(text, "ascii"),
      ...(withTlvs
        ? {
            receipted_message_id: submit.smscMessageId,
            message_state: MESSAGE_STATE[stat] ?? 7,
            network_error_code: Buffer.from([3, 0, Number(err)]),
          }
        : {}),
    });
  }

  /**
   * Sends a mobile-originated message from `from` to `to`, GSM 7-bit (data_coding 0) or UCS-2
   * (data_coding 8), split into `parts` concatenated parts (8-bit reference) when parts > 1.
   * Resolves with the status of each part's deliver_sm_resp.
   */
  async sendMo(from: string, to: string, text: string, opts: { encoding: "gsm7" | "ucs2"; parts?: number; reference?: number }): Promise<number[]> {
    const bytes = opts.encoding === "gsm7" ? encodeGsm7(text) : encodeUcs2(text);
    if (!bytes) throw new Error("text not representable in GSM 7-bit");
    const parts = opts.parts ?? 1;
    const unit = opts.encoding === "ucs2" ? 2 : 1;
    const units = bytes.length / unit;
    const per = Math.ceil(units / parts);
    const chunks = Array.from({ length: parts }, (_, i) => bytes.subarray(i * per * unit, Math.min((i + 1) * per, units) * unit));
    return this.sendMoParts(from, to, opts.encoding === "gsm7" ? 0 : 8, chunks, { reference: opts.reference ?? 0x42 });
  }

  /** Sends given user data as concatenated parts (8-bit or 16-bit reference), in the given order. */
  async sendMoParts(from: string, to: string, dataCoding: number, chunks: Buffer[], opts: { reference: number; ref16?: boolean; order?: number[] }): Promise<number[]> {
    const total = chunks.length;
    const order = opts.order ?? chunks.map((_, i) => i);
    const statuses: number[] = [];
    for (const i of order) {
      const udh =
        total === 1
          ? Buffer.alloc(0)
          : opts.ref16
            ? Buffer.from([0x06, 0x08, 0x04, (opts.reference >> 8) & 0xff, opts.reference & 0xff, total, i + 1])
            : Buffer.from([0x05, 0x00, 0x03, opts.reference & 0xff, total, i + 1]);
      statuses.push(
        await this.deliver("mo", {
          source_addr_ton: 1,
          source_addr_npi: 1,
          source_addr: from.replace(/^\+/, ""),
          dest_addr_ton: 1,
          dest_addr_npi: 1,
          destination_addr: to.replace(/^\+/, ""),
          esm_class: total === 1 ? 0 : 0x40,
          data_coding: dataCoding,
          short_message: Buffer.concat([udh, chunks[i]!]),
        }),
      );
    }
    return statuses;
  }

  private deliver(kind: "receipt" | "mo", fields: Record<string, unknown>): Promise<number> {
    const session = [...this.bound].pop();
    if (!session) return Promise.reject(new Error("no ESME is bound to the SMSC"));
    const entry: { kind: "receipt" | "mo"; status?: number } = { kind };
    this.delivered.push(entry);
    return new Promise((resolve, reject) => {
      const sent = session.deliver_sm(fields, (resp) => {
        entry.status = resp.command_status;
        this.wake();
        resolve(resp.command_status);
      });
      if (!sent) reject(new Error("the ESME connection is not writable"));
    });
  }

  private onSession(session: smpp.Session): void {
    session.on("error", () => undefined);
    session.on("close", () => {
      this.bound.delete(session);
      this.wake();
    });
    session.on("bind_transceiver", (pdu: smpp.PDU) => {
      if (pdu.system_id !== this.opts.systemId || pdu.password !== this.opts.password) {
        this.refusedBinds++;
        session.send(pdu.response({ command_status: pdu.system_id !== this.opts.systemId ? 0x0f : 0x0e }));
        this.wake();
        return;
      }
      this.binds++;
      this.bound.add(session);
      session.send(pdu.response({ system_id: "uims-smsc" }));
      this.wake();
    });
    session.on("enquire_link", (pdu: smpp.PDU) => {
      if (!this.silent) session.send(pdu.response());
    });
    session.on("unbind", (pdu: smpp.PDU) => {
      this.bound.delete(session);
      session.send(pdu.response());
      session.close();
    });
    session.on("submit_sm", (pdu: smpp.PDU) => {
      if (this.silent) return;
      if (!this.bound.has(session)) {
        session.send(pdu.response({ command_status: 0x04 }));
        return;
      }
      const failure = this.failures.shift();
      if (failure !== undefined) {
        this.refusedSubmits++;
        session.send(pdu.response({ command_status: failure }));
        this.wake();
        return;
      }
      const smscMessageId = (this.nextId++).toString(16);
      const { udh, data } = shortMessageBytes(pdu);
      const submit: RecordedSubmit = {
        smscMessageId,
        sourceAddr: pdu.source_addr ?? "",
        sourceTon: pdu.source_addr_ton ?? 0,
        sourceNpi: pdu.source_addr_npi ?? 0,
        destinationAddr: pdu.destination_addr ?? "",
        destTon: pdu.dest_addr_ton ?? 0,
        destNpi: pdu.dest_addr_npi ?? 0,
        esmClass: pdu.esm_class ?? 0,
        dataCoding: pdu.data_coding ?? 0,
        registeredDelivery: pdu.registered_delivery ?? 0,
        shortMessage: udh ? Buffer.concat([udh, data]) : data,
      };
      this.submits.push(submit);
      session.send(pdu.response({ message_id: smscMessageId }));
      this.wake();
      try {
        this.collect(submit);
      } catch {
        // Reporting is for people watching; the SMSC itself has done its part.
      }
      if (this.opts.autoReceiptMs !== undefined && (submit.registeredDelivery & 0x03) === 1) this.scheduleReceipt(submit, this.opts.autoReceiptMs);
    });
  }

  private scheduleReceipt(submit: RecordedSubmit, delayMs: number): void {
    const timer = setTimeout(() => {
      this.receiptTimers.delete(timer);
      this.sendReceipt(submit, "DELIVRD")
        .then(
          (status) => this.opts.onReceipt?.(submit, "DELIVRD", { status }),
          (error: Error) => this.opts.onReceipt?.(submit, "DELIVRD", { error }),
        )
        .catch(() => undefined);
    }, delayMs);
    this.receiptTimers.add(timer);
  }

  /** Joins the parts of a concatenated message and reports whole messages to onSms. */
  private collect(submit: RecordedSubmit): void {
    const onSms = this.opts.onSms;
    if (!onSms) return;
    const concat = concatenationOf(userData(submit).udh);
    if (!concat || concat.total === 1) {
      onSms(receivedSms([submit]));
      return;
    }
    const key = `${submit.destinationAddr}|${concat.reference}|${concat.total}`;
    const parts = this.partial.get(key) ?? new Map<number, RecordedSubmit>();
    parts.set(concat.seq, submit);
    this.partial.set(key, parts);
    if (parts.size < concat.total) {
      if (this.partial.size > MAX_PENDING_PARTS) this.partial.delete(this.partial.keys().next().value!);
      return;
    }
    this.partial.delete(key);
    onSms(receivedSms([...parts.entries()].sort(([a], [b]) => a - b).map(([, s]) => s)));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** The user data header (when esm_class says there is one) and the user data of a submit. */
function userData(submit: RecordedSubmit): { udh: Buffer | null; data: Buffer } {
  const bytes = submit.shortMessage;
  if ((submit.esmClass & 0x40) === 0 || bytes.length === 0) return { udh: null, data: bytes };
  const end = Math.min(bytes[0]! + 1, bytes.length);
  return { udh: bytes.subarray(0, end), data: bytes.subarray(end) };
}

function withPlus(addr: string, ton: number): string {
  return ton === 1 && !addr.startsWith("+") ? `+${addr}` : addr;
}

function receivedSms(parts: RecordedSubmit[]): ReceivedSms {
  const first = parts[0]!;
  const alphabet = alphabetOf(first.dataCoding);
  // Decoded once from the joined bytes: an escape or surrogate pair is never split, but this way
  // nothing depends on it.
  const bytes = Buffer.concat(parts.map((p) => userData(p).data));
  return {
    from: withPlus(first.sourceAddr, first.sourceTon),
    to: withPlus(first.destinationAddr, first.destTon),
    encoding: alphabet ? ENCODING_NAMES[alphabet]! : `data_coding 0x${first.dataCoding.toString(16).padStart(2, "0")}`,
    segments: parts.length,
    text: decodeUserData(first.dataCoding, bytes),
    smscMessageIds: parts.map((p) => p.smscMessageId),
  };
}

function receiptDate(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getUTCFullYear() % 100)}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}`;
}
