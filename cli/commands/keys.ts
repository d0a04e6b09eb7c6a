import { generateMeshSecrets } from "../../common/crypto/secrets";
import { CliError } from "../errors";

/** Fresh mesh secrets as NAME=value lines, e.g. for `kubectl create secret generic --from-env-file`. */
export function keys(opts: { keyId?: string }): void {
  if (opts.keyId !== undefined && !/^[A-Za-z0-9._-]{1,32}$/.test(opts.keyId)) throw new CliError(`--key-id "${opts.keyId}": 1 to 32 of A-Z, a-z, 0-9, '.', '_', '-'`);
  const secrets = opts.keyId !== undefined ? generateMeshSecrets(opts.keyId) : generateMeshSecrets();
  process.stdout.write(`${Object.entries(secrets).map(([name, value]) => `${name}=${value}`).join("\n")}\n`);
}
