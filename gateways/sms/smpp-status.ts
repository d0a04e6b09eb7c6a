/**
 * SMPP 3.4 command_status values (§5.1.3) the gateway reads or sends, and how a refused
 * submit_sm maps onto the mesh's status model.
 *
 * A temporary refusal is retried by the gateway core with backoff; when it persists for
 * DELIVERY_GIVE_UP_MS the broker falls back to the recipient's next medium. A permanent refusal
 * ends the message FAILED at once: no retry, no fallback. A code that says something is wrong
 * with this message (its addresses, its encoding, its length) is permanent; a code that says the
 * SMSC cannot take it right now is temporary. Codes not listed count as permanent.
 *
 * | status | name | kind |
 * |---|---|---|
 * | 0x04 | ESME_RINVBNDSTS | temporary: the SMSC does not see us bound; the link re-binds |
 * | 0x08 | ESME_RSYSERR | temporary |
 * | 0x14 | ESME_RMSGQFUL | temporary |
 * | 0x45 | ESME_RSUBMITFAIL | temporary: a catch-all SMSCs use for transient routing trouble; if it persists the broker still falls back |
 * | 0x58 | ESME_RTHROTTLED | temporary; the session also pauses its submits for a second |
 * | 0x64 | ESME_RX_T_APPN | temporary |
 * | 0xFE | ESME_RDELIVERYFAILURE | temporary |
 * | 0xFF | ESME_RUNKNOWNERR | temporary |
 * | 0x01 | ESME_RINVMSGLEN | permanent |
 * | 0x0A | ESME_RINVSRCADR | permanent (our sender is refused: every message would be) |
 * | 0x0B | ESME_RINVDSTADR | permanent |
 * | 0x43 | ESME_RINVESMCLASS | permanent |
 * | 0x48-0x51 | ESME_RINVSRCTON/NPI, ESME_RINVDSTTON/NPI | permanent |
 * | 0x61, 0x62 | ESME_RINVSCHED, ESME_RINVEXPIRY | permanent |
 * | 0x65, 0x66 | ESME_RX_P_APPN, ESME_RX_R_APPN | permanent |
 * | 0x101 | ESME_RPROHIBITED | permanent |
 * | 0x104 | ESME_RINVDCS | permanent |
 * | other | | permanent |
 *
 * No answer at all (not bound, the link dropped, no submit_sm_resp in time) is temporary.
 */
export const Status = {
  ESME_ROK: 0x00,
  ESME_RINVMSGLEN: 0x01,
  ESME_RINVCMDID: 0x03,
  ESME_RINVBNDSTS: 0x04,
  ESME_RSYSERR: 0x08,
  ESME_RINVSRCADR: 0x0a,
  ESME_RINVDSTADR: 0x0b,
  ESME_RBINDFAIL: 0x0d,
  ESME_RINVPASWD: 0x0e,
  ESME_RINVSYSID: 0x0f,
  ESME_RMSGQFUL: 0x14,
  ESME_RINVESMCLASS: 0x43,
  ESME_RSUBMITFAIL: 0x45,
  ESME_RINVSRCTON: 0x48,
  ESME_RINVSRCNPI: 0x49,
  ESME_RINVDSTTON: 0x50,
  ESME_RINVDSTNPI: 0x51,
  ESME_RTHROTTLED: 0x58,
  ESME_RINVSCHED: 0x61,
  ESME_RINVEXPIRY: 0x62,
  /** Temporary application error: the SMSC should deliver the PDU again later. */
  ESME_RX_T_APPN: 0x64,
  /** Permanent application error: the SMSC should not deliver the PDU again. */
  ESME_RX_P_APPN: 0x65,
  ESME_RX_R_APPN: 0x66,
  ESME_RDELIVERYFAILURE: 0xfe,
  ESME_RUNKNOWNERR: 0xff,
  ESME_RPROHIBITED: 0x101,
  ESME_RINVDCS: 0x104,
} as const;

const NAMES = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, name]));

const TEMPORARY = new Set<number>([
  Status.ESME_RINVBNDSTS,
  Status.ESME_RSYSERR,
  Status.ESME_RMSGQFUL,
  Status.ESME_RSUBMITFAIL,
  Status.ESME_RTHROTTLED,
  Status.ESME_RX_T_APPN,
  Status.ESME_RDELIVERYFAILURE,
  Status.ESME_RUNKNOWNERR,
]);

/** "ESME_RINVDSTADR (0x0B)", or the bare hex value for a code without a name here. */
export function statusName(status: number): string {
  const hex = `0x${status.toString(16).toUpperCase().padStart(2, "0")}`;
  const name = NAMES.get(status);
  return name ? `${name} (${hex})` : hex;
}

/** Whether a refused submit_sm may succeed when tried again later. */
export function isTemporarySubmitError(status: number): boolean {
  return TEMPORARY.has(status);
}
