import * as grpc from "@grpc/grpc-js";
import {
  AbortedError,
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  fromCallError,
  GrpcStatusError,
  InvalidArgumentError,
  isRetryable,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  toCallError,
  toServiceError,
  UnauthenticatedError,
  UnavailableError,
  type ErrorLogger,
} from "./errors";

function recordingLogger(): ErrorLogger & { calls: Array<{ level: string; obj: object; msg: string }> } {
  const calls: Array<{ level: string; obj: object; msg: string }> = [];
  return {
    calls,
    warn: (obj, msg) => calls.push({ level: "warn", obj, msg }),
    error: (obj, msg) => calls.push({ level: "error", obj, msg }),
  };
}

class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
}

describe("toServiceError", () => {
  test.each([
    { err: new InvalidArgumentError("recipient", "must not be empty"), code: grpc.status.INVALID_ARGUMENT, details: "recipient: must not be empty" },
    { err: new NotFoundError("no profile for alice"), code: grpc.status.NOT_FOUND, details: "no profile for alice" },
    { err: new AlreadyExistsError("profile alice exists"), code: grpc.status.ALREADY_EXISTS, details: "profile alice exists" },
    { err: new FailedPreconditionError("transaction is closed"), code: grpc.status.FAILED_PRECONDITION, details: "transaction is closed" },
    { err: new PermissionDeniedError("gw-im-1 may not act as gw-sms-1"), code: grpc.status.PERMISSION_DENIED, details: "gw-im-1 may not act as gw-sms-1" },
    { err: new UnauthenticatedError("login MAC does not verify"), code: grpc.status.UNAUTHENTICATED, details: "login MAC does not verify" },
    { err: new ResourceExhaustedError("rate limit"), code: grpc.status.RESOURCE_EXHAUSTED, details: "rate limit" },
    { err: new AbortedError("conflict"), code: grpc.status.ABORTED, details: "conflict" },
    { err: new UnavailableError("no gateway for sms"), code: grpc.status.UNAVAILABLE, details: "no gateway for sms" },
    { err: new DeadlineExceededError("no receipt in time"), code: grpc.status.DEADLINE_EXCEEDED, details: "no receipt in time" },
  ])("$err.name → $details", ({ err, code, details }) => {
    const logger = recordingLogger();
    const status = toServiceError(err, logger);
    expect(status.code).toBe(code);
    expect(status.details).toBe(details);
    expect(status.metadata.getMap()).toEqual({});
    expect(status).toBeInstanceOf(Error);
    expect(toCallError(err)).toEqual({ code, message: details });
    expect(logger.calls).toEqual([]);
  });

  test("domain errors carry their own name and field", () => {
    const err = new InvalidArgumentError("meta.recipient", "must not be empty");
    expect(err.name).toBe("InvalidArgumentError");
    expect(err.field).toBe("meta.recipient");
    expect(err.message).toBe("meta.recipient: must not be empty");
  });

  test("RESOURCE_EXHAUSTED puts retry-after-ms in the trailers", () => {
    const status = toServiceError(new ResourceExhaustedError("too many messages", 1500.2));
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.metadata.get("retry-after-ms")).toEqual(["1501"]);
  });

  test("anything else is INTERNAL, the cause logged and not sent", () => {
    const logger = recordingLogger();
    const cause = new TypeError("cannot read properties of undefined (reading 'secretThing')");
    const status = toServiceError(cause, logger);
    expect(status.code).toBe(grpc.status.INTERNAL);
    expect(status.details).toBe("internal error");
    expect(status.message).not.toContain("secretThing");
    expect(logger.calls).toEqual([{ level: "error", obj: { err: cause }, msg: "internal error" }]);
    expect(toServiceError("a string").code).toBe(grpc.status.INTERNAL);
    expect(toServiceError(undefined).code).toBe(grpc.status.INTERNAL);
    expect(toCallError(new Error("boom"))).toEqual({ code: grpc.status.INTERNAL, message: "internal error" });
  });

  test("a store outage is UNAVAILABLE, matched by name", () => {
    const logger = recordingLogger();
    const status = toServiceError(new StoreUnavailableError("ECONNREFUSED 10.0.0.7:6379"), logger);
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(status.details).toBe("store unavailable");
    expect(logger.calls.map((c) => c.level)).toEqual(["warn"]);
    expect(toCallError(new StoreUnavailableError("down"))).toEqual({ code: grpc.status.UNAVAILABLE, message: "store unavailable" });
  });

  test("transient statuses of downstream calls keep their code, with a generic message", () => {
    const downstream = Object.assign(new Error("14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.1.2.3:50051"), {
      code: grpc.status.UNAVAILABLE,
      details: "No connection established. Last error: connect ECONNREFUSED 10.1.2.3:50051",
      metadata: new grpc.Metadata(),
    });
    const status = toServiceError(downstream);
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(status.details).toBe("upstream unavailable");

    const trailers = new grpc.Metadata();
    trailers.set("retry-after-ms", "250");
    const limited = toServiceError(new GrpcStatusError(grpc.status.RESOURCE_EXHAUSTED, "rate limit", trailers));
    expect(limited.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(limited.metadata.get("retry-after-ms")).toEqual(["250"]);

    expect(toServiceError(fromCallError({ code: grpc.status.DEADLINE_EXCEEDED, message: "late" })).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // A permanent downstream refusal is a fault inside the mesh, not the caller's.
    expect(toServiceError(new GrpcStatusError(grpc.status.INVALID_ARGUMENT, "meta.size: too big")).code).toBe(grpc.status.INTERNAL);
    // Node system errors have string codes and are not statuses.
    expect(toServiceError(Object.assign(new Error("x"), { code: "ECONNRESET" })).code).toBe(grpc.status.INTERNAL);
  });
});

describe("fromCallError", () => {
  test("reads like the error of a unary call", () => {
    const err = fromCallError(toCallError(new InvalidArgumentError("recipient", "must not be empty")));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe("recipient: must not be empty");
    expect(err.message).toBe("3 INVALID_ARGUMENT: recipient: must not be empty");
    expect(err.metadata).toBeInstanceOf(grpc.Metadata);
  });

  test("an invalid code becomes UNKNOWN", () => {
    expect(fromCallError({ code: 0, message: "odd" }).code).toBe(grpc.status.UNKNOWN);
    expect(fromCallError({ code: 99, message: "odd" }).code).toBe(grpc.status.UNKNOWN);
  });

  test("matches what a real unary call rejects with", async () => {
    const service: grpc.ServiceDefinition = {
      fail: {
        path: "/test.Fail/Fail",
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: Buffer) => v,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (v: Buffer) => v,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    const server = new grpc.Server();
    server.addService(service, {
      fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        callback(toServiceError(new ResourceExhaustedError("slow down", 100)));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const Client = grpc.makeGenericClientConstructor(service, "Fail");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const unary = await new Promise<grpc.ServiceError>((resolve) =>
        (client as unknown as { fail(req: Buffer, cb: (e: grpc.ServiceError) => void): void }).fail(Buffer.alloc(0), resolve),
      );
      const multiplexed = fromCallError(toCallError(new ResourceExhaustedError("slow down", 100)));
      expect(multiplexed.code).toBe(unary.code);
      expect(multiplexed.details).toBe(unary.details);
      expect(multiplexed.message).toBe(unary.message);
      expect(unary.metadata.get("retry-after-ms")).toEqual(["100"]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

test("isRetryable", () => {
  expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED].every(isRetryable)).toBe(
    true,
  );
  for (const code of [
    grpc.status.OK,
    grpc.status.INVALID_ARGUMENT,
    grpc.status.NOT_FOUND,
    grpc.status.PERMISSION_DENIED,
    grpc.status.UNAUTHENTICATED,
    grpc.status.INTERNAL,
    grpc.status.FAILED_PRECONDITION,
    grpc.status.CANCELLED,
  ]) {
    expect(isRetryable(code)).toBe(false);
  }
});
