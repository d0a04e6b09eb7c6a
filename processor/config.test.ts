import { ConfigError } from "../common/config";
import { generateMeshSecrets } from "../common/crypto/secrets";
import { loadProcessorConfig } from "./config";

const secrets = generateMeshSecrets();
const base = { NODE_ID: "proc-1", BROKER_ADDR: "127.0.0.1:50051", UIMS_K1_KEYS: secrets.UIMS_K1_KEYS, UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS };

describe("processor configuration", () => {
  test("defaults", () => {
    const config = loadProcessorConfig(base);
    expect(config).toMatchObject({ nodeId: "proc-1", mailDomain: "uims.local", maxPayloadBytes: 8 * 1024 * 1024, advertiseAddr: "127.0.0.1:50051", capacity: 10_000 });
    expect(config.brokerAddr).toBe("127.0.0.1:50051");
    expect(config.verifyKeys.size).toBe(1);
  });

  test("MAIL_DOMAIN, MAX_PAYLOAD_BYTES and ADVERTISE_ADDR", () => {
    const config = loadProcessorConfig({ ...base, MAIL_DOMAIN: "Mesh.Example.NET", MAX_PAYLOAD_BYTES: "65536", ADVERTISE_ADDR: "proc-1.uims:50051" });
    expect(config).toMatchObject({ mailDomain: "mesh.example.net", maxPayloadBytes: 65536, advertiseAddr: "proc-1.uims:50051" });
  });

  test("every problem at once", () => {
    let error: unknown;
    try {
      loadProcessorConfig({ NODE_ID: "proc-1", UIMS_K1_KEYS: secrets.UIMS_K1_KEYS, MAIL_DOMAIN: "not a domain", MAX_PAYLOAD_BYTES: "12" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.name).sort()).toEqual(["BROKER_ADDR", "MAIL_DOMAIN", "MAX_PAYLOAD_BYTES", "UIMS_RELEASE_VERIFY_KEYS"]);
  });
});
