import * as smpp from "smpp";
import type { Logger } from "pino";
import { backoffMs } from "../core/backoff";
import type { SmppAddress } from "./config";
import { isTemporarySubmitError, Status, statusName } from "./smpp-status";
import { TokenBucket, Window } from "./throttle";

/**
 * One SMPP 3.4 transceiver bind to the SMSC, kept up for the life of the gateway: connect, bind,
 * enquire_link keepalive, and after a drop or a refused bind a new connection with capped
 * exponential backoff and jitter. Submits go through a window (outstanding submit_sm) and a
 * token bucket (submits per second); incoming deliver_sm (receipts and mobile-originated
 * messages) go to a handler whose answer becomes the deliver_sm_resp status.
 */

/** esm_class bits 2-5: the message type of a deliver_sm (SMPP 3.4 §5.2.12). */
const ESM_TYPE_MASK = 0x3c;
const ESM_TYPE_RECEIPT = 0x04;
const ESM_TYPE_INTERMEDIATE = 0x20;
/** esm_class bit 6: short_message starts with a user data header. */
export const ESM_UDHI = 0x40;
const INTERFACE_VERSION_34 = 0x34;
/** How long submits pause after the SMSC answered ESME_RTHROTTLED. */
const THROTTLED_PAUSE_MS = 1_000;

export interface SubmitRequest {
  source: SmppAddress;
  destination: SmppAddress;
  esmClass: number;
  dataCoding: number;
  /** The whole short_message, user data header included. */
  shortMessage: Buffer;
  registeredDelivery: number;
  /** The SMSC gives up on the message then (absolute validity period). */
  validUntil?: Date;
  priorityFlag?: number;
}

export type SubmitResult =
  | { ok: true; smscMessageId: string }
  /** `status` is the SMSC's command_status; absent when the SMSC gave no answer. */
  | { ok: false; temporary: boolean; status?: number; reason: string };

/** A deliver_sm as raw bytes, whatever the `smpp` package decoded it into. */
export interface IncomingDeliverSm {
  kind: "mo" | "receipt" | "other";
  sourceAddr: string;
  sourceTon: number;
  destinationAddr: string;
  esmClass: number;
  dataCoding: number;
  /** The user data header (length octet included), or null. */
  udh: Buffer | null;
  /** The user data after the header: septets, UCS-2 octets, receipt text, ... */
  data: Buffer;
  receiptedMessageId?: string;
  messageState?: number;
  networkErrorCode?: Buffer;
  /** Concatenation by SAR TLVs instead of a UDH. */
  sar?: { reference: number; total: number; seq: number };
}

export interface SmppSessionOptions {
  /** smpp://host:port or ssmpp://host:port */
  url: string;
  systemId: string;
  password: string;
  systemType: string;
  window: number;
  submitsPerSecond: number;
  enquireLinkMs: number;
  responseTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  logger: Logger;
  /** Handles an incoming deliver_sm; resolves with the command_status of the deliver_sm_resp. */
  onDeliverSm: (pdu: IncomingDeliverSm) => Promise<number>;
}

type LinkState = "idle" | "connecting" | "binding" | "bound";

const NOT_BOUND = "SMSC not bound";

export class SmppSession {
  private link: smpp.Session | null = null;
  private state: LinkState = "idle";
  private closed = true;
  private failures = 0;
  private problem = "not connected yet";
  private reconnectTimer: NodeJS.Timeout | null = null;
  private bindTimer: NodeJS.Timeout | null = null;
  private enquireTimer: NodeJS.Timeout | null = null;
  private enquireDeadline: NodeJS.Timeout | null = null;
  /** submit_sm awaiting their response on the current link, by sequence number. */
  private readonly pending = new Map<number, { resolve: (r: SubmitResult) => void; timer: NodeJS.Timeout }>();
  private readonly incoming = new Set<Promise<void>>();
  private boundWaiters: Array<() => void> = [];
  private readonly window: Window;
  private readonly bucket: TokenBucket;
  private readonly log: Logger;
  private readonly tls: boolean;

  constructor(private readonly o: SmppSessionOptions) {
    this.window = new Window(o.window);
    this.bucket = new TokenBucket(o.submitsPerSecond);
    this.tls = o.url.startsWith("ssmpp:");
    const url = new URL(o.url);
    this.log = o.logger.child({ smsc: `${url.hostname}:${url.port || (this.tls ? 3550 : 2775)}` });
  }

  get bound(): boolean {
    return this.state === "bound";
  }

  health(): { healthy: boolean; detail: string } {
    return this.bound ? { healthy: true, detail: "bound to the SMSC" } : { healthy: false, detail: `${NOT_BOUND}: ${this.problem}` };
  }

  /** Connects and binds in the background; `health()` turns healthy once bound. */
  start(): void {
    if (!this.closed) return;
    this.closed = false;
    this.connect();
  }

  /** Resolves when bound (or after `timeoutMs`, with false). */
  async waitUntilBound(timeoutMs: number): Promise<boolean> {
    if (this.bound) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.boundWaiters = this.boundWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.boundWaiters.push(done);
    });
  }

  /** Unbinds politely (waiting for the SMSC's answer briefly), then closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    // Incoming messages being handled get their answer before the link goes.
    await Promise.allSettled([...this.incoming]);
    const link = this.link;
    if (!link) return;
    if (this.state === "bound") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(this.o.responseTimeoutMs, 2_000));
        if (!link.unbind({}, () => (clearTimeout(timer), resolve()))) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => (link.destroy(), resolve()), 1_000);
      link.close(() => (clearTimeout(timer), resolve()));
    });
    this.dropped(link, "closed by the gateway");
  }

  /**
   * Submits one short message. Resolves (never rejects) with the SMSC's message id or with why
   * it was not taken: refused by the SMSC (its status), or not answered (not bound, link lost,
   * no response in time), which is temporary.
   */
  async submit(req: SubmitRequest): Promise<SubmitResult> {
    if (!this.bound) return notBound(this.problem);
    let release: () => void;
    try {
      release = await this.window.acquire();
    } catch {
      return notBound(this.problem);
    }
    try {
      await this.bucket.take();
      const link = this.link;
      if (!link || !this.bound) return notBound(this.problem);
      return await this.sendSubmit(link, req);
    } finally {
      release();
    }
  }

  private sendSubmit(link: smpp.Session, req: SubmitRequest): Promise<SubmitResult> {
    return new Promise((resolve) => {
      const pdu = new smpp.PDU("submit_sm", {
        service_type: "",
        source_addr_ton: req.source.ton,
        source_addr_npi: req.source.npi,
        source_addr: req.source.addr,
        dest_addr_ton: req.destination.ton,
        dest_addr_npi: req.destination.npi,
        destination_addr: req.destination.addr,
        esm_class: req.esmClass,
        protocol_id: 0,
        priority_flag: req.priorityFlag ?? 0,
        registered_delivery: req.registeredDelivery,
        data_coding: req.dataCoding,
        short_message: req.shortMessage,
        ...(req.validUntil ? { validity_period: req.validUntil } : {}),
      });
      const timer = setTimeout(() => {
        this.pending.delete(pdu.sequence_number);
        // An SMSC that does not answer in time is not to be trusted with more: start over.
        this.problem = `no submit_sm_resp within ${this.o.responseTimeoutMs} ms`;
        this.log.warn({ sequence: pdu.sequence_number }, "submit_sm unanswered; reconnecting");
        resolve({ ok: false, temporary: true, reason: this.problem });
        link.destroy();
      }, this.o.responseTimeoutMs);
      timer.unref();
      const sent = link.send(pdu, (resp) => {
        clearTimeout(timer);
        this.pending.delete(pdu.sequence_number);
        resolve(this.submitResult(link, resp));
      });
      if (!sent) {
        clearTimeout(timer);
        resolve(notBound("the connection is not writable"));
        return;
      }
      this.pending.set(pdu.sequence_number, { resolve, timer });
    });
  }

  private submitResult(link: smpp.Session, resp: smpp.PDU): SubmitResult {
    if (resp.command_status === Status.ESME_ROK && resp.command === "submit_sm_resp") {
      return { ok: true, smscMessageId: resp.message_id ?? "" };
    }
    const status = resp.command_status || Status.ESME_RUNKNOWNERR;
    if (status === Status.ESME_RTHROTTLED) this.bucket.pause(THROTTLED_PAUSE_MS);
    if (status === Status.ESME_RINVBNDSTS) {
      this.problem = "the SMSC no longer sees the bind";
      link.destroy();
    }
    const temporary = isTemporarySubmitError(status);
    return { ok: false, temporary, status, reason: `the SMSC refused submit_sm with ${statusName(status)}` };
  }

  private connect(): void {
    if (this.closed) return;
    this.state = "connecting";
    const link = smpp.connect({ url: this.o.url });
    this.link = link;
    // One deadline covers connecting and binding.
    this.bindTimer = setTimeout(() => {
      this.problem = `not bound within ${this.o.responseTimeoutMs} ms`;
      link.destroy();
    }, this.o.responseTimeoutMs);
    this.bindTimer.unref();
    link.on(this.tls ? "secureConnect" : "connect", () => this.bind(link));
    link.on("error", (err: Error) => {
      if (link === this.link) this.problem = err.message;
    });
    link.on("close", () => this.dropped(link, this.problem));
    link.on("pdu", (pdu: smpp.PDU) => this.onPdu(link, pdu));
  }

  private bind(link: smpp.Session): void {
    if (link !== this.link) return;
    this.state = "binding";
    const sent = link.bind_transceiver(
      { system_id: this.o.systemId, password: this.o.password, system_type: this.o.systemType, interface_version: INTERFACE_VERSION_34 },
      (resp) => {
        if (link !== this.link) return;
        if (resp.command_status !== Status.ESME_ROK) {
          this.problem = `bind refused with ${statusName(resp.command_status)}`;
          this.log.warn({ status: statusName(resp.command_status) }, "the SMSC refused the bind");
          link.destroy();
          return;
        }
        if (this.bindTimer) clearTimeout(this.bindTimer);
        this.bindTimer = null;
        this.state = "bound";
        this.failures = 0;
        this.problem = "";
        this.log.info("bound to the SMSC as transceiver");
        this.scheduleEnquire(link);
        for (const w of this.boundWaiters.splice(0)) w();
      },
    );
    if (!sent) link.destroy();
  }

  private dropped(link: smpp.Session, reason: string): void {
    if (link !== this.link) return;
    const wasBound = this.state === "bound";
    this.link = null;
    this.state = "idle";
    for (const t of [this.bindTimer, this.enquireTimer, this.enquireDeadline]) if (t) clearTimeout(t);
    this.bindTimer = this.enquireTimer = this.enquireDeadline = null;
    if (!this.problem) this.problem = reason || "connection closed";
    // The SMSC may or may not have taken these: they count as not taken (temporary), and a retry
    // may send a part twice. SMPP has no idempotent submit, so this is the one duplicate window.
    for (const [seq, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ ok: false, temporary: true, reason: `the SMSC connection was lost before submit_sm_resp (${this.problem})` });
      this.pending.delete(seq);
    }
    this.window.failWaiting(new Error(NOT_BOUND));
    link.removeAllListeners("pdu");
    link.on("error", () => undefined);
    if (this.closed) {
      this.log.info("SMSC link closed");
      return;
    }
    if (wasBound) this.log.warn({ reason: this.problem }, "SMSC link lost");
    const delay = backoffMs(this.failures++, this.o.reconnectMinMs, this.o.reconnectMaxMs);
    this.log.info({ reason: this.problem, retryInMs: delay, attempt: this.failures }, "SMSC not bound; reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  private scheduleEnquire(link: smpp.Session): void {
    this.enquireTimer = setTimeout(() => this.enquire(link), this.o.enquireLinkMs);
    this.enquireTimer.unref();
  }

  private enquire(link: smpp.Session): void {
    if (link !== this.link || !this.bound) return;
    this.enquireDeadline = setTimeout(() => {
      this.problem = `enquire_link unanswered within ${this.o.responseTimeoutMs} ms`;
      this.log.warn("enquire_link unanswered; reconnecting");
      link.destroy();
    }, this.o.responseTimeoutMs);
    this.enquireDeadline.unref();
    const sent = link.enquire_link({}, () => {
      if (this.enquireDeadline) clearTimeout(this.enquireDeadline);
      this.enquireDeadline = null;
      if (link === this.link) this.scheduleEnquire(link);
    });
    if (!sent) link.destroy();
  }

  private onPdu(link: smpp.Session, pdu: smpp.PDU): void {
    if (pdu.isResponse()) return; // answered through the callback of its request
    switch (pdu.command) {
      case "enquire_link":
        link.send(pdu.response());
        return;
      case "deliver_sm": {
        const handled = this.answerDeliverSm(link, pdu);
        this.incoming.add(handled);
        void handled.finally(() => this.incoming.delete(handled));
        return;
      }
      case "unbind":
        this.problem = "the SMSC unbound";
        this.log.info("the SMSC asked to unbind");
        link.send(pdu.response());
        link.close();
        return;
      case "alert_notification":
        return; // has no response
      default:
        // Not something a transceiver ESME takes (data_sm, an unknown command): say so.
        link.send(pdu.response({ command_status: Status.ESME_RINVCMDID }));
    }
  }

  private async answerDeliverSm(link: smpp.Session, pdu: smpp.PDU): Promise<void> {
    let status: number = Status.ESME_RX_T_APPN;
    try {
      status = await this.o.onDeliverSm(incomingOf(pdu));
    } catch (err) {
      this.log.error({ err }, "deliver_sm handling failed; the SMSC will deliver it again");
    }
    // When the link is gone the SMSC never sees this answer and delivers the message again.
    if (!link.send(pdu.response({ command_status: status }))) {
      this.log.info({ status: statusName(status) }, "deliver_sm_resp not sent: the link is gone");
    }
  }
}

function notBound(problem: string): SubmitResult {
  return { ok: false, temporary: true, reason: problem ? `${NOT_BOUND}: ${problem}` : NOT_BOUND };
}

function incomingOf(pdu: smpp.PDU): IncomingDeliverSm {
  const esmClass = pdu.esm_class ?? 0;
  const type = esmClass & ESM_TYPE_MASK;
  const { udh, data } = shortMessageBytes(pdu);
  const incoming: IncomingDeliverSm = {
    kind: type === 0 ? "mo" : type === ESM_TYPE_RECEIPT || type === ESM_TYPE_INTERMEDIATE ? "receipt" : "other",
    sourceAddr: pdu.source_addr ?? "",
    sourceTon: pdu.source_addr_ton ?? 0,
    destinationAddr: pdu.destination_addr ?? "",
    esmClass,
    dataCoding: pdu.data_coding ?? 0,
    udh,
    data,
  };
  if (pdu.receipted_message_id !== undefined) incoming.receiptedMessageId = pdu.receipted_message_id;
  if (pdu.message_state !== undefined) incoming.messageState = pdu.message_state;
  if (pdu.network_error_code !== undefined) incoming.networkErrorCode = pdu.network_error_code;
  if (pdu.sar_msg_ref_num !== undefined && pdu.sar_total_segments !== undefined && pdu.sar_segment_seqnum !== undefined) {
    incoming.sar = { reference: pdu.sar_msg_ref_num, total: pdu.sar_total_segments, seq: pdu.sar_segment_seqnum };
  }
  return incoming;
}

/**
 * The bytes of short_message (or of message_payload when short_message is empty) as they were on
 * the wire. The `smpp` package decodes both on arrival: the user data header split into its
 * elements, the text decoded by data_coding. Concatenated parts must be joined as bytes (a UCS-2
 * surrogate pair may straddle two parts) and decoded once, by our own codecs, so this undoes the
 * package's decoding with the package's own encoder for the same codec, which is its exact
 * inverse for well-formed input (tested against the package in smpp-session.test.ts).
 */
export function shortMessageBytes(pdu: smpp.PDU): { udh: Buffer | null; data: Buffer } {
  const udhi = ((pdu.esm_class ?? 0) & ESM_UDHI) !== 0;
  const short = rawMessage(pdu.short_message, pdu.data_coding ?? 0, udhi);
  if (short.data.length > 0 || short.udh || pdu.message_payload === undefined) return short;
  return rawMessage(pdu.message_payload, pdu.data_coding ?? 0, udhi);
}

function rawMessage(value: smpp.DecodedMessage | Buffer | undefined, dataCoding: number, udhi: boolean): { udh: Buffer | null; data: Buffer } {
  if (value === undefined || value === null) return { udh: null, data: Buffer.alloc(0) };
  if (Buffer.isBuffer(value)) {
    if (!udhi || value.length === 0) return { udh: null, data: value };
    const end = Math.min(value[0]! + 1, value.length);
    return { udh: value.subarray(0, end), data: value.subarray(end) };
  }
  const elements = value.udh;
  const udh = elements ? Buffer.concat([Buffer.from([elements.reduce((n, ie) => n + ie.length, 0)]), ...elements]) : null;
  if (typeof value.message !== "string") return { udh, data: value.message };
  const national = elements?.find((ie) => ie[0] === 0x24 || ie[0] === 0x25);
  if (national) return { udh, data: smpp.gsmCoder.encode(value.message, national[2] ?? 0) };
  const codec = smpp.encodings[codecName(dataCoding)];
  return { udh, data: typeof codec === "object" ? codec.encode(value.message) : Buffer.from(value.message, "latin1") };
}

/** The name of the codec the package picks for a data_coding (mirrors its decoder). */
function codecName(dataCoding: number): string {
  const low = dataCoding & 0x0f;
  if (low === 0) return smpp.encodings.default;
  for (const [name, value] of Object.entries(smpp.consts.ENCODING)) if (value === low) return name;
  return "";
}
