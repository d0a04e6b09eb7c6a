import type { Profile } from "../gen/uims/admin/v1/admin";
import type { ConversionPlan } from "../gen/uims/common/v1/message";
import { Medium } from "../gen/uims/common/v1/types";
import { mediumName, type Recipient } from "../common/addresses";
import { SMS_CONTENT_TYPE } from "../common/content/sms";

export { SMS_CONTENT_TYPE };

/**
 * Route choice by profile (BRIEF §4): an explicit address wins; otherwise the recipient's
 * preferred media in order, filtered by availability (presence, quiet hours), by the sender's
 * rights and by healthy gateways, with the conversion each route needs. Pure: every input is
 * passed in, so the same code explains a route (dry run) and decides it.
 */

export interface RouteNode {
  nodeId: string;
  endpoint: string;
}

export interface Presence {
  gatewayId: string;
  online: boolean;
  atUnixMs: number;
}

export interface RouteInput {
  nowUnixMs: number;
  /** Sending profile; null for an outside sender (e.g. a mail from the internet). */
  sender: Profile | null;
  recipient: Recipient;
  /** The recipient's profile when the recipient is a profile id (or an im address). */
  recipientProfile: Profile | null;
  presence: Presence | null;
  sourceContentType: string;
  /** Media already tried for this message (fallback skips them). */
  excludeMedia: readonly Medium[];
  /** Healthy gateways of a medium, least loaded first. */
  gateways: (medium: Medium) => RouteNode[];
  /** Healthy processors, least loaded first. */
  processors: RouteNode[];
}

export interface Route {
  medium: Medium;
  address: string;
  gateway: RouteNode;
  conversion?: ConversionPlan;
  processor?: RouteNode;
  /** False when the target is known to be offline: the message waits in the inbox. */
  immediate: boolean;
}

export interface Candidate {
  medium: Medium;
  address: string;
  gatewayId: string;
  usable: boolean;
  reason: string;
  conversion: string;
}

export interface RoutePlan {
  chosen?: Route;
  candidates: Candidate[];
  refusal?: string;
}

const TEXT = "text/plain; charset=utf-8";

function baseType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase() || "text/plain";
}

/** The content type a medium needs, or undefined when the source passes unchanged. */
export function targetContentType(sourceContentType: string, medium: Medium): string | undefined {
  const source = baseType(sourceContentType);
  switch (medium) {
    case Medium.MEDIUM_IM:
      return source === "message/rfc822" ? TEXT : undefined;
    case Medium.MEDIUM_EMAIL:
      return source === "message/rfc822" ? undefined : "message/rfc822";
    case Medium.MEDIUM_SMS:
      return source === SMS_CONTENT_TYPE ? undefined : SMS_CONTENT_TYPE;
    case Medium.MEDIUM_VOICE:
      return source.startsWith("audio/") ? undefined : "audio/wav";
    case Medium.MEDIUM_FAX:
      return source === "image/tiff" || source === "application/pdf" ? undefined : "image/tiff";
    default:
      return undefined;
  }
}

const minuteFormatters = new Map<string, Intl.DateTimeFormat>();

/** Minutes after local midnight in a time zone. */
export function localMinute(nowUnixMs: number, timeZone: string): number {
  const zone = timeZone || "UTC";
  let fmt = minuteFormatters.get(zone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    minuteFormatters.set(zone, fmt);
  }
  let hour = 0;
  let minute = 0;
  for (const part of fmt.formatToParts(new Date(nowUnixMs))) {
    if (part.type === "hour") hour = Number(part.value);
    if (part.type === "minute") minute = Number(part.value);
  }
  return hour * 60 + minute;
}

export function inQuietHours(profile: Profile | null, medium: Medium, nowUnixMs: number): boolean {
  const quiet = profile?.quietHours;
  if (!quiet || quiet.startMinute === quiet.endMinute) return false;
  const media = quiet.media.length > 0 ? quiet.media : [Medium.MEDIUM_EMAIL, Medium.MEDIUM_SMS, Medium.MEDIUM_VOICE, Medium.MEDIUM_FAX];
  if (!media.includes(medium)) return false;
  const now = localMinute(nowUnixMs, quiet.timeZone);
  return quiet.startMinute < quiet.endMinute ? now >= quiet.startMinute && now < quiet.endMinute : now >= quiet.startMinute || now < quiet.endMinute;
}

function addressOf(profile: Profile, medium: Medium): string | undefined {
  return profile.addresses.find((a) => a.medium === medium)?.address;
}

interface Evaluation {
  candidate: Candidate;
  route?: Route;
}

function evaluate(input: RouteInput, medium: Medium, address: string, checkQuietHours: boolean): Evaluation {
  const base = { medium, address, gatewayId: "", conversion: "" };
  const refuse = (reason: string): Evaluation => ({ candidate: { ...base, usable: false, reason } });
  if (input.excludeMedia.includes(medium)) return refuse("already tried for this message");
  const rights = input.sender?.sendMedia ?? [];
  if (rights.length > 0 && !rights.includes(medium)) return refuse(`sender may not send to ${mediumName(medium)}`);
  if (checkQuietHours && inQuietHours(input.recipientProfile, medium, input.nowUnixMs)) return refuse("quiet hours");
  const gateways = input.gateways(medium);
  if (gateways.length === 0) return refuse(`no healthy ${mediumName(medium)} gateway`);

  let gateway = gateways[0]!;
  let immediate = true;
  let reason = "available";
  if (medium === Medium.MEDIUM_IM) {
    // The im gateway that last saw the client holds its live stream; any im gateway can keep
    // the message for an offline client when gateways share the store.
    const presence = input.presence;
    const seenOn = presence ? gateways.find((g) => g.nodeId === presence.gatewayId) : undefined;
    if (seenOn) gateway = seenOn;
    immediate = presence?.online === true && seenOn !== undefined;
    reason = immediate ? "online" : "offline: the message waits in the inbox";
  }

  const targetType = targetContentType(input.sourceContentType, medium);
  let conversion: ConversionPlan | undefined;
  let processor: RouteNode | undefined;
  if (targetType) {
    processor = input.processors[0];
    if (!processor) return refuse(`needs a conversion to ${targetType} but no processor is healthy`);
    const maxSegments = medium === Medium.MEDIUM_SMS ? (input.recipientProfile?.limits?.maxSmsSegments ?? 0) : 0;
    conversion = { sourceContentType: input.sourceContentType, targetMedium: medium, targetContentType: targetType, maxSegments };
  }
  const route: Route = { medium, address, gateway, immediate, ...(conversion ? { conversion } : {}), ...(processor ? { processor } : {}) };
  return {
    candidate: { ...base, gatewayId: gateway.nodeId, usable: true, reason, conversion: targetType ? `${baseType(input.sourceContentType)} -> ${targetType}` : "" },
    route,
  };
}

export function planRoute(input: RouteInput): RoutePlan {
  const { recipient } = input;
  if (recipient.kind === "address" && recipient.medium !== Medium.MEDIUM_IM) {
    // An explicit address is the sender's choice: no profile preferences, no quiet hours.
    const e = evaluate(input, recipient.medium, recipient.address, false);
    return e.route ? { chosen: e.route, candidates: [e.candidate] } : { candidates: [e.candidate], refusal: `${mediumName(recipient.medium)}: ${e.candidate.reason}` };
  }
  const profile = input.recipientProfile;
  if (!profile) return { candidates: [], refusal: "recipient has no profile" };
  if (recipient.kind === "address") {
    const e = evaluate(input, Medium.MEDIUM_IM, profile.clientId, false);
    return e.route ? { chosen: e.route, candidates: [e.candidate] } : { candidates: [e.candidate], refusal: `im: ${e.candidate.reason}` };
  }

  const media = profile.preferredMedia.length > 0 ? profile.preferredMedia : profile.addresses.map((a) => a.medium);
  const evaluations: Evaluation[] = [];
  for (const medium of media) {
    const address = addressOf(profile, medium);
    if (address === undefined) {
      evaluations.push({ candidate: { medium, address: "", gatewayId: "", usable: false, reason: "no address for this medium", conversion: "" } });
      continue;
    }
    evaluations.push(evaluate(input, medium, address, true));
  }
  // First choice: a medium that reaches the recipient now. Failing that, an im inbox that keeps
  // the message until the client reconnects.
  const chosen = evaluations.find((e) => e.route?.immediate)?.route ?? evaluations.find((e) => e.route)?.route;
  const candidates = evaluations.map((e) => e.candidate);
  if (chosen) return { chosen, candidates };
  return { candidates, refusal: candidates.length ? candidates.map((c) => `${mediumName(c.medium)}: ${c.reason}`).join("; ") : "profile has no addresses" };
}
