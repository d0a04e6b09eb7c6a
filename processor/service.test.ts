import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import { decodeSmsContent, SMS_CONTENT_TYPE } from "../common/content/sms";
import { transmitFields } from "../common/crypto/call-fields";
import { payloadDigest } from "../common/crypto/fields";
import { generateSigningKey, randomKeyring, verifyKeysOf } from "../common/crypto/keys";
import { Label } from "../common/crypto/labels";
import { makeRelease } from "../common/crypto/release";
import { createLogin, signCall, TscsAuthority } from "../common/crypto/tscs";
import { GrpcStatusError } from "../common/errors";
import { createLogger } from "../common/logger";
import { processAckValid, transmitAckMac } from "../common/mesh/ack";
import type { GatewayClient } from "../common/mesh/gateway-client";
import { InFlight } from "../common/mesh/multiplex";
import { createStore } from "../common/store";
import type { InstantMessage, MetaInformation, Payload } from "../gen/uims/common/v1/message";
import { Medium } from "../gen/uims/common/v1/types";
import type { TransmitResponse as DestinationAck } from "../gen/uims/gateway/v1/gateway";
import type { ProcessorServiceServer, TransmitRequest, TransmitResponse } from "../gen/uims/processor/v1/processor";
import { Conversions } from "./conversions";
import { sampleMeta } from "./conversions/fixtures";
import { createProcessorService } from "./service";

const k1 = randomKeyring("k1");
const signing = generateSigningKey("s1").key;
const NOW = Date.UTC(2024, 4, 17, 9, 30, 0);

interface Forwarded {
  message: InstantMessage;
  digest: Buffer;
}

function setup(opts: { destination?: (f: Forwarded) => Promise<DestinationAck>; conversions?: Conversions; maxPayloadBytes?: number; now?: number } = {}) {
  const store = createStore();
  const tscs = new TscsAuthority({ audience: "proc-1", k1, store, windowMs: 30_000, sessionKeyTtlMs: 30_000, clock: () => NOW });
  const forwarded: Forwarded[] = [];
  const destination =
    opts.destination ??
    (async (f: Forwarded) => ({ messageId: f.message.release!.meta!.messageId, nodeId: "gw-sms-1", ackMac: transmitAckMac(k1, { messageId: f.message.release!.meta!.messageId, releaseId: f.message.release!.releaseId, nodeId: "gw-sms-1", payloadDigest: f.digest }), duplicate: false }));
  const service = createProcessorService({
    nodeId: "proc-1",
    k1,
    tscs,
    verifyKeys: verifyKeysOf(signing),
    peers: {
      gateway: (nodeId: string) => {
        expect(nodeId).toBe("gw-sms-1");
        return {
          transmit: async (message: InstantMessage, digest: Buffer) => {
            forwarded.push({ message, digest });
            return destination({ message, digest });
          },
        } as unknown as GatewayClient;
      },
    },
    conversions: opts.conversions ?? new Conversions({ mailDomain: "uims.local" }),
    logger: createLogger({ service: "processor", nodeId: "proc-1", level: "silent" }),
    inFlight: new InFlight(),
    clock: () => opts.now ?? NOW,
    maxPayloadBytes: opts.maxPayloadBytes ?? 1024 * 1024,
    forwardTimeoutMs: 1_000,
  });
  let keys: Buffer[] = [];
  const sessionKey = async (caller: string) => {
    if (keys.length === 0) keys = (await tscs.setUp(createLogin(k1, caller, "proc-1", 8, NOW))).keys.map((k) => Buffer.from(k.key));
    return keys.pop()!;
  };
  const transmit = async (message: InstantMessage, caller = "gw-im-1"): Promise<TransmitResponse> => {
    const digest = payloadDigest(message.payload!);
    const auth = signCall(k1, caller, await sessionKey(caller), Label.callProcess, transmitFields(message, digest));
    return call(service, { auth, message });
  };
  return { service, forwarded, transmit };
}

function call(service: ProcessorServiceServer, request: TransmitRequest): Promise<TransmitResponse> {
  return new Promise((resolve, reject) => {
    const fake = { request, metadata: new grpc.Metadata() } as unknown as grpc.ServerUnaryCall<TransmitRequest, TransmitResponse>;
    service.transmit(fake, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

const text = (body: string): Payload => ({ contentType: "text/plain; charset=utf-8", body: Buffer.from(body), attachments: [], subject: "" });

function released(payload: Payload, fields: Partial<MetaInformation> = {}): InstantMessage {
  const meta = sampleMeta({
    originGatewayId: "gw-im-1",
    contentType: payload.contentType,
    contentDigest: payloadDigest(payload),
    expiresAtUnixMs: NOW + 60_000,
    targetMedium: Medium.MEDIUM_SMS,
    targetAddress: "+491701234567",
    destinationGatewayId: "gw-sms-1",
    destinationEndpoint: "127.0.0.1:1",
    conversion: { sourceContentType: payload.contentType, targetMedium: Medium.MEDIUM_SMS, targetContentType: SMS_CONTENT_TYPE, maxSegments: 0 },
    processorId: "proc-1",
    processorEndpoint: "127.0.0.1:2",
    attempt: 1,
    ...fields,
  });
  return { release: makeRelease({ k1, k2: randomKeyring("k2"), signing }, meta, randomBytes(32)), payload, convertedBy: "", segments: 0 };
}

describe("ProcessorService.Transmit", () => {
  test("converts, forwards as converted by this processor, and answers with a MAC the originator checks", async () => {
    const { transmit, forwarded } = setup();
    const message = released(text("x".repeat(200)));
    const ack = await transmit(message);
    expect(forwarded).toHaveLength(1);
    const sent = forwarded[0]!;
    expect(sent.message).toMatchObject({ convertedBy: "proc-1", segments: 2, release: message.release });
    expect(sent.message.payload?.contentType).toBe(SMS_CONTENT_TYPE);
    expect(decodeSmsContent(sent.message.payload!.body).text).toBe("x".repeat(200));
    expect(sent.digest.equals(payloadDigest(sent.message.payload!))).toBe(true);
    expect(ack).toMatchObject({ messageId: message.release!.meta!.messageId, nodeId: "proc-1", destinationNodeId: "gw-sms-1", segments: 2, duplicate: false });
    const input = {
      messageId: ack.messageId,
      releaseId: message.release!.releaseId,
      nodeId: "proc-1",
      payloadDigest: payloadDigest(message.payload!),
      segments: ack.segments,
      destinationNodeId: ack.destinationNodeId,
      destinationAckMac: ack.destinationAckMac,
    };
    expect(processAckValid(k1, input, ack.ackMac)).toBe(true);
    expect(processAckValid(k1, { ...input, segments: 1 }, ack.ackMac)).toBe(false);
  });

  test("the destination's duplicate flag is passed on", async () => {
    const { transmit } = setup({ destination: async (f) => ({ messageId: f.message.release!.meta!.messageId, nodeId: "gw-sms-1", ackMac: Buffer.alloc(32), duplicate: true }) });
    expect((await transmit(released(text("again")))).duplicate).toBe(true);
  });

  test.each<[string, (m: InstantMessage) => InstantMessage, string | undefined, number, string]>([
    ["a release that names another processor", (m) => released(m.payload!, { processorId: "proc-2" }), undefined, grpc.status.PERMISSION_DENIED, 'the release names processor "proc-2", not this one'],
    ["a release without a conversion", (m) => released(m.payload!, { conversion: undefined }), undefined, grpc.status.FAILED_PRECONDITION, "the release names no conversion"],
    ["a caller other than the originator", (m) => m, "gw-im-2", grpc.status.PERMISSION_DENIED, 'only the originating gateway "gw-im-1" may transmit this message'],
    ["content already marked as converted", (m) => ({ ...m, convertedBy: "proc-1" }), undefined, grpc.status.INVALID_ARGUMENT, "message.converted_by: must be empty: the content is converted here"],
    ["an expired message", (m) => released(m.payload!, { expiresAtUnixMs: NOW - 1 }), undefined, grpc.status.FAILED_PRECONDITION, "the message has expired"],
    [
      "content of another type than the release converts",
      (m) => released(m.payload!, { conversion: { sourceContentType: "message/rfc822", targetMedium: Medium.MEDIUM_SMS, targetContentType: SMS_CONTENT_TYPE, maxSegments: 0 } }),
      undefined,
      grpc.status.INVALID_ARGUMENT,
      "message.payload.content_type: the release converts from message/rfc822",
    ],
    ["a release without its IMI", (m) => ({ ...m, release: { ...m.release!, meta: undefined } }), undefined, grpc.status.INVALID_ARGUMENT, "message.release: is required"],
  ])("%s is refused before conversion", async (_what, change, caller, code, details) => {
    const { transmit, forwarded } = setup({ conversions: { select: () => { throw new Error("must not be reached"); } } as unknown as Conversions });
    await expect(transmit(change(released(text("hello"))), caller)).rejects.toMatchObject({ code, details });
    expect(forwarded).toHaveLength(0);
  });

  test("a call whose MAC does not cover what it carries is refused", async () => {
    const { service } = setup();
    const message = released(text("hello"));
    const auth = signCall(k1, "gw-im-1", randomBytes(32), Label.callProcess, transmitFields(message, payloadDigest(text("other"))));
    await expect(call(service, { auth, message })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: "call MAC does not verify" });
  });

  test("a conversion failure is a permanent refusal with the reason", async () => {
    const { transmit, forwarded } = setup();
    const message = released({ contentType: "application/pdf", body: Buffer.from("%PDF"), attachments: [], subject: "" });
    await expect(transmit(message)).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: "conversion failed: no conversion from application/pdf to application/vnd.uims.sms" });
    expect(forwarded).toHaveLength(0);
  });

  test("a conversion that crashes is refused for good, without its internals", async () => {
    const crashing = { select: () => async () => { throw new TypeError("cannot read properties of undefined"); } } as unknown as Conversions;
    const { transmit } = setup({ conversions: crashing });
    await expect(transmit(released(text("hello")))).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: "conversion failed: the content could not be read" });
  });

  test("converted content above the payload limit is refused", async () => {
    const { transmit } = setup({ maxPayloadBytes: 1024 });
    const payload = text("y".repeat(1000));
    const message = released(payload, { targetMedium: Medium.MEDIUM_EMAIL, targetAddress: "bob@example.org", conversion: { sourceContentType: payload.contentType, targetMedium: Medium.MEDIUM_EMAIL, targetContentType: "message/rfc822", maxSegments: 0 } });
    await expect(transmit(message)).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/^conversion failed: the converted content is \d+ bytes, more than the limit of 1024$/) });
  });

  test("the destination's refusal is relayed; its outage stays retryable", async () => {
    const refusing = setup({ destination: async () => { throw new GrpcStatusError(grpc.status.PERMISSION_DENIED, "the release is for another medium"); } });
    await expect(refusing.transmit(released(text("hi")))).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: "the release is for another medium" });
    const down = setup({ destination: async () => { throw new GrpcStatusError(grpc.status.UNAVAILABLE, "connection refused"); } });
    await expect(down.transmit(released(text("hi")))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
