import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContractCopy, REPO_ROOT, run, type RunResult } from "./contract-tree";

const SCRIPT = join(REPO_ROOT, "scripts", "check-generated.sh");
const STALE = "gen/ is stale: run 'make generate' and commit the result";

function checkGenerated(tree?: string): RunResult {
  return run(SCRIPT, tree === undefined ? [] : [tree], REPO_ROOT);
}

test("gen/ in the repository is what proto/ generates", () => {
  const result = checkGenerated();
  if (result.status !== 0) throw new Error(`scripts/check-generated.sh failed:\n${result.output}`);
  expect(result.stdout).toContain("gen/ is up to date");
});

describe("scripts/check-generated.sh on a copy of the tree", () => {
  let copy: ContractCopy;
  beforeEach(() => {
    copy = new ContractCopy();
  });
  afterEach(() => {
    copy.remove();
  });

  test("passes on an unmodified copy", () => {
    const result = checkGenerated(copy.dir);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("gen/ is up to date");
  });

  test("fails when a generated file was edited by hand", () => {
    appendFileSync(join(copy.dir, "gen/uims/broker/v1/broker.ts"), "\nexport const handEdited = true;\n");
    const result = checkGenerated(copy.dir);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(STALE);
    expect(result.stdout).toContain("export const handEdited = true;");
  });

  test("fails when gen/ holds a file that proto/ does not generate", () => {
    writeFileSync(join(copy.dir, "gen/uims/broker/v1/leftover.ts"), "export {};\n");
    const result = checkGenerated(copy.dir);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(STALE);
    expect(result.stdout).toMatch(/Only in .*gen\/uims\/broker\/v1: leftover\.ts/);
  });

  test("fails when a proto changed without regenerating, and passes again after buf generate", () => {
    copy.replace(
      "proto/uims/broker/v1/broker.proto",
      "  string detail = 5;\n}",
      "  string detail = 5;\n  // Messages queued at the node now.\n  uint32 queued = 6;\n}",
    );
    const stale = checkGenerated(copy.dir);
    expect(stale.status).not.toBe(0);
    expect(stale.stderr).toContain(STALE);
    expect(stale.stdout).toContain("queued");

    const generate = copy.buf(["generate"]);
    if (generate.status !== 0) throw new Error(`buf generate failed in the copy:\n${generate.output}`);
    expect(checkGenerated(copy.dir).status).toBe(0);
  });
});
