import type { Logger } from "../../common/logger";
import type { Store } from "../../common/store";
import { createGateway, type Gateway } from "../core/gateway";
import { EmailAdapter } from "./adapter";
import { BounceQueue, OriginalMails } from "./bounce";
import type { EmailGatewayConfig } from "./config";
import { ReturnPaths } from "./return-path";
import { SmtpInbound } from "./smtp-in";
import { SmtpRelay } from "./smtp-out";

export interface EmailGateway {
  gateway: Gateway;
  relay: SmtpRelay;
  smtp: SmtpInbound;
  bounces: BounceQueue;
  /** Starts the mesh side, then the SMTP listener; resolves with both ports. */
  start(): Promise<{ meshPort: number; smtpPort: number }>;
  /** Waits for in-flight work: the core's queues and pending reports. */
  drain(): Promise<void>;
  /** Stops the SMTP listener, background work and connections (not the store). */
  close(): Promise<void>;
}

/** The email gateway: the gateway core with SMTP in (smtp-server) and out (nodemailer through a relay). */
export function createEmailGateway(config: EmailGatewayConfig, store: Store, logger: Logger, clock?: () => number): EmailGateway {
  const relay = new SmtpRelay({
    ...(config.relayUrl ? { url: config.relayUrl } : {}),
    timeoutMs: config.relayTimeoutMs,
    unhealthyAfter: config.relayUnhealthyAfter,
    name: config.mailDomain,
    logger,
    ...(clock ? { clock } : {}),
  });
  const bounces = new BounceQueue({
    store,
    relay,
    logger,
    nodeId: config.nodeId,
    from: config.bounceAddress,
    reportingMta: config.mailDomain,
    // A report is worth sending as long as the message it is about could have lived.
    giveUpMs: config.defaultTtlMs,
    ...(clock ? { clock } : {}),
  });
  const originals = new OriginalMails(store, config.defaultTtlMs + config.retentionMs);
  const returnPaths = new ReturnPaths(config.bounceAddress, config.k1);
  const gateway = createGateway({
    config,
    store,
    logger,
    ...(clock ? { clock } : {}),
    createAdapter: () =>
      new EmailAdapter({
        store,
        relay,
        bounces,
        originals,
        returnPaths,
        mailDomain: config.mailDomain,
        smsDomain: config.smsDomain,
        retentionMs: config.retentionMs,
        logger,
      }),
  });
  const smtp = new SmtpInbound({
    config,
    accept: (input) => gateway.origin.accept(input),
    originals,
    bounces,
    returnPaths,
    onBounce: (messageId, reason) => gateway.destination.markBounced(messageId, reason),
    logger,
    ...(clock ? { clock } : {}),
  });
  return {
    gateway,
    relay,
    smtp,
    bounces,
    async start() {
      // Mail is taken only once the gateway is registered: accepting needs the broker.
      const meshPort = await gateway.start();
      bounces.start();
      const smtpPort = await smtp.listen();
      if (!relay.configured) logger.warn("SMTP_RELAY_URL is not set: mail cannot be sent out, and the gateway reports itself unhealthy");
      logger.info({ smtpPort, mailDomain: config.mailDomain, relay: relay.target || "(none)", maxBytes: config.smtpMaxBytes }, "smtp listening");
      return { meshPort, smtpPort };
    },
    async drain() {
      await gateway.drain();
      await bounces.idle();
    },
    async close() {
      await smtp.close();
      await bounces.stop();
      await gateway.close();
      relay.close();
    },
  };
}
