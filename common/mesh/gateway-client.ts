import {
  GatewayServiceClient,
  type NotifyRequest,
  type NotifyResponse,
  type TransmitRequest,
  type TransmitResponse,
} from "../../gen/uims/gateway/v1/gateway";
import type { InstantMessage } from "../../gen/uims/common/v1/message";
import { notifyFields, transmitFields } from "../crypto/call-fields";
import { Label } from "../crypto/labels";
import { signCall } from "../crypto/tscs";
import { UnauthenticatedError } from "../errors";
import { transmitAckValid } from "./ack";
import { MultiplexedClient } from "./multiplex";
import { callUnary, SessionKeys, type MeshIdentity } from "./peer";

/** A connection to one gateway: phase 3 transmissions and the broker's notices. */
export class GatewayClient {
  private readonly client: GatewayServiceClient;
  private readonly keys: SessionKeys;
  private readonly transmits: MultiplexedClient<TransmitRequest, TransmitResponse>;
  private readonly notices: MultiplexedClient<NotifyRequest, NotifyResponse>;

  constructor(
    readonly nodeId: string,
    readonly endpoint: string,
    private readonly identity: MeshIdentity,
  ) {
    this.client = new GatewayServiceClient(endpoint, identity.credentials, identity.channelOptions);
    this.keys = new SessionKeys(identity, nodeId, async (login) => {
      const res = await callUnary(this.client.setUp.bind(this.client), { login }, identity.callTimeoutMs);
      if (!res.grant) throw new UnauthenticatedError(`gateway ${nodeId} answered the set-up without a grant`);
      return res.grant;
    });
    this.transmits = new MultiplexedClient(() => this.client.transmitStream(), identity.callTimeoutMs, identity.streamLifetimeMs);
    this.notices = new MultiplexedClient(() => this.client.notifyStream(), identity.callTimeoutMs, identity.streamLifetimeMs);
  }

  /** Phase 3: sends the message and checks the destination's signed acknowledgement. */
  transmit(message: InstantMessage, payloadDigest: Buffer, timeoutMs?: number): Promise<TransmitResponse> {
    return this.keys.with(async (sessionKey) => {
      const auth = signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callTransmit, transmitFields(message, payloadDigest));
      const ack = await this.transmits.call({ auth, message }, timeoutMs);
      const valid = transmitAckValid(
        this.identity.k1,
        { messageId: message.release?.meta?.messageId ?? "", releaseId: message.release?.releaseId ?? Buffer.alloc(0), nodeId: this.nodeId, payloadDigest },
        ack.ackMac,
      );
      if (!valid || ack.nodeId !== this.nodeId) throw new UnauthenticatedError(`acknowledgement from ${this.nodeId} does not verify`);
      return ack;
    });
  }

  /**
   * Sends a notice. `build` receives the session key first, because a re-route release is made
   * with the notice's own session key as C_ack (the originator checks its outer digest with it).
   */
  notify(build: (sessionKey: Buffer) => Omit<NotifyRequest, "auth"> | Promise<Omit<NotifyRequest, "auth">>): Promise<void> {
    return this.keys.with(async (sessionKey) => {
      const request = await build(sessionKey);
      const auth = signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callNotify, notifyFields(request));
      await this.notices.call({ ...request, auth });
    });
  }

  close(): void {
    this.transmits.close();
    this.notices.close();
    this.client.close();
  }
}
