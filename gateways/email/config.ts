import { readFileSync } from "node:fs";
import { EnvReader, type Env } from "../../common/config";
import { readGatewayConfig, type GatewayConfig } from "../core/config";
import { ReturnPaths } from "./return-path";

export interface EmailGatewayConfig extends GatewayConfig {
  /** Inbound SMTP listener (mail from the internet or a front MTA). */
  smtpHost: string;
  /** 0 binds any free port. */
  smtpPort: number;
  /** `<profile>@<mailDomain>` reaches a profile. */
  mailDomain: string;
  /** `+E164@<smsDomain>` reaches a phone number by SMS: `sms.<mailDomain>`. */
  smsDomain: string;
  /**
   * Largest message accepted over SMTP (the SIZE limit), never above what the gateway core takes
   * (`MAX_PAYLOAD_BYTES`): a message the core would refuse is refused during the SMTP dialogue.
   */
  smtpMaxBytes: number;
  smtpMaxRecipients: number;
  /** PEM key and certificate: STARTTLS is offered only when both are set. */
  smtpTls?: { key: string; cert: string };
  /** Outbound relay, e.g. `smtp://127.0.0.1:2526`. Unset: nothing can be sent out, and the gateway reports itself unhealthy. */
  relayUrl?: string;
  relayTimeoutMs: number;
  /** Consecutive failed relay attempts after which the gateway reports itself unhealthy. */
  relayUnhealthyAfter: number;
  /** From of non-delivery reports; mail sent out goes from `<local>+<message id and tag>@<domain>` (see ReturnPaths). */
  bounceAddress: string;
}

const DOMAIN_PATTERN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ADDRESS_PATTERN = /^[^\s@<>()",;:]+@[a-z0-9.-]+$/i;
const MIB = 1024 * 1024;

export function readEmailGatewayConfig(r: EnvReader): EmailGatewayConfig {
  const gateway = readGatewayConfig(r);
  const mailDomain = r.string("MAIL_DOMAIN", { default: "uims.local", pattern: DOMAIN_PATTERN, expected: "a lower-case domain name, e.g. uims.example.org" });
  const requested = r.int("SMTP_MAX_BYTES", { default: 10 * MIB, min: 1024, max: 64 * MIB });
  const certFile = r.optionalFile("SMTP_TLS_CERT_FILE");
  const keyFile = r.optionalFile("SMTP_TLS_KEY_FILE");
  const certSet = r.raw("SMTP_TLS_CERT_FILE") !== undefined;
  if (certSet !== (r.raw("SMTP_TLS_KEY_FILE") !== undefined)) {
    r.problem(certSet ? "SMTP_TLS_KEY_FILE" : "SMTP_TLS_CERT_FILE", "SMTP_TLS_CERT_FILE and SMTP_TLS_KEY_FILE go together (STARTTLS needs both)");
  }
  const relayUrl = r.optionalUrl("SMTP_RELAY_URL", ["smtp:", "smtps:"]);
  const bounceAddress = r.string("BOUNCE_ADDRESS", { default: `postmaster@${mailDomain}`, pattern: ADDRESS_PATTERN, expected: "an e-mail address" });
  if (bounceAddress.lastIndexOf("@") > ReturnPaths.maxLocalPart) {
    r.problem("BOUNCE_ADDRESS", `the part before @ may have at most ${ReturnPaths.maxLocalPart} characters: each message's return path adds its id to it`);
  }
  return {
    ...gateway,
    smtpHost: r.string("SMTP_HOST", { default: "0.0.0.0" }),
    smtpPort: r.port("SMTP_PORT", 2525, { allowZero: true }),
    mailDomain,
    smsDomain: `sms.${mailDomain}`,
    smtpMaxBytes: Math.min(requested, gateway.maxPayloadBytes),
    smtpMaxRecipients: r.int("SMTP_MAX_RECIPIENTS", { default: 100, min: 1, max: 1000 }),
    ...(certFile && keyFile ? { smtpTls: { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") } } : {}),
    ...(relayUrl ? { relayUrl } : {}),
    relayTimeoutMs: r.durationMs("SMTP_RELAY_TIMEOUT_MS", 30_000, { min: 100, max: 600_000 }),
    relayUnhealthyAfter: r.int("SMTP_RELAY_UNHEALTHY_AFTER", { default: 3, min: 1, max: 1000 }),
    bounceAddress,
  };
}

export function loadEmailGatewayConfig(env: Env = process.env): EmailGatewayConfig {
  const r = new EnvReader(env);
  const config = readEmailGatewayConfig(r);
  r.finish();
  return config;
}
