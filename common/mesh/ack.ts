import { hmacSha256 } from "../crypto/canonical";
import { equalConstantTime, verifyMacWith, type Keyring } from "../crypto/keys";
import { Label } from "../crypto/labels";

/** The signed acknowledgements of phase 3, made by the receiver and checked by the sender. */

export interface TransmitAckInput {
  messageId: string;
  releaseId: Uint8Array;
  nodeId: string;
  payloadDigest: Buffer;
}

export function transmitAckMac(k1: Keyring, a: TransmitAckInput): Buffer {
  return hmacSha256(k1.current.key, Label.transmitAck, [a.messageId, a.releaseId, a.nodeId, a.payloadDigest]);
}

export function transmitAckValid(k1: Keyring, a: TransmitAckInput, mac: Uint8Array): boolean {
  for (const id of k1.all.keys()) if (verifyMacWith(k1, id, Label.transmitAck, [a.messageId, a.releaseId, a.nodeId, a.payloadDigest], mac)) return true;
  return false;
}

export interface ProcessAckInput extends TransmitAckInput {
  segments: number;
  destinationNodeId: string;
  destinationAckMac: Uint8Array;
}

function processAckFields(a: ProcessAckInput) {
  return [a.messageId, a.releaseId, a.nodeId, a.payloadDigest, a.segments, a.destinationNodeId, a.destinationAckMac];
}

export function processAckMac(k1: Keyring, a: ProcessAckInput): Buffer {
  return hmacSha256(k1.current.key, Label.processAck, processAckFields(a));
}

export function processAckValid(k1: Keyring, a: ProcessAckInput, mac: Uint8Array): boolean {
  for (const key of k1.all.values()) if (equalConstantTime(hmacSha256(key, Label.processAck, processAckFields(a)), mac)) return true;
  return false;
}
