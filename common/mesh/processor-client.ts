import {
  ProcessorServiceClient,
  type TransmitRequest,
  type TransmitResponse,
} from "../../gen/uims/processor/v1/processor";
import type { InstantMessage } from "../../gen/uims/common/v1/message";
import { transmitFields } from "../crypto/call-fields";
import { Label } from "../crypto/labels";
import { signCall } from "../crypto/tscs";
import { UnauthenticatedError } from "../errors";
import { processAckValid } from "./ack";
import { MultiplexedClient } from "./multiplex";
import { callUnary, SessionKeys, type MeshIdentity } from "./peer";

/** A connection to one processor: phase 3 through a conversion. */
export class ProcessorClient {
  private readonly client: ProcessorServiceClient;
  private readonly keys: SessionKeys;
  private readonly transmits: MultiplexedClient<TransmitRequest, TransmitResponse>;

  constructor(
    readonly nodeId: string,
    readonly endpoint: string,
    private readonly identity: MeshIdentity,
  ) {
    this.client = new ProcessorServiceClient(endpoint, identity.credentials, identity.channelOptions);
    this.keys = new SessionKeys(identity, nodeId, async (login) => {
      const res = await callUnary(this.client.setUp.bind(this.client), { login }, identity.callTimeoutMs);
      if (!res.grant) throw new UnauthenticatedError(`processor ${nodeId} answered the set-up without a grant`);
      return res.grant;
    });
    this.transmits = new MultiplexedClient(() => this.client.transmitStream(), identity.callTimeoutMs, identity.streamLifetimeMs);
  }

  transmit(message: InstantMessage, payloadDigest: Buffer, timeoutMs?: number): Promise<TransmitResponse> {
    return this.keys.with(async (sessionKey) => {
      const auth = signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callProcess, transmitFields(message, payloadDigest));
      const ack = await this.transmits.call({ auth, message }, timeoutMs);
      const valid = processAckValid(
        this.identity.k1,
        {
          messageId: message.release?.meta?.messageId ?? "",
          releaseId: message.release?.releaseId ?? Buffer.alloc(0),
          nodeId: this.nodeId,
          payloadDigest,
          segments: ack.segments,
          destinationNodeId: ack.destinationNodeId,
          destinationAckMac: ack.destinationAckMac,
        },
        ack.ackMac,
      );
      if (!valid || ack.nodeId !== this.nodeId) throw new UnauthenticatedError(`acknowledgement from processor ${this.nodeId} does not verify`);
      return ack;
    });
  }

  close(): void {
    this.transmits.close();
    this.client.close();
  }
}
