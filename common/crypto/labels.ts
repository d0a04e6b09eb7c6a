/**
 * Domain-separation labels: each use of a key has its own, so that a MAC made for one purpose
 * never verifies for another.
 */
export const Label = {
  login: "uims.login.v1",
  grant: "uims.grant.v1",
  releaseInner: "uims.release.inner.v1",
  releaseOuter: "uims.release.outer.v1",
  releaseSignature: "uims.release.signature.v1",
  payload: "uims.payload.v1",
  transmitAck: "uims.transmit-ack.v1",
  processAck: "uims.process-ack.v1",
  callSubmit: "uims.call.submit.v1",
  callConfirm: "uims.call.confirm.v1",
  callReport: "uims.call.report.v1",
  callRegister: "uims.call.register.v1",
  callHeartbeat: "uims.call.heartbeat.v1",
  callPresence: "uims.call.presence.v1",
  callResolveToken: "uims.call.resolve-token.v1",
  callTransmit: "uims.call.transmit.v1",
  callProcess: "uims.call.process.v1",
  callNotify: "uims.call.notify.v1",
} as const;

export type CallLabel = (typeof Label)[Exclude<keyof typeof Label, "login" | "grant" | "releaseInner" | "releaseOuter" | "releaseSignature" | "payload" | "transmitAck" | "processAck">];
