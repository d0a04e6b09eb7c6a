import { randomUUID } from "node:crypto";
import { keyringFromKeys, randomKeyring } from "../../common/crypto/keys";
import { ReturnPaths } from "./return-path";

describe("return paths", () => {
  const k1 = randomKeyring("k1");
  const paths = new ReturnPaths("postmaster@uims.local", k1);

  test("name their message, within the 64 characters of a local part, and read back in any case", () => {
    const id = randomUUID();
    const address = paths.for(id);
    expect(address).toMatch(/^postmaster\+[0-9a-f]{44}@uims\.local$/);
    expect(address.split("@")[0]!.length).toBeLessThanOrEqual(64);
    expect(paths.messageIdOf(address)).toBe(id);
    expect(paths.messageIdOf(address.toUpperCase())).toBe(id);
  });

  test("a changed id or tag, another local part or domain, or another mesh key is not ours", () => {
    const address = paths.for(randomUUID());
    const [local, domain] = address.split("@") as [string, string];
    const flipped = (at: number) => `${local.slice(0, at)}${local[at] === "0" ? "1" : "0"}${local.slice(at + 1)}@${domain}`;
    expect(paths.messageIdOf(flipped(12))).toBeNull();
    expect(paths.messageIdOf(flipped(local.length - 1))).toBeNull();
    expect(paths.messageIdOf(address.replace("postmaster+", "bounces+"))).toBeNull();
    expect(paths.messageIdOf(address.replace("@uims.local", "@example.org"))).toBeNull();
    expect(paths.messageIdOf("postmaster@uims.local")).toBeNull();
    expect(new ReturnPaths("postmaster@uims.local", randomKeyring("k1")).messageIdOf(address)).toBeNull();
  });

  test("after a key rotation, mail sent under the previous key still bounces back to its message", () => {
    const id = randomUUID();
    const before = paths.for(id);
    const rotated = keyringFromKeys([{ id: "k2", key: Buffer.alloc(32, 7) }, { id: "k1", key: k1.current.key }]);
    expect(new ReturnPaths("postmaster@uims.local", rotated).messageIdOf(before)).toBe(id);
  });

  test("an id that is not a UUID, or a local part too long to carry one, gets the plain bounce address", () => {
    expect(paths.for("not-a-uuid")).toBe("postmaster@uims.local");
    const long = new ReturnPaths(`${"x".repeat(ReturnPaths.maxLocalPart + 1)}@uims.local`, k1);
    expect(long.for(randomUUID())).toBe(`${"x".repeat(ReturnPaths.maxLocalPart + 1)}@uims.local`);
  });
});
