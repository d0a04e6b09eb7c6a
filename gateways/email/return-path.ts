import { hmacSha256 } from "../../common/crypto/canonical";
import { equalConstantTime, type Keyring } from "../../common/crypto/keys";

/**
 * Return paths that name the message they belong to (VERP): mail goes out from
 * `<local>+<message id><tag>@<domain>`, so a bounce that arrives days later says which message
 * failed. The tag is a MAC under the mesh key, so that nobody outside can fail a message by
 * mailing a made-up report to such an address. Hex only: some mail systems change the case of
 * local parts.
 */
const LABEL = "uims.email.return-path.v1";
/** Message ids are UUIDs; compacted to 32 hex digits. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TAG_HEX = 12;
/** RFC 5321 §4.5.3.1.1. */
const MAX_LOCAL_PART = 64;

export class ReturnPaths {
  private readonly local: string;
  private readonly domain: string;
  private readonly pattern: RegExp;

  constructor(
    bounceAddress: string,
    private readonly k1: Keyring,
  ) {
    const at = bounceAddress.lastIndexOf("@");
    this.local = bounceAddress.slice(0, at);
    this.domain = bounceAddress.slice(at + 1).toLowerCase();
    this.pattern = new RegExp(`^${escapeRegExp(this.local)}\\+([0-9a-f]{32})([0-9a-f]{${TAG_HEX}})@${escapeRegExp(this.domain)}$`, "i");
  }

  /** Longest bounce-address local part that leaves room for the message id and tag. */
  static readonly maxLocalPart = MAX_LOCAL_PART - 1 - 32 - TAG_HEX;

  /** The envelope sender for one message; the plain bounce address for an id that is not a UUID. */
  for(messageId: string): string {
    const id = messageId.toLowerCase();
    if (!UUID.test(id) || this.local.length > ReturnPaths.maxLocalPart) return `${this.local}@${this.domain}`;
    const compact = id.replace(/-/g, "");
    return `${this.local}+${compact}${this.tag(compact, this.k1.current.key)}@${this.domain}`;
  }

  /** The message id a return path names, or null when the address is not one of ours with a valid tag. */
  messageIdOf(address: string): string | null {
    const match = this.pattern.exec(address);
    if (!match) return null;
    const compact = match[1]!.toLowerCase();
    const tag = Buffer.from(match[2]!.toLowerCase());
    // Any key of the ring: mail sent before a key rotation still bounces back to us.
    const valid = [...this.k1.all.values()].some((key) => equalConstantTime(Buffer.from(this.tag(compact, key)), tag));
    if (!valid) return null;
    return `${compact.slice(0, 8)}-${compact.slice(8, 12)}-${compact.slice(12, 16)}-${compact.slice(16, 20)}-${compact.slice(20)}`;
  }

  private tag(compactId: string, key: Buffer): string {
    return hmacSha256(key, LABEL, [compactId]).toString("hex").slice(0, TAG_HEX);
  }
}

/** The literal as a regular expression that matches only itself. */
export function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
