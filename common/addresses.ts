import { Medium } from "../gen/uims/common/v1/types";

/**
 * Recipient addresses. A recipient is either a profile id ("bob") or an explicit address in one
 * medium: "im:bob", "sms:+491701234567", "mailto:bob@example.org", "voice:+49...", "fax:+49...".
 * An explicit address overrides the profile's preferences.
 */

export const CLIENT_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const E164_PATTERN = /^\+[1-9][0-9]{6,14}$/;
// Deliberately simple: full RFC 5322 validation belongs to the SMTP peers; this only keeps out
// values that cannot be an address at all.
const EMAIL_PATTERN = /^[^\s@<>()",;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

const SCHEMES: ReadonlyArray<[string, Medium]> = [
  ["im", Medium.MEDIUM_IM],
  ["mailto", Medium.MEDIUM_EMAIL],
  ["sms", Medium.MEDIUM_SMS],
  ["voice", Medium.MEDIUM_VOICE],
  ["fax", Medium.MEDIUM_FAX],
];

export const MEDIUM_NAMES: Readonly<Record<string, Medium>> = {
  im: Medium.MEDIUM_IM,
  email: Medium.MEDIUM_EMAIL,
  sms: Medium.MEDIUM_SMS,
  voice: Medium.MEDIUM_VOICE,
  fax: Medium.MEDIUM_FAX,
};

export function mediumName(medium: Medium): string {
  for (const [name, m] of Object.entries(MEDIUM_NAMES)) if (m === medium) return name;
  return "unspecified";
}

export function parseMedium(name: string): Medium | undefined {
  return MEDIUM_NAMES[name.toLowerCase()];
}

export function isKnownMedium(medium: Medium): boolean {
  return Object.values(MEDIUM_NAMES).includes(medium);
}

export type Recipient = { kind: "profile"; clientId: string } | { kind: "address"; medium: Medium; address: string };

/** Why an address is malformed, or undefined when it is well formed for the medium. */
export function addressProblem(medium: Medium, address: string): string | undefined {
  switch (medium) {
    case Medium.MEDIUM_IM:
      return CLIENT_ID_PATTERN.test(address) ? undefined : "an im address is a client id: 1 to 64 of [a-z0-9._-]";
    case Medium.MEDIUM_EMAIL:
      return EMAIL_PATTERN.test(address) && address.length <= 254 ? undefined : "not an e-mail address";
    case Medium.MEDIUM_SMS:
    case Medium.MEDIUM_VOICE:
    case Medium.MEDIUM_FAX:
      return E164_PATTERN.test(address) ? undefined : "a phone number in E.164 form is expected, e.g. +491701234567";
    default:
      return "unknown medium";
  }
}

/** Parses a recipient; returns an error message for malformed input. */
export function parseRecipient(raw: string): Recipient | { error: string } {
  const value = raw.trim();
  if (!value) return { error: "must not be empty" };
  const colon = value.indexOf(":");
  if (colon < 0) {
    return CLIENT_ID_PATTERN.test(value) ? { kind: "profile", clientId: value } : { error: `"${value}" is neither a client id nor an address like sms:+49... or mailto:...` };
  }
  const scheme = value.slice(0, colon).toLowerCase();
  const address = value.slice(colon + 1);
  const entry = SCHEMES.find(([s]) => s === scheme);
  if (!entry) return { error: `unknown address scheme "${scheme}" (use im:, sms:, mailto:, voice: or fax:)` };
  const [, medium] = entry;
  const problem = addressProblem(medium, address);
  if (problem) return { error: `"${value}": ${problem}` };
  return { kind: "address", medium, address };
}

export function formatAddress(medium: Medium, address: string): string {
  const entry = SCHEMES.find(([, m]) => m === medium);
  return entry ? `${entry[0]}:${address}` : address;
}
