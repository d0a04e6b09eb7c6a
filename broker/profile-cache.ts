import type { Profile } from "../gen/uims/admin/v1/admin";
import type { ProfileDirectory } from "./profiles";

/**
 * Profiles as routing reads them: every message reads its sender's and its recipient's profile,
 * so found profiles are kept for a moment (`ttlMs`, 1 s by default). An admin change reaches
 * routing within that time on every replica; unknown ids are never cached, so a new profile is
 * routable at once.
 */
export class ProfileCache {
  private readonly entries = new Map<string, { profile: Profile; until: number }>();

  constructor(
    private readonly directory: ProfileDirectory,
    private readonly ttlMs = 1_000,
    private readonly clock: () => number = Date.now,
    private readonly maxEntries = 50_000,
  ) {}

  async get(clientId: string): Promise<Profile | null> {
    const now = this.clock();
    const hit = this.entries.get(clientId);
    if (hit && hit.until > now) return hit.profile;
    const profile = await this.directory.get(clientId);
    if (!profile) {
      this.entries.delete(clientId);
      return null;
    }
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(clientId, { profile, until: now + this.ttlMs });
    return profile;
  }
}
