import type { IncomingDeliverSm } from "./smpp-session";

/**
 * SMPP delivery receipts: a deliver_sm with the receipt message type in esm_class, carrying the
 * de facto standard receipt text of SMPP 3.4 Appendix B
 * (`id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...`)
 * and/or the TLVs receipted_message_id, message_state and network_error_code.
 *
 * How a receipt state maps onto the mesh's status model, per part of a message:
 *
 * | stat | message_state | verdict |
 * |---|---|---|
 * | DELIVRD | 2 DELIVERED | delivered |
 * | UNDELIV | 5 UNDELIVERABLE | failed, permanent |
 * | REJECTD | 8 REJECTED | failed, permanent |
 * | SKIPPED | 9 SKIPPED | failed, permanent |
 * | EXPIRED | 3 EXPIRED | failed, temporary: the handset stayed unreachable for the validity period; another medium may reach the recipient, so the broker falls back |
 * | DELETED | 4 DELETED | failed, temporary: the SMSC or its operator dropped the message, which says nothing against the recipient; the broker falls back |
 * | ENROUTE | 1 ENROUTE | waiting (an intermediate notification) |
 * | ACCEPTD | 6 ACCEPTED | waiting |
 * | UNKNOWN | 7 UNKNOWN | waiting |
 * | anything else | 0, 10+ | waiting |
 *
 * A message gets one verdict: delivered once every part is DELIVRD, failed as soon as one part fails.
 */

export type PartVerdict = { kind: "delivered" } | { kind: "failed"; permanent: boolean } | { kind: "waiting" };

export interface ReceiptText {
  id?: string;
  sub?: string;
  dlvrd?: string;
  submitDate?: string;
  doneDate?: string;
  stat?: string;
  err?: string;
  text?: string;
}

export interface Receipt {
  /** The SMSC message id of the submit_sm the receipt is for. */
  smscMessageId: string;
  /** The state as a receipt-text word (DELIVRD, UNDELIV, ...), from the TLV when there is one. */
  state: string;
  /** The error code: network_error_code (type:code) or the text's err field. */
  error: string;
  verdict: PartVerdict;
}

/** message_state TLV values (SMPP 3.4 §5.3.2.35; SKIPPED from SMPP 5.0). */
const MESSAGE_STATES: Readonly<Record<number, string>> = {
  1: "ENROUTE",
  2: "DELIVRD",
  3: "EXPIRED",
  4: "DELETED",
  5: "UNDELIV",
  6: "ACCEPTD",
  7: "UNKNOWN",
  8: "REJECTD",
  9: "SKIPPED",
};

const VERDICTS: Readonly<Record<string, PartVerdict>> = {
  DELIVRD: { kind: "delivered" },
  UNDELIV: { kind: "failed", permanent: true },
  REJECTD: { kind: "failed", permanent: true },
  SKIPPED: { kind: "failed", permanent: true },
  EXPIRED: { kind: "failed", permanent: false },
  DELETED: { kind: "failed", permanent: false },
};

/** The verdict for a receipt state word; unknown words keep the part waiting. */
export function verdictOf(state: string): PartVerdict {
  return VERDICTS[state.toUpperCase()] ?? { kind: "waiting" };
}

export function stateName(messageState: number): string {
  return MESSAGE_STATES[messageState] ?? `STATE_${messageState}`;
}

const FIELD = /(?:^|\s)(id|sub|dlvrd|submit date|done date|stat|err):(\S*)/gi;
const TEXT = /(?:^|\s)text:(.*)$/is;
const KEYS: Readonly<Record<string, keyof ReceiptText>> = {
  id: "id",
  sub: "sub",
  dlvrd: "dlvrd",
  "submit date": "submitDate",
  "done date": "doneDate",
  stat: "stat",
  err: "err",
};

/** Parses receipt text; fields are case-insensitive and each optional. */
export function parseReceiptText(text: string): ReceiptText {
  const out: ReceiptText = {};
  const textMatch = TEXT.exec(text);
  const head = textMatch ? text.slice(0, textMatch.index) : text;
  if (textMatch) out.text = textMatch[1] ?? "";
  for (const match of head.matchAll(FIELD)) {
    const key = KEYS[(match[1] ?? "").toLowerCase().replace(/\s+/g, " ")];
    if (key && out[key] === undefined) out[key] = match[2] ?? "";
  }
  return out;
}

/**
 * The receipt a deliver_sm carries, or undefined when it names no message. The TLVs win over the
 * text when both are present (they are typed, the text is a convention).
 */
export function receiptOf(pdu: IncomingDeliverSm): Receipt | undefined {
  const parsed = parseReceiptText(pdu.data.toString("latin1"));
  const smscMessageId = (pdu.receiptedMessageId || parsed.id || "").trim();
  if (!smscMessageId) return undefined;
  const state = pdu.messageState !== undefined ? stateName(pdu.messageState) : (parsed.stat ?? "UNKNOWN").toUpperCase();
  // network_error_code: network type (1 ANSI-136, 2 IS-95, 3 GSM) and a 2-octet code; 0 is no error.
  const network = pdu.networkErrorCode;
  const networkCode = network && network.length >= 3 ? network.readUInt16BE(1) : 0;
  const error = networkCode ? `${network![0]}:${networkCode}` : (parsed.err ?? "");
  return { smscMessageId, state, error, verdict: verdictOf(state) };
}

/**
 * The forms an SMSC may use for the same message id: some answer submit_sm with a hexadecimal id
 * and put it in the receipt text as decimal (or the other way round).
 */
export function messageIdForms(id: string): string[] {
  const forms = [id];
  const add = (form: string) => {
    if (!forms.includes(form)) forms.push(form);
  };
  if (/^[0-9]{1,30}$/.test(id)) {
    const hex = BigInt(id).toString(16);
    add(hex);
    add(hex.toUpperCase());
  }
  if (/^[0-9a-f]{1,24}$/i.test(id)) add(BigInt(`0x${id}`).toString(10));
  if (/^0+[0-9a-z]/i.test(id)) add(id.replace(/^0+/, ""));
  if (/^[0-9a-f]+$/i.test(id)) {
    add(id.toLowerCase());
    add(id.toUpperCase());
  }
  return forms;
}
