import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The repository root: buf.gen.yaml resolves its plugin path against the cwd, so every buf call runs from a root. */
export const REPO_ROOT = resolve(__dirname, "..", "..");
export const BUF = join(REPO_ROOT, "node_modules", ".bin", "buf");
export const RELEASED_IMAGE = "proto/released.binpb";

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for assertions that do not care which stream a tool used. */
  output: string;
}

export function run(command: string, args: readonly string[], cwd: string, input?: string | Buffer): RunResult {
  const result = spawnSync(command, args, { cwd, input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`cannot run ${command}: ${result.error.message}`);
  const stdout = result.stdout ?? "";
  const stderr = result.stderr ?? "";
  return { status: result.status ?? -1, stdout, stderr, output: `${stdout}\n${stderr}` };
}

export function buf(args: readonly string[], cwd: string = REPO_ROOT): RunResult {
  return run(BUF, args, cwd);
}

/** `buf build` of the contract in `cwd` as a binary FileDescriptorSet (with imports, without source info). */
export function bufImage(cwd: string = REPO_ROOT): Buffer {
  const result = spawnSync(BUF, ["build", "--exclude-source-info", "-o", "-#format=binpb"], { cwd, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`cannot run buf: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`buf build failed in ${cwd}:\n${result.stderr.toString()}`);
  return result.stdout;
}

/**
 * A throwaway copy of the contract (proto/ with the released image, buf.yaml, buf.gen.yaml, gen/) to break on purpose.
 * The ts-proto plugin is linked the way scripts/check-generated.sh links it, so `buf generate` works in the copy.
 */
export class ContractCopy {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "uims-contract-"));
    for (const entry of ["proto", "gen", "buf.yaml", "buf.gen.yaml"]) {
      cpSync(join(REPO_ROOT, entry), join(this.dir, entry), { recursive: true });
    }
    mkdirSync(join(this.dir, "node_modules", ".bin"), { recursive: true });
    symlinkSync(
      join(REPO_ROOT, "node_modules", ".bin", "protoc-gen-ts_proto"),
      join(this.dir, "node_modules", ".bin", "protoc-gen-ts_proto"),
    );
  }

  read(relativePath: string): string {
    return readFileSync(join(this.dir, relativePath), "utf8");
  }

  write(relativePath: string, text: string): void {
    writeFileSync(join(this.dir, relativePath), text);
  }

  /** Replaces exactly one occurrence of `from`, so that a test cannot silently edit nothing. */
  replace(relativePath: string, from: string | RegExp, to: string): void {
    const text = this.read(relativePath);
    const matches = typeof from === "string" ? text.split(from).length - 1 : (text.match(new RegExp(from, "g")) ?? []).length;
    if (matches !== 1) throw new Error(`expected one match of ${String(from)} in ${relativePath}, found ${matches}`);
    this.write(relativePath, text.replace(from, to));
  }

  buf(args: readonly string[]): RunResult {
    return buf(args, this.dir);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
