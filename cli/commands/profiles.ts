import type { ContactAddress, Profile } from "../../gen/uims/admin/v1/admin";
import { Medium } from "../../gen/uims/common/v1/types";
import { addressProblem, CLIENT_ID_PATTERN, formatAddress, mediumName } from "../../common/addresses";
import { connectAdmin, type Context } from "../connect";
import { introduce } from "../introduce";
import { CliError } from "../errors";
import { bold, dim, formatTime, green, keyValues, mediaList, table, yellow } from "../format";
import { formatQuietHours, parseMediaList, parseQuietHours } from "../parse";
import { pickHomeGateway, readState, resolveAdmin, statePath, updateState, type AdminOptions } from "../state";

export interface AddProfileOptions extends AdminOptions {
  name?: string;
  im?: boolean;
  sms?: string;
  email?: string;
  voice?: string;
  fax?: string;
  prefer?: string;
  quiet?: string;
  tz?: string;
}

function checkClientId(id: string): void {
  if (!CLIENT_ID_PATTERN.test(id)) throw new CliError(`"${id}" is not a client id: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit`);
}

/** The profile `profiles add` asks for; without any address, an im client. */
export function profileFromOptions(clientId: string, opts: AddProfileOptions): Profile {
  checkClientId(clientId);
  const addresses: ContactAddress[] = [];
  const add = (medium: Medium, address: string | undefined, flag: string) => {
    if (address === undefined) return;
    const problem = addressProblem(medium, address);
    if (problem) throw new CliError(`${flag} "${address}": ${problem}`);
    addresses.push({ medium, address });
  };
  const noAddress = !opts.im && [opts.sms, opts.email, opts.voice, opts.fax].every((a) => a === undefined);
  if (opts.im || noAddress) addresses.push({ medium: Medium.MEDIUM_IM, address: clientId });
  add(Medium.MEDIUM_SMS, opts.sms, "--sms");
  add(Medium.MEDIUM_EMAIL, opts.email, "--email");
  add(Medium.MEDIUM_VOICE, opts.voice, "--voice");
  add(Medium.MEDIUM_FAX, opts.fax, "--fax");
  const preferredMedia = opts.prefer !== undefined ? parseMediaList(opts.prefer) : addresses.map((a) => a.medium);
  for (const m of preferredMedia) {
    if (!addresses.some((a) => a.medium === m)) throw new CliError(`--prefer names ${mediumName(m)}, but the profile has no ${mediumName(m)} address (add --${m === Medium.MEDIUM_EMAIL ? "email" : mediumName(m)})`);
  }
  if (opts.tz !== undefined && opts.quiet === undefined) throw new CliError("--tz is the time zone of --quiet: give both");
  const profile: Profile = { clientId, displayName: opts.name ?? "", addresses, preferredMedia, sendMedia: [], createdAtUnixMs: 0, updatedAtUnixMs: 0 };
  if (opts.quiet !== undefined) {
    const q = parseQuietHours(opts.quiet);
    profile.quietHours = { startMinute: q.startMinute, endMinute: q.endMinute, timeZone: opts.tz ?? "", media: [] };
  }
  return profile;
}

function addressList(p: Profile): string {
  return p.addresses.length === 0 ? "-" : p.addresses.map((a) => formatAddress(a.medium, a.address)).join(", ");
}

function quietText(p: Profile): string {
  const q = p.quietHours;
  if (!q) return "-";
  const media = q.media.length > 0 ? ` for ${mediaList(q.media)}` : "";
  return `${formatQuietHours(q.startMinute, q.endMinute)} ${q.timeZone || "UTC"}${media}`;
}

export function formatProfile(p: Profile): string {
  const limits = p.limits;
  const limitText = limits
    ? [
        limits.maxMessagesPerDay ? `${limits.maxMessagesPerDay} messages/day` : "",
        limits.maxSmsSegments ? `${limits.maxSmsSegments} SMS segments` : "",
        limits.maxPayloadBytes ? `${limits.maxPayloadBytes} bytes/message` : "",
      ]
        .filter(Boolean)
        .join(", ") || "none"
    : "none";
  return keyValues([
    ["client", bold(p.clientId)],
    ["name", p.displayName || "-"],
    ["addresses", addressList(p)],
    ["preferred", mediaList(p.preferredMedia)],
    ["quiet hours", quietText(p)],
    ["limits", limitText],
    ["may send to", p.sendMedia.length > 0 ? mediaList(p.sendMedia) : "every medium"],
    ["created", formatTime(p.createdAtUnixMs)],
    ["updated", formatTime(p.updatedAtUnixMs)],
  ]);
}

/**
 * Stores a client's token in mesh.json, so that `--as <id>` works, when the profile was made on
 * the mesh that file describes. Returns the client's home gateway then.
 */
function rememberToken(ctx: Context, brokerEndpoint: string, clientId: string, token: string): string | undefined {
  const state = readState(ctx.stateDir);
  if (!state || state.broker.endpoint !== brokerEndpoint) return undefined;
  const home = state.clients[clientId]?.gateway ?? pickHomeGateway(state);
  if (!home) return undefined;
  updateState(ctx.stateDir, (s) => {
    s.clients[clientId] = { token, gateway: home };
  });
  return home;
}

function printToken(ctx: Context, brokerEndpoint: string, clientId: string, token: string): string | undefined {
  process.stdout.write(`${keyValues([["token", token]])}\n`);
  const home = rememberToken(ctx, brokerEndpoint, clientId, token);
  if (home) process.stdout.write(dim(`stored in ${statePath(ctx.stateDir)}: use --as ${clientId} (connects to ${home})\n`));
  else process.stdout.write(yellow("shown only now: store it safely (the mesh keeps only its hash)\n"));
  return home;
}

export async function addProfile(clientId: string, opts: AddProfileOptions, ctx: Context): Promise<void> {
  const profile = profileFromOptions(clientId, opts);
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.createProfile, { profile });
    process.stdout.write(`${green("created")}\n${formatProfile(res.profile ?? profile)}\n`);
    const home = printToken(ctx, admin.endpoint, clientId, res.clientToken);
    const endpoint = home ? readState(ctx.stateDir)?.gateways[home]?.clientEndpoint : undefined;
    if (home && endpoint && profile.addresses.some((a) => a.medium === Medium.MEDIUM_IM)) await introduce(admin, ctx, clientId, endpoint, res.clientToken, home);
  } finally {
    admin.close();
  }
}

export async function showProfile(clientId: string, opts: AdminOptions, ctx: Context): Promise<void> {
  checkClientId(clientId);
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.getProfile, { clientId });
    if (!res.profile) throw new CliError(`the broker returned no profile for "${clientId}"`);
    process.stdout.write(`${formatProfile(res.profile)}\n`);
  } finally {
    admin.close();
  }
}

export async function listProfiles(opts: AdminOptions, ctx: Context): Promise<void> {
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const profiles: Profile[] = [];
    let pageToken = "";
    do {
      const page = await admin.call((c) => c.listProfiles, { pageSize: 1000, pageToken });
      profiles.push(...page.profiles);
      pageToken = page.nextPageToken;
    } while (pageToken);
    const state = readState(ctx.stateDir);
    const rows = profiles.map((p) => [p.clientId, p.displayName || "-", addressList(p), mediaList(p.preferredMedia), quietText(p), state?.clients[p.clientId]?.gateway ?? "-"]);
    process.stdout.write(`${table(["client", "name", "addresses", "preferred", "quiet hours", "--as on"], rows)}\n`);
  } finally {
    admin.close();
  }
}

export async function deleteProfile(clientId: string, opts: AdminOptions, ctx: Context): Promise<void> {
  checkClientId(clientId);
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    await admin.call((c) => c.deleteProfile, { clientId });
    updateState(ctx.stateDir, (state) => {
      delete state.clients[clientId];
    });
    process.stdout.write(`${green("deleted")} ${clientId}\n`);
  } finally {
    admin.close();
  }
}

export async function rotateToken(clientId: string, opts: AdminOptions, ctx: Context): Promise<void> {
  checkClientId(clientId);
  const admin = connectAdmin(resolveAdmin(opts, ctx.stateDir), ctx);
  try {
    const res = await admin.call((c) => c.rotateClientToken, { clientId });
    process.stdout.write(`${green("rotated")}: the old token of ${clientId} no longer works (gateways may accept it for up to their TOKEN_CACHE_MS)\n`);
    printToken(ctx, admin.endpoint, clientId, res.clientToken);
  } finally {
    admin.close();
  }
}
