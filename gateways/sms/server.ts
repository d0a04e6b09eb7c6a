import type { Logger } from "../../common/logger";
import type { Store } from "../../common/store";
import { createGateway, type Gateway } from "../core/gateway";
import { SmsAdapter } from "./adapter";
import type { SmsGatewayConfig } from "./config";
import { MtLedger } from "./ledger";
import { MoReceiver } from "./mo";
import { SmppSession } from "./smpp-session";

export interface SmsGateway {
  gateway: Gateway;
  session: SmppSession;
  adapter: SmsAdapter;
  mo: MoReceiver;
  /** Binds the mesh port and registers with the broker, then connects to the SMSC in the background; resolves with the mesh port. */
  start(): Promise<number>;
  /** Unbinds from the SMSC (answering what it is handling first), then stops the gateway core. */
  close(): Promise<void>;
}

/** The sms gateway: the gateway core with an SMPP transceiver bind to one SMSC. */
export function createSmsGateway(config: SmsGatewayConfig, store: Store, logger: Logger, opts: { clock?: () => number } = {}): SmsGateway {
  const clock = opts.clock ?? Date.now;
  const ledger = new MtLedger(store, config.retentionMs, clock);
  let adapter: SmsAdapter | undefined;
  const session = new SmppSession({
    url: config.smppUrl,
    systemId: config.systemId,
    password: config.password,
    systemType: config.systemType,
    window: config.window,
    submitsPerSecond: config.submitsPerSecond,
    enquireLinkMs: config.enquireLinkMs,
    responseTimeoutMs: config.responseTimeoutMs,
    reconnectMinMs: config.reconnectMinMs,
    reconnectMaxMs: config.reconnectMaxMs,
    logger,
    onDeliverSm: (pdu) => adapter!.onDeliverSm(pdu),
  });
  const gateway = createGateway({
    config,
    store,
    logger,
    clock,
    createAdapter: (gw) => (adapter = new SmsAdapter({ config, store, destination: gw.destination, session, ledger, mo: () => mo, logger })),
  });
  const mo = new MoReceiver({
    nodeId: config.nodeId,
    store,
    logger,
    accept: (input) => gateway.origin.accept(input),
    inboundNumbers: config.inboundNumbers,
    reassemblyTimeoutMs: config.reassemblyTimeoutMs,
    clock,
  });
  return {
    gateway,
    session,
    adapter: adapter!,
    mo,
    async start() {
      const port = await gateway.start();
      mo.overdue.start();
      session.start();
      logger.info({ port, smsc: new URL(config.smppUrl).host }, "sms listening");
      return port;
    },
    async close() {
      await session.close();
      await mo.overdue.stop();
      await gateway.close();
    },
  };
}
