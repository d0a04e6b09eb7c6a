import { randomBytes } from "node:crypto";
import { generateSigningKey } from "./keys";

/**
 * Fresh key material for a mesh, as the environment variables the servers read. Used by
 * `uims keys` and by the local mesh that `make run` starts.
 */
export interface MeshSecrets {
  UIMS_K1_KEYS: string;
  UIMS_K2_KEYS: string;
  UIMS_RELEASE_SIGNING_KEY: string;
  UIMS_RELEASE_VERIFY_KEYS: string;
  UIMS_ADMIN_TOKEN: string;
}

export function generateMeshSecrets(keyId = `k${new Date().toISOString().slice(0, 10).replace(/-/g, "")}`): MeshSecrets {
  const { key, seed } = generateSigningKey(keyId);
  return {
    UIMS_K1_KEYS: `${keyId}:${randomBytes(32).toString("base64")}`,
    UIMS_K2_KEYS: `${keyId}:${randomBytes(32).toString("base64")}`,
    UIMS_RELEASE_SIGNING_KEY: `${keyId}:${seed.toString("base64")}`,
    UIMS_RELEASE_VERIFY_KEYS: `${keyId}:${key.publicKeyRaw.toString("base64")}`,
    UIMS_ADMIN_TOKEN: `adm_${randomBytes(24).toString("base64url")}`,
  };
}
