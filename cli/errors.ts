import { status } from "@grpc/grpc-js";

/** A problem the user can fix (bad option, no running mesh): printed as one line, no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

interface GrpcErrorLike {
  code: number;
  details?: string;
}

export function isGrpcError(err: unknown): err is GrpcErrorLike & Error {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number" && "details" in err;
}

/** "UNAVAILABLE" for 14. */
export function statusName(code: number): string {
  return (status as unknown as Record<number, string>)[code] ?? `code ${code}`;
}

const HINTS: Partial<Record<number, string>> = {
  [status.UNAVAILABLE]: "is the mesh running? Start it with `make run` (or `uims up`)",
  [status.UNAUTHENTICATED]: "the token was refused: check --token / --admin-token, or the mesh was restarted since mesh.json was written",
  [status.DEADLINE_EXCEEDED]: "no answer in time: raise --timeout, or check the servers' logs",
};

/** The lines printed for an error, and whether it was expected (no stack trace) or a bug. */
export function describeError(err: unknown): { message: string; hint?: string; expected: boolean } {
  if (err instanceof CliError) return { message: err.message, ...(err.hint ? { hint: err.hint } : {}), expected: true };
  if (isGrpcError(err)) {
    const hint = HINTS[err.code];
    return { message: `${statusName(err.code)}: ${err.details || "(no details)"}`, ...(hint ? { hint } : {}), expected: true };
  }
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (err instanceof Error && typeof code === "string" && /^E[A-Z]+$/.test(code)) return { message: err.message, expected: true };
  if (err instanceof Error) return { message: err.stack ?? err.message, expected: false };
  return { message: String(err), expected: false };
}
