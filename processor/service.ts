import { status as grpcStatus } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ConversionPlan, InstantMessage, MetaInformation, Release } from "../gen/uims/common/v1/message";
import type { TransmitResponse as DestinationAck } from "../gen/uims/gateway/v1/gateway";
import type { ProcessorServiceServer, TransmitRequest, TransmitResponse } from "../gen/uims/processor/v1/processor";
import { transmitFields } from "../common/crypto/call-fields";
import { payloadDigest, payloadSize } from "../common/crypto/fields";
import { equalConstantTime, type Keyring, type VerifyKeys } from "../common/crypto/keys";
import { Label } from "../common/crypto/labels";
import { releaseSignatureValid } from "../common/crypto/release";
import type { TscsAuthority } from "../common/crypto/tscs";
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, relayRefusal, toCallError } from "../common/errors";
import { processAckMac } from "../common/mesh/ack";
import { InFlight, multiplexed, unary } from "../common/mesh/multiplex";
import type { PeerClients } from "../common/mesh/peers";
import { refusals } from "../common/metrics";
import { Attr, SpanKind, step } from "../common/tracing";
import { baseType } from "./conversions/content-type";
import { ConversionError, type Conversions, type ConversionResult } from "./conversions";

export interface ProcessorServiceDeps {
  nodeId: string;
  k1: Keyring;
  tscs: TscsAuthority;
  /** The broker's release signature keys. */
  verifyKeys: VerifyKeys;
  peers: Pick<PeerClients, "gateway">;
  conversions: Conversions;
  logger: Logger;
  inFlight: InFlight;
  clock: () => number;
  maxPayloadBytes: number;
  /** Deadline of the transmission to the destination; shorter than the originator's own, so that it hears the destination's answer. */
  forwardTimeoutMs: number;
}

interface Checked {
  release: Release;
  meta: MetaInformation;
  plan: ConversionPlan;
}

/**
 * The processor's mesh-internal service: phase 3 through a conversion. Everything about the
 * transmission is checked before any content is looked at; the converted message then goes to
 * the destination the release names, and the destination's acknowledgement comes back inside
 * the processor's own.
 */
export function createProcessorService(deps: ProcessorServiceDeps): ProcessorServiceServer {
  const { tscs, inFlight, logger } = deps;
  const refused = (rpc: string) => (err: unknown) => {
    refusals.inc({ rpc, code: grpcStatus[toCallError(err).code] ?? "UNKNOWN" });
    logger.warn({ rpc, reason: (err as Error).message }, "call refused");
  };

  const check = (caller: string, message: InstantMessage, digest: Buffer): Checked => {
    const release = message.release;
    const meta = release?.meta;
    if (!release || !meta) throw new InvalidArgumentError("message.release", "is required");
    if (!releaseSignatureValid(deps.verifyKeys, release)) throw new PermissionDeniedError("the release does not carry a valid broker signature");
    if (meta.processorId !== deps.nodeId) throw new PermissionDeniedError(`the release names processor "${meta.processorId}", not this one`);
    const plan = meta.conversion;
    if (!plan) throw new FailedPreconditionError("the release names no conversion");
    if (caller !== meta.originGatewayId) throw new PermissionDeniedError(`only the originating gateway "${meta.originGatewayId}" may transmit this message`);
    if (!equalConstantTime(digest, meta.contentDigest)) throw new PermissionDeniedError("the content is not the content the broker released");
    if (message.convertedBy !== "" || message.segments !== 0) throw new InvalidArgumentError("message.converted_by", "must be empty: the content is converted here");
    if (baseType(message.payload!.contentType) !== baseType(plan.sourceContentType)) {
      throw new InvalidArgumentError("message.payload.content_type", `the release converts from ${plan.sourceContentType}`);
    }
    if (meta.expiresAtUnixMs <= deps.clock()) throw new FailedPreconditionError("the message has expired");
    if (!meta.destinationGatewayId || !meta.destinationEndpoint) throw new FailedPreconditionError("the release names no destination gateway");
    return { release, meta, plan };
  };

  const convert = async (message: InstantMessage, { meta, plan }: Checked): Promise<ConversionResult> => {
    const payload = message.payload!;
    let result: ConversionResult;
    try {
      result = await deps.conversions.select(payload.contentType, plan.targetContentType)(payload, meta, plan);
    } catch (err) {
      if (err instanceof ConversionError) throw new FailedPreconditionError(`conversion failed: ${err.message}`);
      // The same content would fail the same way again: a permanent refusal, with the cause logged only.
      logger.error({ err, messageId: meta.messageId }, "conversion crashed");
      throw new FailedPreconditionError("conversion failed: the content could not be read");
    }
    const size = payloadSize(result.payload);
    if (size > deps.maxPayloadBytes) {
      throw new FailedPreconditionError(`conversion failed: the converted content is ${size} bytes, more than the limit of ${deps.maxPayloadBytes}`);
    }
    return result;
  };

  const transmit = async (req: TransmitRequest): Promise<TransmitResponse> => {
    const message = req.message;
    if (!message?.payload) throw new InvalidArgumentError("message.payload", "is required");
    const digest = payloadDigest(message.payload);
    const caller = await tscs.authenticate(req.auth, Label.callProcess, transmitFields(message, digest));
    const claimed = message.release?.meta;
    const attributes = { [Attr.messageId]: claimed?.messageId ?? "", [Attr.node]: deps.nodeId, [Attr.processor]: deps.nodeId };
    return step("uims.process", { traceparent: claimed?.trace?.traceparent, kind: SpanKind.CONSUMER, attributes }, async (span) => {
      const checked = check(caller, message, digest);
      const { release, meta, plan } = checked;
      span.setAttribute("uims.conversion", `${baseType(plan.sourceContentType)} -> ${baseType(plan.targetContentType)}`);
      const result = await convert(message, checked);
      span.setAttribute("uims.segments", result.segments);
      const converted: InstantMessage = { release, payload: result.payload, convertedBy: deps.nodeId, segments: result.segments };
      let ack: DestinationAck;
      try {
        ack = await deps.peers.gateway(meta.destinationGatewayId, meta.destinationEndpoint).transmit(converted, payloadDigest(result.payload), deps.forwardTimeoutMs);
      } catch (err) {
        // The destination's refusal (bad release, wrong content type) is the originator's answer;
        // transient failures keep their code so that the originator retries.
        throw relayRefusal(err);
      }
      span.setAttribute(Attr.destination, ack.nodeId);
      span.setAttribute("uims.duplicate", ack.duplicate);
      logger.debug({ messageId: meta.messageId, conversion: plan.targetContentType, segments: result.segments, destination: ack.nodeId }, "converted and transmitted");
      return {
        messageId: meta.messageId,
        destinationNodeId: ack.nodeId,
        destinationAckMac: ack.ackMac,
        nodeId: deps.nodeId,
        ackMac: processAckMac(deps.k1, {
          messageId: meta.messageId,
          releaseId: release.releaseId,
          nodeId: deps.nodeId,
          payloadDigest: digest,
          segments: result.segments,
          destinationNodeId: ack.nodeId,
          destinationAckMac: ack.ackMac,
        }),
        segments: result.segments,
        duplicate: ack.duplicate,
      };
    });
  };

  return {
    setUp: unary(async (req) => ({ grant: await tscs.setUp(req.login) }), inFlight, refused("SetUp")),
    transmit: unary(transmit, inFlight, refused("Transmit")),
    transmitStream: multiplexed(transmit, inFlight, refused("Transmit")),
  };
}
