import type { Profile } from "../gen/uims/admin/v1/admin";
import type { ProfileDirectory } from "./profiles";

/**
 * Profiles as routing reads them: every message needs its sender's and its recipient's profile.
 * Found profiles are kept until the directory's version changes (every create, update and
 * delete raises it); the version is read at most every `ttlMs` (1 s by default), so an admin
 * change reaches routing within that time on every replica, while a profile nobody changes is
 * read from the store once. Unknown ids are never cached, so a new profile is routable at once.
 */
export class ProfileCache {
  private readonly entries = new Map<string, Profile>();
  private version: string | null = null;
  private checkedAt = -Infinity;
  private checking: Promise<void> | null = null;
  /** Raised whenever the entries are dropped: a read that began before keeps its result to itself. */
  private generation = 0;

  constructor(
    private readonly directory: Pick<ProfileDirectory, "get" | "version">,
    private readonly ttlMs = 1_000,
    private readonly clock: () => number = Date.now,
    private readonly maxEntries = 50_000,
  ) {}

  async get(clientId: string): Promise<Profile | null> {
    await this.current();
    const hit = this.entries.get(clientId);
    if (hit) return hit;
    const generation = this.generation;
    const profile = await this.directory.get(clientId);
    if (!profile || generation !== this.generation) return profile;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(clientId, profile);
    return profile;
  }

  /** Drops every entry when the directory changed since the last look (one look per `ttlMs`). */
  private current(): Promise<void> | undefined {
    if (this.clock() - this.checkedAt < this.ttlMs) return undefined;
    this.checking ??= this.directory
      .version()
      .then((version) => {
        if (version !== this.version) {
          this.entries.clear();
          this.generation++;
          this.version = version;
        }
        this.checkedAt = this.clock();
      })
      .finally(() => {
        this.checking = null;
      });
    return this.checking;
  }
}
