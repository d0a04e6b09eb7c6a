import * as grpc from "@grpc/grpc-js";
import {
  BrokerServiceClient,
  type ConfirmReleaseRequest,
  type ConfirmReleaseResponse,
  type ConfirmReleaseStreamRequest,
  type ConfirmReleaseStreamResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type RegisterRequest,
  type RegisterResponse,
  type ReportPresenceRequest,
  type ReportRequest,
  type ReportResponse,
  type ReportStreamRequest,
  type ReportStreamResponse,
  type SubmitRequest,
  type SubmitResponse,
  type SubmitStreamRequest,
  type SubmitStreamResponse,
} from "../../gen/uims/broker/v1/broker";
import type { Release, MetaInformation } from "../../gen/uims/common/v1/message";
import {
  confirmFields,
  heartbeatFields,
  presenceFields,
  registerFields,
  reportFields,
  resolveTokenFields,
  submitFields,
} from "../crypto/call-fields";
import { Label } from "../crypto/labels";
import { outerDigestValid } from "../crypto/release";
import { signCall } from "../crypto/tscs";
import { UnauthenticatedError } from "../errors";
import { MultiplexedClient } from "./multiplex";
import { callUnary, SessionKeys, type MeshIdentity } from "./peer";

/** The logical TSCS audience of every broker replica: any replica accepts any replica's keys. */
export const BROKER_AUDIENCE = "broker";

/**
 * A gateway's or processor's connection to the broker: TSCS session keys, the phase 1, 2 and 4
 * calls over multiplexed streams, and the registry calls.
 */
export class BrokerClient {
  private readonly client: BrokerServiceClient;
  private readonly keys: SessionKeys;
  private readonly submits: MultiplexedClient<SubmitRequest, SubmitResponse>;
  private readonly confirms: MultiplexedClient<ConfirmReleaseRequest, ConfirmReleaseResponse>;
  private readonly reports: MultiplexedClient<ReportRequest, ReportResponse>;

  constructor(
    readonly endpoint: string,
    private readonly identity: MeshIdentity,
  ) {
    this.client = new BrokerServiceClient(endpoint, identity.credentials, identity.channelOptions);
    const timeout = identity.callTimeoutMs;
    this.keys = new SessionKeys(identity, BROKER_AUDIENCE, async (login) => {
      const res = await callUnary(this.client.setUp.bind(this.client), { login }, timeout);
      if (!res.grant) throw new UnauthenticatedError("broker answered the set-up without a grant");
      return res.grant;
    });
    const lifetime = identity.streamLifetimeMs;
    this.submits = new MultiplexedClient<SubmitRequest, SubmitResponse>(() => this.client.submitStream(), timeout, lifetime);
    this.confirms = new MultiplexedClient<ConfirmReleaseRequest, ConfirmReleaseResponse>(() => this.client.confirmReleaseStream(), timeout, lifetime);
    this.reports = new MultiplexedClient<ReportRequest, ReportResponse>(() => this.client.reportStream(), timeout, lifetime);
  }

  /** Phases 1 and 2: submits the IMI and checks the outer digest of the release. */
  submit(meta: MetaInformation): Promise<Release> {
    return this.keys.with(async (sessionKey) => {
      const auth = signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callSubmit, submitFields(meta));
      const { release } = await this.submits.call({ auth, meta });
      if (!release || !outerDigestValid(this.identity.k1, release, sessionKey)) {
        throw new UnauthenticatedError("the broker's release failed the outer digest check");
      }
      return release;
    });
  }

  confirm(request: Omit<ConfirmReleaseRequest, "auth">): Promise<ConfirmReleaseResponse> {
    return this.keys.with((sessionKey) =>
      this.confirms.call({ ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callConfirm, confirmFields(request)) }),
    );
  }

  report(request: Omit<ReportRequest, "auth">): Promise<ReportResponse> {
    return this.keys.with((sessionKey) =>
      this.reports.call({ ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callReport, reportFields(request)) }),
    );
  }

  register(request: Omit<RegisterRequest, "auth">): Promise<RegisterResponse> {
    return this.keys.with((sessionKey) =>
      callUnary(
        this.client.register.bind(this.client),
        { ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callRegister, registerFields(request)) },
        this.identity.callTimeoutMs,
      ),
    );
  }

  heartbeat(request: Omit<HeartbeatRequest, "auth">): Promise<HeartbeatResponse> {
    return this.keys.with((sessionKey) =>
      callUnary(
        this.client.heartbeat.bind(this.client),
        { ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callHeartbeat, heartbeatFields(request)) },
        this.identity.callTimeoutMs,
      ),
    );
  }

  reportPresence(request: Omit<ReportPresenceRequest, "auth">): Promise<void> {
    return this.keys.with(async (sessionKey) => {
      await callUnary(
        this.client.reportPresence.bind(this.client),
        { ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callPresence, presenceFields(request)) },
        this.identity.callTimeoutMs,
      );
    });
  }

  resolveClientToken(tokenSha256: Buffer): Promise<string> {
    return this.keys.with(async (sessionKey) => {
      const request = { tokenSha256 };
      const res = await callUnary(
        this.client.resolveClientToken.bind(this.client),
        { ...request, auth: signCall(this.identity.k1, this.identity.nodeId, sessionKey, Label.callResolveToken, resolveTokenFields(request)) },
        this.identity.callTimeoutMs,
      );
      return res.clientId;
    });
  }

  close(): void {
    this.submits.close();
    this.confirms.close();
    this.reports.close();
    this.client.close();
  }
}
