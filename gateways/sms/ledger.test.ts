import { createStore } from "../../common/store";
import { verdictOf, type Receipt } from "./dlr";
import { MtLedger } from "./ledger";

const receipt = (smscMessageId: string, state: string, error = "000"): Receipt => ({ smscMessageId, state, error, verdict: verdictOf(state) });

describe("MT ledger", () => {
  const expires = Date.now() + 3_600_000;

  async function submittedMessage(parts: number) {
    const ledger = new MtLedger(createStore(), 60_000);
    await ledger.open("m1", 1, parts, 100 * parts, expires);
    for (let i = 1; i <= parts; i++) await ledger.submitted("m1", 1, i, `s${i}`);
    return ledger;
  }

  test("delivered once every part is delivered, whatever the order", async () => {
    const ledger = await submittedMessage(3);
    for (const id of ["s3", "s1"]) {
      const r = await ledger.applyReceipt((await ledger.lookup(id))!, receipt(id, "DELIVRD"));
      expect(r?.verdict).toBeUndefined();
    }
    const last = await ledger.applyReceipt((await ledger.lookup("s2"))!, receipt("s2", "DELIVRD"));
    expect(last?.verdict).toEqual({ kind: "delivered" });
    expect(last?.parts.map((p) => p.state)).toEqual(["delivered", "delivered", "delivered"]);
  });

  test("failed as soon as one part fails; the first failure is the verdict", async () => {
    const ledger = await submittedMessage(3);
    await ledger.applyReceipt((await ledger.lookup("s1"))!, receipt("s1", "ENROUTE"));
    const failed = await ledger.applyReceipt((await ledger.lookup("s2"))!, receipt("s2", "UNDELIV", "001"));
    expect(failed?.verdict).toEqual({ kind: "failed", permanent: true, reason: "part 2 of 3: UNDELIV (err 001)" });
    const later = await ledger.applyReceipt((await ledger.lookup("s3"))!, receipt("s3", "EXPIRED"));
    expect(later?.verdict).toEqual(failed?.verdict);
    const delivered = await ledger.applyReceipt((await ledger.lookup("s1"))!, receipt("s1", "DELIVRD"));
    expect(delivered?.verdict?.kind).toBe("failed");
  });

  test("a receipt for an earlier attempt does not touch the current one", async () => {
    const ledger = await submittedMessage(1);
    const ref = (await ledger.lookup("s1"))!;
    await ledger.open("m1", 2, 1, 100, expires);
    expect(await ledger.applyReceipt(ref, receipt("s1", "DELIVRD"))).toBeNull();
    expect((await ledger.get("m1"))?.parts[0]?.state).toBe("pending");
  });

  test("open is idempotent for an attempt; a part is recorded submitted once", async () => {
    const ledger = await submittedMessage(2);
    const again = await ledger.open("m1", 1, 2, 200, expires);
    expect(again.parts.map((p) => p.smscMessageId)).toEqual(["s1", "s2"]);
    await ledger.submitted("m1", 1, 1, "other");
    expect((await ledger.get("m1"))?.parts[0]?.smscMessageId).toBe("s1");
  });

  test("lookup accepts the decimal form of a hexadecimal id", async () => {
    const ledger = new MtLedger(createStore(), 60_000);
    await ledger.open("m2", 1, 1, 10, expires);
    await ledger.submitted("m2", 1, 1, "2a001");
    expect(await ledger.lookup("172033")).toEqual({ messageId: "m2", attempt: 1, part: 1 });
    expect(await ledger.lookup("nope")).toBeNull();
  });
});
