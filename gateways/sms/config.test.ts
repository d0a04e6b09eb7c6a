import { ConfigError } from "../../common/config";
import { generateMeshSecrets } from "../../common/crypto/secrets";
import { loadSmsGatewayConfig, phoneDigits, smppAddress } from "./config";

const secrets = generateMeshSecrets();
const base = {
  NODE_ID: "gw-sms-1",
  BROKER_ADDR: "127.0.0.1:50051",
  UIMS_K1_KEYS: secrets.UIMS_K1_KEYS,
  UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS,
  SMPP_URL: "smpp://smsc.example.net:2775",
  SMPP_SYSTEM_ID: "uims",
  SMPP_PASSWORD: "s3cr3t-pw",
  SMPP_SOURCE_ADDR: "+4915550000",
};

describe("sms gateway configuration", () => {
  test("defaults", () => {
    const c = loadSmsGatewayConfig(base);
    expect(c).toMatchObject({
      smppUrl: "smpp://smsc.example.net:2775",
      systemId: "uims",
      source: { ton: 1, npi: 1, addr: "4915550000" },
      window: 10,
      submitsPerSecond: 50,
      enquireLinkMs: 30_000,
      responseTimeoutMs: 10_000,
      reassemblyTimeoutMs: 600_000,
      ndrSms: true,
    });
    expect(c.inboundNumbers.size).toBe(0);
  });

  test("inbound numbers, window, rate, a short code sender", () => {
    const c = loadSmsGatewayConfig({ ...base, SMS_INBOUND_NUMBERS: "+4915550001:bob, 4915550002:carol", SMPP_WINDOW: "4", SMPP_SUBMITS_PER_SECOND: "5", SMPP_SOURCE_ADDR: "12345" });
    expect([...c.inboundNumbers]).toEqual([
      ["4915550001", "bob"],
      ["4915550002", "carol"],
    ]);
    expect(c).toMatchObject({ window: 4, submitsPerSecond: 5, source: { ton: 0, npi: 1, addr: "12345" } });
  });

  test("every problem at once, the password never shown", () => {
    let error: unknown;
    try {
      loadSmsGatewayConfig({ ...base, SMPP_URL: "http://x", SMPP_PASSWORD: "p\u0001w-secret-value", SMPP_WINDOW: "0", SMS_INBOUND_NUMBERS: "bob", SMPP_SYSTEM_ID: "" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const names = (error as ConfigError).problems.map((p) => p.name).sort();
    expect(names).toEqual(["SMPP_PASSWORD", "SMPP_SYSTEM_ID", "SMPP_URL", "SMPP_WINDOW", "SMS_INBOUND_NUMBERS"]);
    expect((error as Error).message).not.toContain("secret-value");
  });

  test("addresses", () => {
    expect(smppAddress("+491701234567")).toEqual({ ton: 1, npi: 1, addr: "491701234567" });
    expect(smppAddress("ACME")).toEqual({ ton: 5, npi: 0, addr: "ACME" });
    expect(phoneDigits("0049 170 1234567")).toBe("491701234567");
  });
});
