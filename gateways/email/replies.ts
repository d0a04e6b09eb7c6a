import * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../../common/errors";
import { errorCode } from "../../common/mesh/peer";

/**
 * SMTP replies of the inbound side: a basic code (RFC 5321) with an enhanced status code
 * (RFC 3463) at the start of the text. smtp-server's own enhanced codes stay off: it derives
 * them from the basic code alone (every 550 would read 5.1.1), while these say why.
 */
export interface SmtpReply {
  code: number;
  /** Enhanced status code, e.g. "5.1.1". */
  status: string;
  text: string;
}

export type SmtpServerError = Error & { responseCode: number };

/** The error smtp-server turns into the reply: "<code> <status> <text>". */
export function smtpError(reply: SmtpReply): SmtpServerError {
  return Object.assign(new Error(`${reply.status} ${reply.text}`), { responseCode: reply.code });
}

export function formatReply(reply: SmtpReply): string {
  return `${reply.code} ${reply.status} ${reply.text}`;
}

export function isTemporary(reply: SmtpReply): boolean {
  return reply.code >= 400 && reply.code < 500;
}

const TRY_LATER = "try again later";

/** The broker's reason, on one line and short enough for a reply line (RFC 5321: 512 octets). */
function reasonOf(err: unknown): string {
  const details = (err as { details?: unknown }).details;
  const text = typeof details === "string" && details ? details : err instanceof Error ? err.message : String(err);
  const flat = text.replace(/[\r\n]+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}...` : flat;
}

/**
 * The reply for a recipient the gateway core did not accept: the broker's refusal (passed on by
 * `Originator.accept`) or a failure of the gateway itself.
 *
 * FAILED_PRECONDITION is the broker's "no route": it covers lasting causes (a profile without
 * addresses) and passing ones (no healthy gateway or processor for the medium right now). An
 * SMTP sender retries a 4yz for days and then bounces, while a 5yz is a bounce at once, so the
 * safe answer is the temporary one. RESOURCE_EXHAUSTED (a rate limit) passes too.
 */
export function refusalReply(err: unknown, address: string): SmtpReply {
  const who = `<${address}>`;
  if (err instanceof InvalidArgumentError && err.field === "payload") {
    return { code: 552, status: "5.3.4", text: `message too big for ${who}: ${err.reason}` };
  }
  switch (errorCode(err)) {
    case grpc.status.NOT_FOUND:
      return { code: 550, status: "5.1.1", text: `${who}: user unknown (${reasonOf(err)})` };
    case grpc.status.PERMISSION_DENIED:
      return { code: 550, status: "5.7.1", text: `${who}: delivery not authorized (${reasonOf(err)})` };
    case grpc.status.INVALID_ARGUMENT:
      return { code: 554, status: "5.6.0", text: `${who}: message refused (${reasonOf(err)})` };
    case grpc.status.FAILED_PRECONDITION:
      return { code: 451, status: "4.4.4", text: `${who}: no route to the recipient now (${reasonOf(err)}); ${TRY_LATER}` };
    case grpc.status.RESOURCE_EXHAUSTED:
      return { code: 452, status: "4.3.1", text: `${who}: limit reached (${reasonOf(err)}); ${TRY_LATER}` };
    case grpc.status.ALREADY_EXISTS:
      return { code: 451, status: "4.3.0", text: `${who}: this message is being accepted right now; ${TRY_LATER}` };
    default:
      // The broker or the store is unreachable, or something unexpected went wrong: nothing
      // was kept, and the sender's MTA tries again.
      return { code: 451, status: "4.3.0", text: `${who}: temporarily unable to accept the message; ${TRY_LATER}` };
  }
}

export const REPLIES = {
  relayDenied: (address: string): SmtpReply => ({ code: 550, status: "5.7.1", text: `<${address}>: relaying denied` }),
  userUnknown: (address: string, why: string): SmtpReply => ({ code: 550, status: "5.1.1", text: `<${address}>: user unknown (${why})` }),
  malformed: (reason: string): SmtpReply => ({ code: 554, status: "5.6.0", text: `malformed message: ${reason}` }),
  tooBig: (limit: number): SmtpReply => ({ code: 552, status: "5.3.4", text: `message exceeds the fixed maximum message size of ${limit} bytes` }),
  loop: (hops: number): SmtpReply => ({ code: 554, status: "5.4.6", text: `too many hops (${hops} Received headers): mail loop?` }),
  localError: (): SmtpReply => ({ code: 451, status: "4.3.0", text: `local error in processing; ${TRY_LATER}` }),
};
