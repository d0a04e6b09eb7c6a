import { ConfigError } from "../../common/config";
import { generateMeshSecrets } from "../../common/crypto/secrets";
import { loadEmailGatewayConfig } from "./config";

const secrets = generateMeshSecrets();
const base = { NODE_ID: "gw-email-1", BROKER_ADDR: "127.0.0.1:50051", UIMS_K1_KEYS: secrets.UIMS_K1_KEYS, UIMS_RELEASE_VERIFY_KEYS: secrets.UIMS_RELEASE_VERIFY_KEYS };

describe("email gateway configuration", () => {
  test("defaults", () => {
    const config = loadEmailGatewayConfig(base);
    expect(config).toMatchObject({
      smtpHost: "0.0.0.0",
      smtpPort: 2525,
      mailDomain: "uims.local",
      smsDomain: "sms.uims.local",
      bounceAddress: "postmaster@uims.local",
      relayUnhealthyAfter: 3,
      smtpMaxRecipients: 100,
    });
    expect(config.relayUrl).toBeUndefined();
    expect(config.smtpTls).toBeUndefined();
    // 10 MiB asked, but the core takes at most MAX_PAYLOAD_BYTES (8 MiB by default).
    expect(config.smtpMaxBytes).toBe(8 * 1024 * 1024);
  });

  test("the SMTP limit below the core's is kept; the bounce address follows the domain", () => {
    const config = loadEmailGatewayConfig({ ...base, SMTP_MAX_BYTES: "65536", MAIL_DOMAIN: "mail.example.org", SMTP_RELAY_URL: "smtp://127.0.0.1:2526" });
    expect(config).toMatchObject({ smtpMaxBytes: 65536, bounceAddress: "postmaster@mail.example.org", smsDomain: "sms.mail.example.org", relayUrl: "smtp://127.0.0.1:2526" });
  });

  test("every problem at once", () => {
    let error: unknown;
    try {
      loadEmailGatewayConfig({ ...base, MAIL_DOMAIN: "Not A Domain", SMTP_RELAY_URL: "http://relay", SMTP_PORT: "70000", SMTP_TLS_CERT_FILE: "/nonexistent.pem" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const names = (error as ConfigError).problems.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(["MAIL_DOMAIN", "SMTP_RELAY_URL", "SMTP_PORT", "SMTP_TLS_CERT_FILE", "SMTP_TLS_KEY_FILE"]));
  });

  test("a bounce address whose local part leaves no room for a message's return path is refused", () => {
    const local = "x".repeat(20);
    expect(() => loadEmailGatewayConfig({ ...base, BOUNCE_ADDRESS: `${local}@uims.local` })).toThrow(/BOUNCE_ADDRESS.*at most 19 characters/s);
    expect(loadEmailGatewayConfig({ ...base, BOUNCE_ADDRESS: `${local.slice(1)}@uims.local` }).bounceAddress).toBe(`${local.slice(1)}@uims.local`);
  });
});
