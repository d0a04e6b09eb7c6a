import { createHash } from "node:crypto";
import { Profile } from "../gen/uims/admin/v1/admin";
import { Medium } from "../gen/uims/common/v1/types";
import { AbortedError, AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../common/errors";
import type { Store } from "../common/store";
import { hashToken, ProfileDirectory, validateProfile } from "./profiles";
import { testStore, withOverrides } from "../test/support/store";

const { MEDIUM_IM, MEDIUM_EMAIL, MEDIUM_SMS, MEDIUM_FAX, MEDIUM_UNSPECIFIED } = Medium;



function profile(overrides: Partial<Profile> = {}): Profile {
  return Profile.fromPartial({
    clientId: "alice",
    displayName: "Alice",
    addresses: [
      { medium: MEDIUM_IM, address: "alice" },
      { medium: MEDIUM_SMS, address: "+491701234567" },
      { medium: MEDIUM_EMAIL, address: "alice@example.org" },
    ],
    preferredMedia: [MEDIUM_IM, MEDIUM_SMS],
    quietHours: { startMinute: 22 * 60, endMinute: 7 * 60, timeZone: "Europe/Berlin", media: [MEDIUM_SMS] },
    limits: { maxMessagesPerDay: 1000, maxSmsSegments: 3, maxPayloadBytes: 1 << 20 },
    sendMedia: [],
    ...overrides,
  });
}

function invalidField(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.field;
    throw err;
  }
  throw new Error("expected an InvalidArgumentError");
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const base = profile();
const invalidProfiles: Array<[string, string, Profile]> = [
  ["empty client id", "profile.client_id", profile({ clientId: "" })],
  ["upper-case client id", "profile.client_id", profile({ clientId: "Alice" })],
  ["client id with a space", "profile.client_id", profile({ clientId: "al ice" })],
  ["client id of 65 characters", "profile.client_id", profile({ clientId: "a".repeat(65) })],
  ["client id starting with a dot", "profile.client_id", profile({ clientId: ".alice" })],
  ["display name of 129 characters", "profile.display_name", profile({ displayName: "x".repeat(129) })],
  ["address without a medium", "profile.addresses[0].medium", profile({ addresses: [{ medium: MEDIUM_UNSPECIFIED, address: "alice" }], preferredMedia: [] })],
  ["address in an unknown medium", "profile.addresses[1].medium", profile({ addresses: [base.addresses[0]!, { medium: 42 as Medium, address: "x" }], preferredMedia: [] })],
  ["malformed phone number", "profile.addresses[1].address", profile({ addresses: [base.addresses[0]!, { medium: MEDIUM_SMS, address: "0170 123" }] })],
  ["malformed e-mail address", "profile.addresses[1].address", profile({ addresses: [base.addresses[0]!, { medium: MEDIUM_EMAIL, address: "not-an-address" }], preferredMedia: [] })],
  ["malformed im address", "profile.addresses[0].address", profile({ addresses: [{ medium: MEDIUM_IM, address: "Alice!" }], preferredMedia: [] })],
  ["two addresses in one medium", "profile.addresses[1].medium", profile({ addresses: [base.addresses[0]!, { medium: MEDIUM_IM, address: "alice2" }], preferredMedia: [] })],
  ["unknown preferred medium", "profile.preferred_media[0]", profile({ preferredMedia: [99 as Medium] })],
  ["unspecified preferred medium", "profile.preferred_media[1]", profile({ preferredMedia: [MEDIUM_IM, MEDIUM_UNSPECIFIED] })],
  ["preferred medium listed twice", "profile.preferred_media[2]", profile({ preferredMedia: [MEDIUM_IM, MEDIUM_SMS, MEDIUM_IM] })],
  ["preferred medium without an address", "profile.preferred_media[1]", profile({ preferredMedia: [MEDIUM_IM, MEDIUM_FAX] })],
  ["quiet hours starting at minute 1440", "profile.quiet_hours.start_minute", profile({ quietHours: { ...base.quietHours!, startMinute: 1440 } })],
  ["quiet hours ending at minute 1440", "profile.quiet_hours.end_minute", profile({ quietHours: { ...base.quietHours!, endMinute: 1440 } })],
  ["unknown time zone", "profile.quiet_hours.time_zone", profile({ quietHours: { ...base.quietHours!, timeZone: "Mars/Olympus_Mons" } })],
  ["unknown quiet medium", "profile.quiet_hours.media[1]", profile({ quietHours: { ...base.quietHours!, media: [MEDIUM_SMS, MEDIUM_UNSPECIFIED] } })],
  ["unknown send medium", "profile.send_media[1]", profile({ sendMedia: [MEDIUM_IM, 7 as Medium] })],
  ["send medium listed twice", "profile.send_media[1]", profile({ sendMedia: [MEDIUM_SMS, MEDIUM_SMS] })],
];

describe("validateProfile", () => {
  it.each(invalidProfiles)("refuses a profile with %s, naming %s", (_name, field, p) => {
    expect(invalidField(() => validateProfile(p))).toBe(field);
  });

  it("accepts a complete profile, a minimal one, and quiet hours in UTC", () => {
    expect(() => validateProfile(base)).not.toThrow();
    expect(() => validateProfile(Profile.fromPartial({ clientId: "0" }))).not.toThrow();
    expect(() => validateProfile(profile({ quietHours: { startMinute: 0, endMinute: 1439, timeZone: "", media: [] } }))).not.toThrow();
    expect(() => validateProfile(profile({ displayName: "é".repeat(128) }))).not.toThrow();
  });

  it("details read field: reason", () => {
    try {
      validateProfile(profile({ clientId: "" }));
    } catch (err) {
      expect((err as Error).message).toBe("profile.client_id: must not be empty");
    }
    expect.assertions(1);
  });
});

describe.each(["memory", "redis"] as const)("ProfileDirectory (%s store)", (kind) => {
  let store: Store;
  let now: number;
  let directory: ProfileDirectory;

  beforeEach(() => {
    store = testStore(kind);
    now = 1_700_000_000_000;
    directory = new ProfileDirectory(store, () => now);
  });

  afterEach(async () => {
    await store.close();
  });

  describe("validation", () => {
    it.each(invalidProfiles)("create refuses a profile with %s (%s) and writes nothing", async (_name, field, p) => {
      const err = await rejectionOf(directory.create(p));
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field).toBe(field);
      expect(await store.scanKeys("*")).toEqual([]);
    });

    it.each(invalidProfiles.filter(([, field]) => field !== "profile.client_id"))(
      "update refuses a change to %s (%s) and keeps the stored profile",
      async (_name, field, p) => {
        await directory.create(base);
        const before = await store.get("profile:alice");
        const err = await rejectionOf(directory.update(p, []));
        expect((err as InvalidArgumentError).field).toBe(field);
        expect(await store.get("profile:alice")).toBe(before);
      },
    );
  });

  describe("create and get", () => {
    it("stores the profile, returns a token once and keeps only its SHA-256", async () => {
      const { profile: created, clientToken } = await directory.create(base);
      expect(clientToken).toMatch(/^uims_[A-Za-z0-9_-]{43}$/);
      expect(created).toEqual({ ...base, createdAtUnixMs: now, updatedAtUnixMs: now });
      expect(await directory.get("alice")).toEqual(created);
      expect(await directory.require("alice")).toEqual(created);

      const hex = createHash("sha256").update(clientToken).digest("hex");
      expect((await store.scanKeys("*")).sort()).toEqual(["profile:alice", "profiles", "profiles-version", `token:${hex}`]);
      expect(await store.get(`token:${hex}`)).toBe("alice");
      expect(await store.get("profile:alice")).not.toContain(clientToken);
      expect(await directory.resolveToken(hashToken(clientToken))).toBe("alice");
    });

    it("ignores the output-only timestamps the caller sends", async () => {
      const { profile: created } = await directory.create(profile({ createdAtUnixMs: 5, updatedAtUnixMs: 6 }));
      expect(created.createdAtUnixMs).toBe(now);
      expect(created.updatedAtUnixMs).toBe(now);
    });

    it("refuses an existing id with ALREADY_EXISTS and leaves no second token behind", async () => {
      await directory.create(base);
      const err = await rejectionOf(directory.create(profile({ displayName: "Mallory" })));
      expect(err).toBeInstanceOf(AlreadyExistsError);
      expect((err as Error).message).toBe('profile "alice" already exists');
      expect(await store.scanKeys("token:*")).toHaveLength(1);
      expect((await directory.get("alice"))?.displayName).toBe("Alice");
    });

    it("lets exactly one of several concurrent creates win", async () => {
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => directory.create(profile({ displayName: `racer ${i}` }))));
      const won = results.filter((r): r is PromiseFulfilledResult<{ profile: Profile; clientToken: string }> => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(7);
      for (const r of lost) expect(r.reason).toBeInstanceOf(AlreadyExistsError);
      const winner = won[0]!.value;
      expect((await directory.get("alice"))?.displayName).toBe(winner.profile.displayName);
      expect(await directory.resolveToken(hashToken(winner.clientToken))).toBe("alice");
      expect(await store.scanKeys("token:*")).toHaveLength(1);
    });

    it("answers null, NOT_FOUND, and getMany in the order asked", async () => {
      await directory.create(base);
      await directory.create(profile({ clientId: "bob", addresses: [], preferredMedia: [] }));
      expect(await directory.get("nobody")).toBeNull();
      expect(await directory.get("Not A Valid Id")).toBeNull();
      const err = await rejectionOf(directory.require("nobody"));
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toBe('profile "nobody" not found');
      const many = await directory.getMany(["bob", "nobody", "alice"]);
      expect(many.map((p) => p?.clientId ?? null)).toEqual(["bob", null, "alice"]);
      expect(await directory.getMany([])).toEqual([]);
    });
  });

  describe("update", () => {
    beforeEach(async () => {
      await directory.create(base);
      now += 60_000;
    });

    it("changes only the fields in the mask and keeps the creation time", async () => {
      const updated = await directory.update(Profile.fromPartial({ clientId: "alice", displayName: "Alice B." }), ["display_name"]);
      expect(updated).toEqual({ ...base, displayName: "Alice B.", createdAtUnixMs: now - 60_000, updatedAtUnixMs: now });
      expect(await directory.get("alice")).toEqual(updated);
    });

    it("changes addresses and preferred media together, validated as a whole", async () => {
      const change = Profile.fromPartial({
        clientId: "alice",
        addresses: [{ medium: MEDIUM_FAX, address: "+4930123456" }],
        preferredMedia: [MEDIUM_FAX],
      });
      const updated = await directory.update(change, ["addresses", "preferred_media"]);
      expect(updated.addresses).toEqual(change.addresses);
      expect(updated.preferredMedia).toEqual([MEDIUM_FAX]);
      expect(updated.displayName).toBe("Alice");

      // Removing the addresses alone would leave preferred media without an address.
      const err = await rejectionOf(directory.update(Profile.fromPartial({ clientId: "alice" }), ["addresses"]));
      expect((err as InvalidArgumentError).field).toBe("profile.preferred_media[0]");
    });

    it("replaces every writable field with an empty mask", async () => {
      const updated = await directory.update(Profile.fromPartial({ clientId: "alice", displayName: "A" }), []);
      expect(updated).toEqual(
        Profile.fromPartial({ clientId: "alice", displayName: "A", createdAtUnixMs: now - 60_000, updatedAtUnixMs: now }),
      );
    });

    it("clears quiet hours and limits when they are in the mask but absent", async () => {
      const updated = await directory.update(Profile.fromPartial({ clientId: "alice" }), ["quiet_hours", "limits"]);
      expect(updated.quietHours).toBeUndefined();
      expect(updated.limits).toBeUndefined();
      expect(updated.addresses).toEqual(base.addresses);
    });

    it("changes single sub-fields of quiet hours and limits", async () => {
      const change = Profile.fromPartial({
        clientId: "alice",
        quietHours: { timeZone: "America/New_York", startMinute: 1 },
        limits: { maxSmsSegments: 9, maxMessagesPerDay: 5 },
      });
      const updated = await directory.update(change, ["quiet_hours.time_zone", "limits.max_sms_segments"]);
      expect(updated.quietHours).toEqual({ ...base.quietHours, timeZone: "America/New_York" });
      expect(updated.limits).toEqual({ ...base.limits, maxSmsSegments: 9 });
    });

    it.each([["client_id"], ["created_at_unix_ms"], ["nickname"], ["limits.nothing"], ["quiet_hours.time_zone.x"], ["display_name.x"]])(
      "refuses the mask path %s as update_mask",
      async (path) => {
        const before = await store.get("profile:alice");
        const err = await rejectionOf(directory.update(Profile.fromPartial({ clientId: "alice", displayName: "X" }), ["display_name", path]));
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field).toBe("update_mask");
        expect(await store.get("profile:alice")).toBe(before);
      },
    );

    it("answers NOT_FOUND for an unknown profile and writes nothing", async () => {
      const err = await rejectionOf(directory.update(Profile.fromPartial({ clientId: "nobody", displayName: "N" }), ["display_name"]));
      expect(err).toBeInstanceOf(NotFoundError);
      expect(await store.scanKeys("profile:*")).toEqual(["profile:alice"]);
    });

    it("refuses an update without a valid client id", async () => {
      expect((await rejectionOf(directory.update(Profile.fromPartial({}), []))) as InvalidArgumentError).toMatchObject({ field: "profile.client_id" });
      expect((await rejectionOf(directory.update(Profile.fromPartial({ clientId: "A" }), []))) as InvalidArgumentError).toMatchObject({
        field: "profile.client_id",
      });
    });

    it("loses no write when updates of different fields race", async () => {
      let conflicts = 0;
      const counting = withOverrides(store, {
        compareAndSet: async (key, expected, next, ttlMs) => {
          const swapped = await store.compareAndSet(key, expected, next, ttlMs);
          if (!swapped) conflicts++;
          return swapped;
        },
      });
      directory = new ProfileDirectory(counting, () => now);
      const changes = [
        directory.update(Profile.fromPartial({ clientId: "alice", displayName: "Racer" }), ["display_name"]),
        directory.update(Profile.fromPartial({ clientId: "alice", sendMedia: [MEDIUM_SMS] }), ["send_media"]),
        directory.update(Profile.fromPartial({ clientId: "alice", limits: { maxMessagesPerDay: 7 } }), ["limits.max_messages_per_day"]),
        directory.update(Profile.fromPartial({ clientId: "alice", quietHours: { timeZone: "Asia/Tokyo" } }), ["quiet_hours.time_zone"]),
      ];
      await Promise.all(changes);
      const stored = await directory.require("alice");
      expect(stored.displayName).toBe("Racer");
      expect(stored.sendMedia).toEqual([MEDIUM_SMS]);
      expect(stored.limits?.maxMessagesPerDay).toBe(7);
      expect(stored.quietHours?.timeZone).toBe("Asia/Tokyo");
      expect(conflicts).toBeGreaterThan(0);
    });

    it("gives up with ABORTED when the record keeps changing under it", async () => {
      const contended = withOverrides(store, { compareAndSet: async () => false });
      const err = await rejectionOf(new ProfileDirectory(contended, () => now).update(Profile.fromPartial({ clientId: "alice", displayName: "X" }), ["display_name"]));
      expect(err).toBeInstanceOf(AbortedError);
    });
  });

  describe("delete", () => {
    it("removes the profile, its token and its index entry", async () => {
      const { clientToken } = await directory.create(base);
      await directory.create(profile({ clientId: "bob", addresses: [], preferredMedia: [] }));
      await directory.delete("alice");
      expect(await directory.get("alice")).toBeNull();
      expect(await directory.resolveToken(hashToken(clientToken))).toBeNull();
      expect(await store.scanKeys("token:*")).toHaveLength(1);
      expect((await directory.list(0, "")).profiles.map((p) => p.clientId)).toEqual(["bob"]);
      expect(await store.sortedCount("profiles")).toBe(1);
    });

    it("answers NOT_FOUND for an unknown or malformed id", async () => {
      const err = await rejectionOf(directory.delete("nobody"));
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toBe('profile "nobody" not found');
      expect(await rejectionOf(directory.delete("No Such"))).toBeInstanceOf(NotFoundError);
    });

    it("a re-created profile gets a new token; the old one stays dead", async () => {
      const first = await directory.create(base);
      await directory.delete("alice");
      const second = await directory.create(base);
      expect(second.clientToken).not.toBe(first.clientToken);
      expect(await directory.resolveToken(hashToken(first.clientToken))).toBeNull();
      expect(await directory.resolveToken(hashToken(second.clientToken))).toBe("alice");
    });
  });

  describe("list", () => {
    const ids = Array.from({ length: 25 }, (_, i) => `client-${String(i).padStart(2, "0")}`);

    beforeEach(async () => {
      // Created out of order: the listing is by id, not by creation.
      for (const id of [...ids].reverse()) await directory.create(Profile.fromPartial({ clientId: id }));
    });

    it("pages through 25 profiles 10 at a time in id order", async () => {
      const pages: string[][] = [];
      let token = "";
      do {
        const page = await directory.list(10, token);
        pages.push(page.profiles.map((p) => p.clientId));
        token = page.nextPageToken;
      } while (token);
      expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
      expect(pages.flat()).toEqual(ids);
    });

    it("uses 100 for page size 0 and ends without a token when the last page is exactly full", async () => {
      const all = await directory.list(0, "");
      expect(all.profiles).toHaveLength(25);
      expect(all.nextPageToken).toBe("");
      const first = await directory.list(20, "");
      const rest = await directory.list(5, first.nextPageToken);
      expect(rest.profiles.map((p) => p.clientId)).toEqual(ids.slice(20));
      expect(rest.nextPageToken).toBe("");
    });

    it("refuses page sizes over 1000 and tokens it did not issue", async () => {
      expect(((await rejectionOf(directory.list(1001, ""))) as InvalidArgumentError).field).toBe("page_size");
      expect(((await rejectionOf(directory.list(10, "!!"))) as InvalidArgumentError).field).toBe("page_token");
      expect(((await rejectionOf(directory.list(10, Buffer.from("Not An Id").toString("base64url")))) as InvalidArgumentError).field).toBe(
        "page_token",
      );
    });

    it("answers an empty page on an empty directory", async () => {
      const emptyStore = testStore(kind);
      try {
        expect(await new ProfileDirectory(emptyStore).list(10, "")).toEqual({ profiles: [], nextPageToken: "" });
      } finally {
        await emptyStore.close();
      }
    });
  });

  describe("tokens", () => {
    it("rotation makes the old token stop at once and the new one work", async () => {
      const { clientToken: old } = await directory.create(base);
      const rotated = await directory.rotateToken("alice");
      expect(rotated).not.toBe(old);
      expect(rotated).toMatch(/^uims_[A-Za-z0-9_-]{43}$/);
      expect(await directory.resolveToken(hashToken(old))).toBeNull();
      expect(await directory.resolveToken(hashToken(rotated))).toBe("alice");
      expect(await store.scanKeys("token:*")).toEqual([`token:${hashToken(rotated).toString("hex")}`]);
      expect(await directory.require("alice")).toEqual({ ...base, createdAtUnixMs: now, updatedAtUnixMs: now });
    });

    it("rotation of an unknown profile answers NOT_FOUND and leaves no token behind", async () => {
      expect(await rejectionOf(directory.rotateToken("nobody"))).toBeInstanceOf(NotFoundError);
      expect(await store.scanKeys("*")).toEqual([]);
    });

    it("resolves only tokens it issued", async () => {
      await directory.create(base);
      expect(await directory.resolveToken(hashToken("uims_guess"))).toBeNull();
      expect(await directory.resolveToken(new Uint8Array(5))).toBeNull();
    });

    it("does not trust a token index entry that the profile does not carry", async () => {
      await directory.create(base);
      const forged = hashToken("uims_forged");
      await store.set(`token:${forged.toString("hex")}`, "alice");
      expect(await directory.resolveToken(forged)).toBeNull();
    });

    it("hashToken is SHA-256 of the token's UTF-8 bytes", () => {
      expect(hashToken("uims_abc").toString("hex")).toBe(createHash("sha256").update("uims_abc", "utf8").digest("hex"));
    });
  });
});
