import * as grpc from "@grpc/grpc-js";

/** Where `toServiceError`/`toCallError` log causes; a pino logger fits. */
export interface ErrorLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Trailing metadata key telling a caller when to retry a RESOURCE_EXHAUSTED call. */
export const RETRY_AFTER_MS_KEY = "retry-after-ms";

/** A domain error that maps to one gRPC status; its message is sent to the caller as is. */
export abstract class DomainError extends Error {
  abstract readonly code: grpc.status;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A field of the request is missing or malformed. Details read "field: message". */
export class InvalidArgumentError extends DomainError {
  readonly code = grpc.status.INVALID_ARGUMENT;

  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export class NotFoundError extends DomainError {
  readonly code = grpc.status.NOT_FOUND;
}

export class AlreadyExistsError extends DomainError {
  readonly code = grpc.status.ALREADY_EXISTS;
}

/** The system is not in the state the call needs (e.g. a transaction already closed). */
export class FailedPreconditionError extends DomainError {
  readonly code = grpc.status.FAILED_PRECONDITION;
}

export class PermissionDeniedError extends DomainError {
  readonly code = grpc.status.PERMISSION_DENIED;
}

export class UnauthenticatedError extends DomainError {
  readonly code = grpc.status.UNAUTHENTICATED;
}

/** A rate or size limit was hit; `retryAfterMs` goes to the `retry-after-ms` trailer. */
export class ResourceExhaustedError extends DomainError {
  readonly code = grpc.status.RESOURCE_EXHAUSTED;

  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** A concurrency conflict the caller may retry (e.g. a lost compare-and-set). */
export class AbortedError extends DomainError {
  readonly code = grpc.status.ABORTED;
}

export class UnavailableError extends DomainError {
  readonly code = grpc.status.UNAVAILABLE;
}

export class DeadlineExceededError extends DomainError {
  readonly code = grpc.status.DEADLINE_EXCEEDED;
}

/**
 * A gRPC status received from a peer: what a grpc-js client call rejects with, and what
 * `fromCallError` rebuilds from an error item of a multiplexed stream.
 */
export class GrpcStatusError extends Error implements grpc.ServiceError {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata;

  constructor(code: grpc.status, details: string, metadata = new grpc.Metadata()) {
    // Same message shape as grpc-js client errors, so both transports read alike.
    super(`${code} ${grpc.status[code] ?? "UNKNOWN"}: ${details}`);
    this.name = "GrpcStatusError";
    this.code = code;
    this.details = details;
    this.metadata = metadata;
  }
}

/**
 * A refusal from another mesh member that the original caller can act on (an unknown
 * recipient, a missing right, a bad field), passed on with its code and reason.
 */
export class RelayedRefusal extends DomainError {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const RELAYABLE = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ALREADY_EXISTS,
]);

/** Turns a peer's refusal that the caller can act on into a RelayedRefusal; anything else is returned as it is. */
export function relayRefusal(err: unknown): unknown {
  return isGrpcStatus(err) && RELAYABLE.has(err.code) ? new RelayedRefusal(err.code, err.details) : err;
}

const PASSED_THROUGH: ReadonlyMap<grpc.status, string> = new Map([
  [grpc.status.UNAVAILABLE, "upstream unavailable"],
  [grpc.status.DEADLINE_EXCEEDED, "upstream deadline exceeded"],
  [grpc.status.RESOURCE_EXHAUSTED, "upstream resource exhausted"],
  [grpc.status.ABORTED, "upstream aborted"],
  [grpc.status.CANCELLED, "upstream cancelled"],
]);

interface Mapped {
  code: grpc.status;
  details: string;
  retryAfterMs?: number;
}

function classify(err: unknown, logger: ErrorLogger | undefined): Mapped {
  if (err instanceof DomainError) {
    if (err instanceof ResourceExhaustedError && err.retryAfterMs !== undefined) {
      return { code: err.code, details: err.message, retryAfterMs: err.retryAfterMs };
    }
    return { code: err.code, details: err.message };
  }
  if (err instanceof Error && err.name === "StoreUnavailableError") {
    logger?.warn({ err }, "store unavailable");
    return { code: grpc.status.UNAVAILABLE, details: "store unavailable" };
  }
  if (isGrpcStatus(err)) {
    // A status from a downstream call: transient ones keep their code so the caller retries
    // (or re-routes); any other one means a bug or a misconfiguration inside the mesh, which the
    // original caller cannot fix, so it becomes INTERNAL like any unexpected error.
    const generic = PASSED_THROUGH.get(err.code);
    if (generic !== undefined) {
      logger?.warn({ err }, generic);
      const retryAfter = Number(err.metadata.get(RETRY_AFTER_MS_KEY)[0]);
      const mapped: Mapped = { code: err.code, details: generic };
      if (err.code === grpc.status.RESOURCE_EXHAUSTED && Number.isFinite(retryAfter)) mapped.retryAfterMs = retryAfter;
      return mapped;
    }
  }
  logger?.error({ err }, "internal error");
  return { code: grpc.status.INTERNAL, details: "internal error" };
}

function isGrpcStatus(err: unknown): err is grpc.ServiceError {
  if (!(err instanceof Error)) return false;
  const { code, metadata } = err as Partial<grpc.ServiceError>;
  return typeof code === "number" && Number.isInteger(code) && code > 0 && code <= 16 && metadata instanceof grpc.Metadata;
}

/**
 * The one mapping from anything thrown in a handler to the gRPC status the caller gets.
 * Domain errors keep their code and message; a store outage is UNAVAILABLE "store unavailable";
 * transient statuses from downstream calls keep their code with a generic message; anything
 * else is INTERNAL "internal error", with the cause logged and never sent.
 * The result fits `callback(err)` of unary handlers and `call.destroy(err)` of streaming ones.
 */
export function toServiceError(err: unknown, logger?: ErrorLogger): grpc.ServiceError {
  const mapped = classify(err, logger);
  const metadata = new grpc.Metadata();
  if (mapped.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_MS_KEY, String(Math.max(0, Math.ceil(mapped.retryAfterMs))));
  return new GrpcStatusError(mapped.code, mapped.details, metadata);
}

/** The same mapping for one error item of a multiplexed stream (`uims.common.v1.CallError`). */
export function toCallError(err: unknown, logger?: ErrorLogger): { code: number; message: string } {
  const mapped = classify(err, logger);
  return { code: mapped.code, message: mapped.details };
}

/**
 * Rebuilds what a unary call would have rejected with from a multiplexed stream's error item,
 * so callers handle both transports alike (`err.code`, `err.details`).
 */
export function fromCallError(callError: { code: number; message: string }): GrpcStatusError {
  const valid = Number.isInteger(callError.code) && callError.code > 0 && callError.code <= 16;
  return valid
    ? new GrpcStatusError(callError.code, callError.message)
    : new GrpcStatusError(grpc.status.UNKNOWN, `invalid status code ${callError.code}: ${callError.message}`);
}

/** Codes worth retrying (after backoff, or on another replica). */
export function isRetryable(code: number): boolean {
  return (
    code === grpc.status.UNAVAILABLE ||
    code === grpc.status.DEADLINE_EXCEEDED ||
    code === grpc.status.RESOURCE_EXHAUSTED ||
    code === grpc.status.ABORTED
  );
}
