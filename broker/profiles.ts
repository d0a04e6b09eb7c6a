import { createHash, randomBytes } from "node:crypto";
import { Limits, Profile, QuietHours } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { addressProblem, CLIENT_ID_PATTERN, isKnownMedium, mediumName } from "../common/addresses";
import { AbortedError, AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../common/errors";
import type { Store } from "../common/store";

// Store layout:
//   profile:<client id>  JSON {"profile": <Profile JSON>, "tokenSha256": <hex>}: the authoritative
//                        record. The token hash lives in it so that create, rotate and delete each
//                        change identity and token in one atomic write.
//   token:<sha256 hex>   client id: lookup index for tokens, always checked against the record.
//   profiles             score-0 sorted set of client ids, for listing in id order.
const PROFILE_PREFIX = "profile:";
const TOKEN_PREFIX = "token:";
/** A counter every profile change raises, so that caches of profiles know when to drop them. */
const VERSION_KEY = "profiles-version";
const INDEX_KEY = "profiles";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const MAX_DISPLAY_NAME = 128;
const LAST_MINUTE = 1439;
const CAS_ATTEMPTS = 8;

/** Mask paths writable by UpdateProfile, as named in the proto. */
const WRITABLE_FIELDS = ["display_name", "addresses", "preferred_media", "quiet_hours", "limits", "send_media"] as const;
type WritableField = (typeof WRITABLE_FIELDS)[number];
const QUIET_HOURS_FIELDS = ["start_minute", "end_minute", "time_zone", "media"] as const;
const LIMITS_FIELDS = ["max_messages_per_day", "max_sms_segments", "max_payload_bytes"] as const;

interface StoredRecord {
  profile: unknown;
  tokenSha256: string;
}

/** SHA-256 of a client bearer token: the only form in which tokens are stored or compared. */
export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

function newToken(): string {
  return `uims_${randomBytes(32).toString("base64url")}`;
}

function checkMediaList(field: string, media: readonly Medium[]): void {
  const seen = new Set<Medium>();
  media.forEach((m, i) => {
    if (!isKnownMedium(m)) throw new InvalidArgumentError(`${field}[${i}]`, `unknown medium ${m}`);
    if (seen.has(m)) throw new InvalidArgumentError(`${field}[${i}]`, `${mediumName(m)} is listed twice`);
    seen.add(m);
  });
}

function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a profile as the admin API receives it. Throws InvalidArgumentError naming the first bad
 * field by its proto path (e.g. `profile.addresses[1].address`).
 */
export function validateProfile(p: Profile): void {
  if (!p.clientId) throw new InvalidArgumentError("profile.client_id", "must not be empty");
  if (!CLIENT_ID_PATTERN.test(p.clientId)) {
    throw new InvalidArgumentError("profile.client_id", "must be 1 to 64 of [a-z0-9._-], starting with a letter or digit");
  }
  if ([...p.displayName].length > MAX_DISPLAY_NAME) {
    throw new InvalidArgumentError("profile.display_name", `must be at most ${MAX_DISPLAY_NAME} characters`);
  }
  const addressed = new Set<Medium>();
  p.addresses.forEach((a, i) => {
    const field = `profile.addresses[${i}]`;
    if (!isKnownMedium(a.medium)) throw new InvalidArgumentError(`${field}.medium`, `unknown medium ${a.medium}`);
    if (addressed.has(a.medium)) {
      throw new InvalidArgumentError(`${field}.medium`, `a second ${mediumName(a.medium)} address; at most one address per medium`);
    }
    addressed.add(a.medium);
    const problem = addressProblem(a.medium, a.address);
    if (problem) throw new InvalidArgumentError(`${field}.address`, problem);
  });
  checkMediaList("profile.preferred_media", p.preferredMedia);
  p.preferredMedia.forEach((m, i) => {
    if (!addressed.has(m)) throw new InvalidArgumentError(`profile.preferred_media[${i}]`, `no ${mediumName(m)} address in the profile`);
  });
  const q = p.quietHours;
  if (q) {
    if (q.startMinute > LAST_MINUTE) throw new InvalidArgumentError("profile.quiet_hours.start_minute", `must be 0 to ${LAST_MINUTE}`);
    if (q.endMinute > LAST_MINUTE) throw new InvalidArgumentError("profile.quiet_hours.end_minute", `must be 0 to ${LAST_MINUTE}`);
    if (q.timeZone && !isValidTimeZone(q.timeZone)) {
      throw new InvalidArgumentError("profile.quiet_hours.time_zone", `"${q.timeZone}" is not an IANA time zone (e.g. Europe/Berlin)`);
    }
    checkMediaList("profile.quiet_hours.media", q.media);
  }
  checkMediaList("profile.send_media", p.sendMedia);
}

function encodeRecord(profile: Profile, tokenSha256: string): string {
  const record: StoredRecord = { profile: Profile.toJSON(profile), tokenSha256 };
  return JSON.stringify(record);
}

function decodeRecord(raw: string): { profile: Profile; tokenSha256: string } {
  const record = JSON.parse(raw) as StoredRecord;
  return { profile: Profile.fromJSON(record.profile), tokenSha256: record.tokenSha256 };
}

/** The output-only timestamps are set here; whatever the caller sent is ignored. */
function normalize(p: Profile): Profile {
  return Profile.fromPartial({ ...p, createdAtUnixMs: 0, updatedAtUnixMs: 0 });
}

function parseMask(mask: readonly string[]): string[] {
  if (mask.length === 0) return [...WRITABLE_FIELDS];
  for (const path of mask) {
    const [head, sub, ...rest] = path.split(".");
    const known =
      (WRITABLE_FIELDS as readonly string[]).includes(path) ||
      (rest.length === 0 && head === "quiet_hours" && (QUIET_HOURS_FIELDS as readonly string[]).includes(sub ?? "")) ||
      (rest.length === 0 && head === "limits" && (LIMITS_FIELDS as readonly string[]).includes(sub ?? ""));
    if (!known) {
      const why = path === "client_id" || path === "created_at_unix_ms" || path === "updated_at_unix_ms" ? "is not writable" : "is not a profile field";
      throw new InvalidArgumentError("update_mask", `"${path}" ${why}; writable fields are ${WRITABLE_FIELDS.join(", ")}`);
    }
  }
  return [...mask];
}

function applyMask(current: Profile, change: Profile, paths: readonly string[]): Profile {
  const next = Profile.fromPartial(current);
  for (const path of paths) {
    const [head, sub] = path.split(".") as [WritableField, string | undefined];
    if (sub !== undefined) {
      if (head === "quiet_hours") {
        const q = next.quietHours ?? QuietHours.create();
        const src = change.quietHours ?? QuietHours.create();
        if (sub === "start_minute") q.startMinute = src.startMinute;
        else if (sub === "end_minute") q.endMinute = src.endMinute;
        else if (sub === "time_zone") q.timeZone = src.timeZone;
        else q.media = [...src.media];
        next.quietHours = q;
      } else {
        const l = next.limits ?? Limits.create();
        const src = change.limits ?? Limits.create();
        if (sub === "max_messages_per_day") l.maxMessagesPerDay = src.maxMessagesPerDay;
        else if (sub === "max_sms_segments") l.maxSmsSegments = src.maxSmsSegments;
        else l.maxPayloadBytes = src.maxPayloadBytes;
        next.limits = l;
      }
      continue;
    }
    switch (head) {
      case "display_name":
        next.displayName = change.displayName;
        break;
      case "addresses":
        next.addresses = change.addresses.map((a) => ({ ...a }));
        break;
      case "preferred_media":
        next.preferredMedia = [...change.preferredMedia];
        break;
      case "quiet_hours":
        next.quietHours = change.quietHours ? QuietHours.fromPartial(change.quietHours) : undefined;
        break;
      case "limits":
        next.limits = change.limits ? Limits.fromPartial(change.limits) : undefined;
        break;
      case "send_media":
        next.sendMedia = [...change.sendMedia];
        break;
    }
  }
  return next;
}

function encodePageToken(lastId: string): string {
  return Buffer.from(lastId, "utf8").toString("base64url");
}

function decodePageToken(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!CLIENT_ID_PATTERN.test(id) || encodePageToken(id) !== token) {
    throw new InvalidArgumentError("page_token", "is not a token returned by ListProfiles");
  }
  return id;
}

/** The client profile directory, kept in the store so that every broker replica shares it. */
export class ProfileDirectory {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Creates a profile and its client token. The token is returned here only; its hash is stored. */
  async create(input: Profile): Promise<{ profile: Profile; clientToken: string }> {
    validateProfile(input);
    const now = this.clock();
    const profile = { ...normalize(input), createdAtUnixMs: now, updatedAtUnixMs: now };
    const clientToken = newToken();
    const hex = hashToken(clientToken).toString("hex");
    // The token index entry goes first: if this create loses the race (or the process dies here)
    // the entry points at a record that does not carry its hash, so it never authenticates.
    await this.store.set(TOKEN_PREFIX + hex, profile.clientId);
    const created = await this.store.setIfAbsent(PROFILE_PREFIX + profile.clientId, encodeRecord(profile, hex));
    if (!created) {
      await this.store.del(TOKEN_PREFIX + hex);
      throw new AlreadyExistsError(`profile "${profile.clientId}" already exists`);
    }
    await Promise.all([this.store.sortedAdd(INDEX_KEY, profile.clientId, 0), this.changed()]);
    return { profile, clientToken };
  }

  /** Changes with every create, update and delete; what a cache compares to know it is current. */
  async version(): Promise<string> {
    return (await this.store.getFields(VERSION_KEY)).n ?? "0";
  }

  private changed(): Promise<void> {
    return this.store.incrementFields(VERSION_KEY, { n: 1 });
  }

  async get(clientId: string): Promise<Profile | null> {
    if (!CLIENT_ID_PATTERN.test(clientId)) return null;
    const raw = await this.store.get(PROFILE_PREFIX + clientId);
    return raw === null ? null : decodeRecord(raw).profile;
  }

  async require(clientId: string): Promise<Profile> {
    const profile = await this.get(clientId);
    if (!profile) throw new NotFoundError(`profile "${clientId}" not found`);
    return profile;
  }

  /** Profiles in the order of the ids given; null where there is none. */
  async getMany(clientIds: readonly string[]): Promise<(Profile | null)[]> {
    if (clientIds.length === 0) return [];
    const raws = await this.store.getMany(clientIds.map((id) => PROFILE_PREFIX + id));
    return raws.map((raw) => (raw === null ? null : decodeRecord(raw).profile));
  }

  /**
   * Changes the fields named in `mask` (proto field names; empty for every writable field) of the
   * profile `change.client_id`. Concurrent updates of other fields are not lost: the write is a
   * compare-and-set on the record, retried on conflict.
   */
  async update(change: Profile, mask: readonly string[]): Promise<Profile> {
    if (!change.clientId) throw new InvalidArgumentError("profile.client_id", "must not be empty");
    if (!CLIENT_ID_PATTERN.test(change.clientId)) {
      throw new InvalidArgumentError("profile.client_id", "must be 1 to 64 of [a-z0-9._-], starting with a letter or digit");
    }
    const paths = parseMask(mask);
    const key = PROFILE_PREFIX + change.clientId;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = await this.store.get(key);
      if (raw === null) throw new NotFoundError(`profile "${change.clientId}" not found`);
      const { profile: current, tokenSha256 } = decodeRecord(raw);
      const merged = applyMask(current, change, paths);
      validateProfile(merged);
      merged.createdAtUnixMs = current.createdAtUnixMs;
      merged.updatedAtUnixMs = Math.max(this.clock(), current.updatedAtUnixMs);
      if (await this.store.compareAndSet(key, raw, encodeRecord(merged, tokenSha256))) {
        await this.changed();
        return merged;
      }
    }
    throw new AbortedError(`profile "${change.clientId}" is being changed concurrently; try again`);
  }

  /** Deletes a profile; its token stops working at once. */
  async delete(clientId: string): Promise<void> {
    const key = PROFILE_PREFIX + clientId;
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = CLIENT_ID_PATTERN.test(clientId) ? await this.store.get(key) : null;
      if (raw === null) throw new NotFoundError(`profile "${clientId}" not found`);
      const { tokenSha256 } = decodeRecord(raw);
      if (await this.store.compareAndSet(key, raw, null)) {
        await Promise.all([this.store.del(TOKEN_PREFIX + tokenSha256), this.store.sortedRemove(INDEX_KEY, clientId), this.changed()]);
        return;
      }
    }
    throw new AbortedError(`profile "${clientId}" is being changed concurrently; try again`);
  }

  /** A page of profiles in client id order. The page token is the previous page's last id, encoded. */
  async list(pageSize: number, pageToken: string): Promise<{ profiles: Profile[]; nextPageToken: string }> {
    if (!Number.isInteger(pageSize) || pageSize < 0) throw new InvalidArgumentError("page_size", "must be 0 to 1000");
    if (pageSize > MAX_PAGE_SIZE) throw new InvalidArgumentError("page_size", `must be at most ${MAX_PAGE_SIZE}`);
    const size = pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
    const after = pageToken ? decodePageToken(pageToken) : "";
    // One extra id tells whether another page follows.
    const ids = await this.store.sortedRangeByMember(INDEX_KEY, after, size + 1);
    const page = ids.slice(0, size);
    const found = await this.getMany(page);
    const profiles = found.filter((p): p is Profile => p !== null);
    const last = page[page.length - 1];
    return { profiles, nextPageToken: ids.length > size && last !== undefined ? encodePageToken(last) : "" };
  }

  /** Issues a new client token; the previous one stops working at once. */
  async rotateToken(clientId: string): Promise<string> {
    const key = PROFILE_PREFIX + clientId;
    const clientToken = newToken();
    const hex = hashToken(clientToken).toString("hex");
    await this.store.set(TOKEN_PREFIX + hex, clientId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const raw = CLIENT_ID_PATTERN.test(clientId) ? await this.store.get(key) : null;
      if (raw === null) {
        await this.store.del(TOKEN_PREFIX + hex);
        throw new NotFoundError(`profile "${clientId}" not found`);
      }
      const { profile, tokenSha256: old } = decodeRecord(raw);
      if (await this.store.compareAndSet(key, raw, encodeRecord(profile, hex))) {
        await this.store.del(TOKEN_PREFIX + old);
        return clientToken;
      }
    }
    await this.store.del(TOKEN_PREFIX + hex);
    throw new AbortedError(`profile "${clientId}" is being changed concurrently; try again`);
  }

  /** The client id a token hash belongs to, or null when the token is unknown, rotated or deleted. */
  async resolveToken(tokenSha256: Uint8Array): Promise<string | null> {
    if (tokenSha256.length !== 32) return null;
    const hex = Buffer.from(tokenSha256).toString("hex");
    const clientId = await this.store.get(TOKEN_PREFIX + hex);
    if (clientId === null) return null;
    // The index entry alone is not proof: the record must still carry this hash.
    const raw = await this.store.get(PROFILE_PREFIX + clientId);
    if (raw === null || decodeRecord(raw).tokenSha256 !== hex) return null;
    return clientId;
  }
}
