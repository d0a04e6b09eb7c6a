import { Medium } from "../gen/uims/common/v1/types";
import { createStore } from "../common/store";
import { ProfileCache } from "./profile-cache";
import { ProfileDirectory } from "./profiles";

const profile = (clientId: string, displayName = "") => ({
  clientId,
  displayName,
  addresses: [{ medium: Medium.MEDIUM_IM, address: clientId }],
  preferredMedia: [Medium.MEDIUM_IM],
  sendMedia: [],
  createdAtUnixMs: 0,
  updatedAtUnixMs: 0,
});

test("a change reaches the cache within the TTL; unknown ids are never cached", async () => {
  let now = 1_000;
  const directory = new ProfileDirectory(createStore());
  const cache = new ProfileCache(directory, 1_000, () => now);
  expect(await cache.get("dora")).toBeNull();
  await directory.create(profile("dora", "Dora"));
  // Created after a miss: visible at once.
  expect((await cache.get("dora"))?.displayName).toBe("Dora");
  await directory.update(profile("dora", "Dora B."), ["display_name"]);
  expect((await cache.get("dora"))?.displayName).toBe("Dora");
  now += 1_001;
  expect((await cache.get("dora"))?.displayName).toBe("Dora B.");
  await directory.delete("dora");
  now += 1_001;
  expect(await cache.get("dora")).toBeNull();
});

test("a profile nobody changes is read from the store once; a change anywhere drops the cache", async () => {
  let now = 1_000;
  const directory = new ProfileDirectory(createStore());
  await directory.create(profile("erin", "Erin"));
  await directory.create(profile("finn", "Finn"));
  let reads = 0;
  let versionReads = 0;
  const counted = {
    get: (id: string) => {
      reads++;
      return directory.get(id);
    },
    version: () => {
      versionReads++;
      return directory.version();
    },
  };
  const cache = new ProfileCache(counted, 1_000, () => now);
  for (let i = 0; i < 50; i++) {
    expect((await cache.get("erin"))?.displayName).toBe("Erin");
    now += 100;
  }
  // Five seconds of use: one profile read, one version look per second.
  expect(reads).toBe(1);
  expect(versionReads).toBe(5);
  // Finn's change drops Erin's entry too (one version for all): she is read again once.
  await directory.update(profile("finn", "Finn B."), ["display_name"]);
  now += 1_000;
  expect((await cache.get("erin"))?.displayName).toBe("Erin");
  expect((await cache.get("finn"))?.displayName).toBe("Finn B.");
  expect(reads).toBe(3);
});

test("a read that began before the cache was dropped does not put its old profile back", async () => {
  let now = 0;
  const directory = new ProfileDirectory(createStore());
  await directory.create(profile("gus", "Gus"));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let first = true;
  const slow = {
    get: async (id: string) => {
      const result = await directory.get(id);
      if (first) {
        first = false;
        await gate;
      }
      return result;
    },
    version: () => directory.version(),
  };
  const cache = new ProfileCache(slow, 1_000, () => now);
  const stale = cache.get("gus");
  await new Promise((r) => setTimeout(r, 10));
  await directory.update(profile("gus", "Gus B."), ["display_name"]);
  now += 1_001;
  expect((await cache.get("gus"))?.displayName).toBe("Gus B.");
  release();
  expect((await stale)?.displayName).toBe("Gus");
  expect((await cache.get("gus"))?.displayName).toBe("Gus B.");
});
