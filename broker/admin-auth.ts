import { createHash, timingSafeEqual } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { UnauthenticatedError } from "../common/errors";

const BEARER = /^Bearer\s+(\S+)\s*$/i;
const EMPTY = /^(Bearer)?\s*$/i;

/**
 * Checks the `authorization: Bearer <admin token>` metadata entry against the SHA-256 of the admin
 * token. Only the hash is held by the broker; the comparison is constant time.
 */
export function requireAdmin(metadata: grpc.Metadata, adminTokenSha256: Buffer): void {
  const values = metadata.get("authorization");
  const value = values[0];
  if (value === undefined || (typeof value === "string" && EMPTY.test(value))) throw new UnauthenticatedError("missing admin token");
  // Several authorization entries are ambiguous: refuse rather than pick one.
  const match = typeof value === "string" && values.length === 1 ? BEARER.exec(value) : null;
  if (!match?.[1]) throw new UnauthenticatedError("admin token is not valid");
  const presented = createHash("sha256").update(match[1], "utf8").digest();
  if (adminTokenSha256.length !== presented.length || !timingSafeEqual(presented, adminTokenSha256)) {
    throw new UnauthenticatedError("admin token is not valid");
  }
}
