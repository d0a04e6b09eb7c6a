import * as nodeCrypto from "node:crypto";
import { join } from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import type { SessionGrant } from "../../gen/uims/common/v1/auth";
import { MetaInformation, type Release } from "../../gen/uims/common/v1/message";
import { Medium, Priority } from "../../gen/uims/common/v1/types";
import { UnauthenticatedError } from "../errors";
import { createStore, type Store } from "../store";
import { canonicalBytes, hmacSha256, sha256Canonical, type CanonicalField } from "./canonical";
import { metaFields } from "./fields";
import { equalConstantTime, generateSigningKey, keyringFromKeys, macWith, randomKeyring, verifyKeysOf, verifyMacWith } from "./keys";
import { Label } from "./labels";
import { makeRelease, outerDigestValid, releaseIdMatches, releaseSignatureValid, type ReleaseKeys } from "./release";
import { createLogin, grantValid, SESSION_KEY_BYTES, SessionKeyPool, TscsAuthority } from "./tscs";

// ---------------------------------------------------------------------------------------------
// Field enumeration from the .proto itself, so that a field added to MetaInformation later is
// covered by the bit-flip test without anyone editing it.

const PROTO_ROOT = join(__dirname, "..", "..", "proto");
const PACKAGE = "uims.common.v1";
const descriptors = protoLoader.loadSync("uims/common/v1/message.proto", { includeDirs: [PROTO_ROOT] });

interface FieldDescriptor {
  name: string;
  type: string;
  typeName: string;
  label: string;
}

function fieldsOf(typeName: string): FieldDescriptor[] {
  const def = descriptors[`${PACKAGE}.${typeName}`] as { type?: { field: FieldDescriptor[] } } | undefined;
  if (!def?.type) throw new Error(`no message ${typeName} in message.proto`);
  return def.type.field;
}

/** Paths to every scalar field of a message type, nested messages included ("trace.traceparent"). */
function leafPaths(typeName: string, prefix: string[] = []): string[][] {
  return fieldsOf(typeName).flatMap((f) => {
    if (f.label === "LABEL_REPEATED") throw new Error(`${typeName}.${f.name}: repeated fields need their own flip rule`);
    return f.type === "TYPE_MESSAGE" ? leafPaths(f.typeName, [...prefix, f.name]) : [[...prefix, f.name]];
  });
}

type Leaf = string | number | boolean | Uint8Array;

function flipOneBit(value: Leaf): Leaf {
  if (typeof value === "string") {
    if (value.length === 0) throw new Error("cannot flip a bit of an empty string");
    return String.fromCharCode(value.charCodeAt(0) ^ 1) + value.slice(1);
  }
  // Not `^ 1`: that truncates timestamps to 32 bits.
  if (typeof value === "number") return value % 2 === 0 ? value + 1 : value - 1;
  if (typeof value === "boolean") return !value;
  if (value.length === 0) throw new Error("cannot flip a bit of empty bytes");
  const copy = Buffer.from(value);
  copy[0] = copy[0]! ^ 1;
  return copy;
}

function getPath(obj: unknown, path: readonly string[]): Leaf {
  let at: unknown = obj;
  for (const key of path) at = (at as Record<string, unknown>)[key];
  return at as Leaf;
}

/** A copy of `meta` with one bit of the field at `path` flipped. */
function flippedMeta(meta: MetaInformation, path: readonly string[]): MetaInformation {
  const copy = MetaInformation.fromPartial(meta);
  const parent = path.slice(0, -1).reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, copy as unknown as Record<string, unknown>);
  const last = path[path.length - 1]!;
  parent[last] = flipOneBit(parent[last] as Leaf);
  return copy;
}

/** Every field set to a non-default value, as the broker releases it (routing block included). */
function fullMeta(): MetaInformation {
  return {
    messageId: "msg-0001-abcdef",
    idempotencyKey: "idem-42",
    sender: "alice",
    senderAddress: "im:alice",
    recipient: "bob",
    sourceMedium: Medium.MEDIUM_IM,
    originGatewayId: "gw-im-a",
    contentType: "text/plain; charset=utf-8",
    contentSize: 1_234_567,
    contentDigest: Buffer.alloc(32, 0xa5),
    attachmentCount: 2,
    priority: Priority.PRIORITY_HIGH,
    subject: "hello",
    trace: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "vendor=opaque" },
    createdAtUnixMs: 1_700_000_000_000,
    expiresAtUnixMs: 1_700_003_600_000,
    targetMedium: Medium.MEDIUM_SMS,
    targetAddress: "+491701234567",
    destinationGatewayId: "gw-sms-1",
    destinationEndpoint: "10.0.0.5:50051",
    conversion: { sourceContentType: "text/plain; charset=utf-8", targetMedium: Medium.MEDIUM_SMS, targetContentType: "application/vnd.uims.sms", maxSegments: 3 },
    processorId: "proc-1",
    processorEndpoint: "10.0.0.9:50051",
    attempt: 2,
    recipientId: "bob",
    releasedAtUnixMs: 1_700_000_000_123,
  };
}

function releaseKeys(): ReleaseKeys {
  return { k1: randomKeyring("k1-2024"), k2: randomKeyring("k2-2024"), signing: generateSigningKey("sig-2024").key };
}

// ---------------------------------------------------------------------------------------------

describe("canonical encoding", () => {
  const distinct = (cases: Array<[string, CanonicalField[]]>) => {
    const encodings = cases.map(([label, fields]) => canonicalBytes(label, fields).toString("hex"));
    expect(new Set(encodings).size).toBe(cases.length);
    const macs = cases.map(([label, fields]) => hmacSha256(Buffer.alloc(32, 1), label, fields).toString("hex"));
    expect(new Set(macs).size).toBe(cases.length);
  };

  test("moving a boundary between fields changes the encoding", () => {
    distinct([
      ["L", ["ab", "c"]],
      ["L", ["a", "bc"]],
      ["L", ["abc"]],
      ["L", ["abc", ""]],
      ["L", ["", "abc"]],
      ["L", []],
      ["L", [""]],
    ]);
  });

  test("a string, an integer, a boolean and bytes with the same text differ", () => {
    distinct([
      ["L", ["1"]],
      ["L", [1]],
      ["L", [Buffer.from("1")]],
      ["L", [true]],
      ["L", [Buffer.of(1)]],
      ["L", [0]],
      ["L", [false]],
      ["L", [""]],
      ["L", [Buffer.alloc(0)]],
    ]);
  });

  test("labels separate uses, and a label cannot be shifted into the first field", () => {
    distinct([
      [Label.callSubmit, ["x"]],
      [Label.callReport, ["x"]],
      ["ab", ["c"]],
      ["a", ["bc"]],
      ["a", ["b", "c"]],
    ]);
    expect(sha256Canonical(Label.releaseInner, ["x"]).equals(sha256Canonical(Label.releaseOuter, ["x"]))).toBe(false);
  });

  test("a Uint8Array and a Buffer with the same bytes encode alike (both are bytes)", () => {
    expect(canonicalBytes("L", [Uint8Array.of(1, 2, 3)]).equals(canonicalBytes("L", [Buffer.of(1, 2, 3)]))).toBe(true);
  });

  test("integers are 64-bit two's complement and must be safe", () => {
    expect(canonicalBytes("L", [-1]).equals(canonicalBytes("L", [2 ** 53 - 1]))).toBe(false);
    expect(() => canonicalBytes("L", [2 ** 53])).toThrow(RangeError);
    expect(() => canonicalBytes("L", [1.5])).toThrow(RangeError);
  });
});

describe("MACs and keyrings", () => {
  test("verification compares in constant time and fails, without throwing, for unknown key ids and wrong lengths", () => {
    const ring = randomKeyring("k1");
    const { keyId, mac } = macWith(ring, Label.callSubmit, ["a", 1]);
    // The module object keys.ts calls into (a namespace import here would be a copy).
    const spy = jest.spyOn(jest.requireActual<typeof nodeCrypto>("node:crypto"), "timingSafeEqual");
    try {
      expect(verifyMacWith(ring, keyId, Label.callSubmit, ["a", 1], mac)).toBe(true);
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(verifyMacWith(ring, "k-unknown", Label.callSubmit, ["a", 1], mac)).toBe(false);
    expect(verifyMacWith(ring, keyId, Label.callSubmit, ["a", 1], mac.subarray(0, 31))).toBe(false);
    expect(verifyMacWith(ring, keyId, Label.callSubmit, ["a", 1], Buffer.alloc(0))).toBe(false);
    expect(verifyMacWith(ring, keyId, Label.callReport, ["a", 1], mac)).toBe(false);
    expect(equalConstantTime(Buffer.of(1, 2), Buffer.of(1, 2, 3))).toBe(false);
  });

  test("rotation: a MAC made with the previous key verifies once a new key is current; a removed key does not", () => {
    const old = { id: "k-old", key: nodeCrypto.randomBytes(32) };
    const next = { id: "k-new", key: nodeCrypto.randomBytes(32) };
    const before = keyringFromKeys([old]);
    const during = keyringFromKeys([next, old]);
    const after = keyringFromKeys([next]);

    const oldMac = macWith(before, Label.login, ["node", 1]);
    expect(oldMac.keyId).toBe("k-old");
    expect(verifyMacWith(during, oldMac.keyId, Label.login, ["node", 1], oldMac.mac)).toBe(true);
    expect(verifyMacWith(after, oldMac.keyId, Label.login, ["node", 1], oldMac.mac)).toBe(false);

    const newMac = macWith(during, Label.login, ["node", 1]);
    expect(newMac.keyId).toBe("k-new");
    expect(verifyMacWith(after, newMac.keyId, Label.login, ["node", 1], newMac.mac)).toBe(true);
    // A MAC is bound to the key id it names: the old key's MAC under the new id fails.
    expect(verifyMacWith(during, "k-new", Label.login, ["node", 1], oldMac.mac)).toBe(false);
  });

  test("an empty keyring is refused", () => {
    expect(() => keyringFromKeys([])).toThrow("at least one key");
  });
});

describe("releases", () => {
  const keys = releaseKeys();
  const verifyKeys = verifyKeysOf(keys.signing);
  const sessionKey = nodeCrypto.randomBytes(SESSION_KEY_BYTES);
  const meta = fullMeta();
  const release = makeRelease(keys, meta, sessionKey);

  test("inner ID, outer digest and signature round trip", () => {
    expect(release.releaseId).toHaveLength(32);
    expect(release.outerDigest).toHaveLength(32);
    expect(release.signature).toHaveLength(64);
    expect(release).toMatchObject({ signingKeyId: "sig-2024", k2KeyId: "k2-2024" });
    expect(releaseIdMatches(keys.k2, release.k2KeyId, meta, sessionKey, release.releaseId)).toBe(true);
    expect(outerDigestValid(keys.k1, release, sessionKey)).toBe(true);
    expect(releaseSignatureValid(verifyKeys, release)).toBe(true);
    // The release survives the wire.
    const decoded = MetaInformation.decode(MetaInformation.encode(meta).finish());
    expect(releaseSignatureValid(verifyKeys, { ...release, meta: decoded })).toBe(true);
  });

  test("the ID and outer digest are bound to C_ack; the signature is not (any member checks it)", () => {
    const otherKey = nodeCrypto.randomBytes(SESSION_KEY_BYTES);
    expect(outerDigestValid(keys.k1, release, otherKey)).toBe(false);
    expect(releaseIdMatches(keys.k2, release.k2KeyId, meta, otherKey, release.releaseId)).toBe(false);
    const again = makeRelease(keys, meta, otherKey);
    expect(again.releaseId.equals(release.releaseId)).toBe(false);
  });

  test("the bit-flip test covers every field of the generated MetaInformation type", () => {
    const paths = leafPaths("MetaInformation").map((p) => p.join("."));
    const generated = MetaInformation.fromPartial({ trace: {}, conversion: {} }) as unknown as Record<string, unknown>;
    const generatedPaths = Object.entries(generated).flatMap(([k, v]) =>
      v !== null && typeof v === "object" && !(v instanceof Uint8Array) ? Object.keys(v).map((n) => `${k}.${n}`) : [k],
    );
    expect(new Set(paths)).toEqual(new Set(generatedPaths));
    expect(paths).toEqual(expect.arrayContaining(["trace.traceparent", "trace.tracestate", "conversion.targetContentType", "conversion.maxSegments", "contentDigest"]));
    // Every field takes part in the canonical field list, so none can be left out of the MAC.
    expect(metaFields(meta)).toHaveLength(paths.length + 1 /* conversion presence */);
  });

  test.each(leafPaths("MetaInformation").map((p) => [p.join("."), p] as const))("a flipped bit in %s fails the signature, outer digest and ID checks", (_name, path) => {
    const forged = flippedMeta(meta, path);
    expect(getPath(forged, path)).not.toEqual(getPath(meta, path));
    // The flip is a real change on the wire, not a field the encoder ignores.
    expect(Buffer.from(MetaInformation.encode(forged).finish()).equals(Buffer.from(MetaInformation.encode(meta).finish()))).toBe(false);
    const tampered: Release = { ...release, meta: forged };
    expect(releaseSignatureValid(verifyKeys, tampered)).toBe(false);
    expect(outerDigestValid(keys.k1, tampered, sessionKey)).toBe(false);
    expect(releaseIdMatches(keys.k2, release.k2KeyId, forged, sessionKey, release.releaseId)).toBe(false);
  });

  test("dropping the conversion plan (or adding an empty one) breaks the release", () => {
    const { conversion: _dropped, ...withoutConversion } = meta;
    expect(releaseSignatureValid(verifyKeys, { ...release, meta: withoutConversion })).toBe(false);
    const emptyPlan = makeRelease(keys, { ...withoutConversion, conversion: { sourceContentType: "", targetMedium: 0, targetContentType: "", maxSegments: 0 } }, sessionKey);
    expect(releaseSignatureValid(verifyKeys, { ...emptyPlan, meta: withoutConversion })).toBe(false);
  });

  test("a flipped bit in the release's own fields fails the checks", () => {
    const flip = (b: Uint8Array) => flipOneBit(b) as Buffer;
    expect(releaseSignatureValid(verifyKeys, { ...release, releaseId: flip(release.releaseId) })).toBe(false);
    expect(outerDigestValid(keys.k1, { ...release, releaseId: flip(release.releaseId) }, sessionKey)).toBe(false);
    expect(outerDigestValid(keys.k1, { ...release, outerDigest: flip(release.outerDigest) }, sessionKey)).toBe(false);
    expect(releaseSignatureValid(verifyKeys, { ...release, signature: flip(release.signature) })).toBe(false);
    expect(releaseSignatureValid(verifyKeys, { ...release, signingKeyId: "sig-other" })).toBe(false);
    expect(releaseSignatureValid(verifyKeys, { ...release, signature: release.signature.subarray(0, 63) })).toBe(false);
    expect(releaseSignatureValid(verifyKeys, { ...release, meta: undefined })).toBe(false);
  });

  test("a gateway holding K1 cannot forge a release: its digests check out, its signature does not", () => {
    // It knows K1 and C_ack, makes up K2 and an Ed25519 key under the broker's key ids, and
    // sends itself a message the broker never released.
    const rerouted = { ...meta, destinationGatewayId: "gw-rogue", destinationEndpoint: "10.6.6.6:50051" };
    const forger: ReleaseKeys = { k1: keys.k1, k2: randomKeyring(keys.k2.current.id), signing: generateSigningKey(keys.signing.id).key };
    const forged = makeRelease(forger, rerouted, sessionKey);
    expect(outerDigestValid(keys.k1, forged, sessionKey)).toBe(true);
    expect(releaseSignatureValid(verifyKeys, forged)).toBe(false);
    expect(releaseIdMatches(keys.k2, forged.k2KeyId, rerouted, sessionKey, forged.releaseId)).toBe(false);

    // Nor can it graft the broker's genuine signature and ID onto its own meta information.
    const grafted: Release = { ...forged, releaseId: release.releaseId, signature: release.signature };
    expect(releaseSignatureValid(verifyKeys, grafted)).toBe(false);
  });

  test("previous signing keys still verify during a rotation", () => {
    const next = generateSigningKey("sig-2025").key;
    const both = verifyKeysOf(next, keys.signing);
    expect(releaseSignatureValid(both, release)).toBe(true);
    expect(releaseSignatureValid(verifyKeysOf(next), release)).toBe(false);
  });
});

describe("TSCS set-up", () => {
  let store: Store;
  let now: number;
  const k1 = randomKeyring("k1");
  let authority: TscsAuthority;

  beforeEach(() => {
    store = createStore();
    now = 1_700_000_000_000;
    authority = new TscsAuthority({ audience: "broker", k1, store, windowMs: 30_000, sessionKeyTtlMs: 10_000, clock: () => now });
  });

  afterEach(async () => {
    await store.close();
  });

  test("a grant is bound to the caller's login: a grant for another login is refused", async () => {
    const loginA = createLogin(k1, "gw-a", "broker", 2, now);
    const loginB = createLogin(k1, "gw-a", "broker", 2, now);
    const grantA = await authority.setUp(loginA);
    expect(grantA.keys).toHaveLength(2);
    expect(grantValid(k1, loginA, grantA)).toBe(true);
    // Same node, another nonce.
    expect(grantValid(k1, loginB, grantA)).toBe(false);
    // Same nonce, another node.
    expect(grantValid(k1, { ...loginA, key: { ...loginA.key!, nodeId: "gw-b" } }, grantA)).toBe(false);
    // A grant from a callee other than the one asked.
    expect(grantValid(k1, { ...loginA, key: { ...loginA.key!, audience: "gw-x" } }, grantA)).toBe(false);
    // Keys swapped, dropped or re-timed in transit.
    const swapped: SessionGrant = { ...grantA, keys: [{ ...grantA.keys[0]!, key: nodeCrypto.randomBytes(32) }, grantA.keys[1]!] };
    expect(grantValid(k1, loginA, swapped)).toBe(false);
    expect(grantValid(k1, loginA, { ...grantA, keys: grantA.keys.slice(1) })).toBe(false);
    expect(grantValid(k1, loginA, { ...grantA, keys: grantA.keys.map((k) => ({ ...k, expiresAtUnixMs: k.expiresAtUnixMs + 60_000 })) })).toBe(false);
    // Made with a key outside our ring.
    expect(grantValid(randomKeyring("k1"), loginA, grantA)).toBe(false);
  });

  test("SessionKeyPool: concurrent acquirers share one set-up", async () => {
    let setUps = 0;
    const pool = new SessionKeyPool({
      k1,
      nodeId: "gw-a",
      audience: "broker",
      batch: 32,
      clock: () => now,
      setUp: async (login) => {
        setUps++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return authority.setUp(login);
      },
    });
    const keys = await Promise.all(Array.from({ length: 20 }, () => pool.acquire()));
    expect(setUps).toBe(1);
    expect(new Set(keys.map((k) => k.toString("hex"))).size).toBe(20);
    for (const key of keys) expect(key).toHaveLength(SESSION_KEY_BYTES);
  });

  test("SessionKeyPool: keys near expiry are skipped and a new set-up is made", async () => {
    let setUps = 0;
    const pool = new SessionKeyPool({
      k1,
      nodeId: "gw-a",
      audience: "broker",
      batch: 4,
      clock: () => now,
      safetyMarginMs: 2_000,
      setUp: (login) => {
        setUps++;
        return authority.setUp(login);
      },
    });
    const first = await pool.acquire();
    expect(setUps).toBe(1);
    // The remaining three keys now expire in 1.5 s, inside the 2 s margin.
    now += 8_500;
    const second = await pool.acquire();
    expect(setUps).toBe(2);
    expect(second.equals(first)).toBe(false);
  });

  test("SessionKeyPool: a grant that does not answer our login is refused", async () => {
    const foreign = await authority.setUp(createLogin(k1, "gw-a", "broker", 4, now));
    const pool = new SessionKeyPool({ k1, nodeId: "gw-a", audience: "broker", batch: 4, clock: () => now, setUp: async () => foreign });
    await expect(pool.acquire()).rejects.toBeInstanceOf(UnauthenticatedError);
  });
});

describe("canonical encoding of large inputs", () => {
  test("streams large fields without changing a single byte of the encoding", () => {
    const { canonicalBytes, sha256Canonical } = jest.requireActual<typeof import("./canonical")>("./canonical");
    const { createHash } = jest.requireActual<typeof import("node:crypto")>("node:crypto");
    const big = Buffer.alloc(200 * 1024, 7);
    const fields = ["text/plain", "subject", big, 3, true, Buffer.from("small")];
    expect(sha256Canonical("uims.test.v1", fields)).toEqual(createHash("sha256").update(canonicalBytes("uims.test.v1", fields)).digest());
  });
});
