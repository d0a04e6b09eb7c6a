import type * as grpc from "@grpc/grpc-js";

/** The gRPC service name of a ts-proto definition, read from its first method path ("/pkg.Service/Method"). */
export function serviceName(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error("service definition has no methods");
  return first.path.split("/")[1] ?? first.path;
}

/** Methods of `definition` that `implementation` has no handler function for, as "Method (key)". */
export function missingMethods(definition: grpc.ServiceDefinition, implementation: object): string[] {
  const handlers = implementation as Record<string, unknown>;
  const missing: string[] = [];
  for (const [key, method] of Object.entries(definition)) {
    // grpc-js looks a handler up by the definition key, then by originalName (set by proto-loader,
    // not by ts-proto), and silently registers an UNIMPLEMENTED handler when neither exists.
    const originalName = (method as { originalName?: unknown }).originalName;
    const handler = handlers[key] ?? (typeof originalName === "string" ? handlers[originalName] : undefined);
    if (typeof handler !== "function") missing.push(`${method.path.split("/")[2] ?? method.path} (${key})`);
  }
  return missing;
}

/**
 * Throws unless `implementation` has a handler function for every method of `definition`, a generated
 * `XServiceService` from gen/. grpc-js's `addService` accepts a partial implementation and answers the
 * missing methods with UNIMPLEMENTED at run time; this makes that a test failure instead.
 */
export function assertImplementsService(definition: grpc.ServiceDefinition, implementation: object): void {
  const missing = missingMethods(definition, implementation);
  if (missing.length > 0) {
    throw new Error(`${serviceName(definition)} implementation lacks ${missing.length} method(s): ${missing.join(", ")}`);
  }
}
