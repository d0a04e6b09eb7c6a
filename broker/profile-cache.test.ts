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

test("keeps found profiles for the TTL, never caches unknown ids", async () => {
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
