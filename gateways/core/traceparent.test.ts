import { traceparentFor } from "./origin";

const W3C = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;

test("a client's valid traceparent is kept; a missing or malformed one is replaced by a fresh one", () => {
  const given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  expect(traceparentFor(given)).toBe(given);
  const fresh = [traceparentFor(undefined), traceparentFor(""), traceparentFor("00-zz-1-01")];
  for (const t of fresh) expect(t).toMatch(W3C);
  expect(new Set(fresh).size).toBe(3);
  // Trace id and parent id are independent parts, not one repeated.
  const [, traceId, parentId] = fresh[0]!.split("-");
  expect(traceId!.includes(parentId!)).toBe(false);
});
