import type { Logger } from "pino";
import type { BrokerServiceServer } from "../gen/uims/broker/v1/broker";
import type { TscsAuthority } from "../common/crypto/tscs";
import { status as grpcStatus } from "@grpc/grpc-js";
import { toCallError } from "../common/errors";
import { refusals } from "../common/metrics";
import { InFlight, multiplexed, unary } from "../common/mesh/multiplex";
import type { BrokerProtocol } from "./protocol";

/** The broker's mesh-internal gRPC service: every RPC in its unary and its multiplexed form. */
export function createBrokerService(deps: { protocol: BrokerProtocol; tscs: TscsAuthority; logger: Logger; inFlight: InFlight }): BrokerServiceServer {
  const { protocol, tscs, inFlight } = deps;
  const refused = (rpc: string) => (err: unknown) => {
    const e = err as { name?: string; message?: string };
    refusals.inc({ rpc, code: grpcStatus[toCallError(err).code] ?? "UNKNOWN" });
    deps.logger.warn({ rpc, reason: e.message, error: e.name }, "call refused");
  };
  const submit = (r: Parameters<BrokerProtocol["submit"]>[0]) => protocol.submit(r);
  const confirm = (r: Parameters<BrokerProtocol["confirm"]>[0]) => protocol.confirm(r);
  const report = (r: Parameters<BrokerProtocol["report"]>[0]) => protocol.report(r);
  return {
    setUp: unary(async (req) => ({ grant: await tscs.setUp(req.login) }), inFlight, refused("SetUp")),
    submit: unary(submit, inFlight, refused("Submit")),
    submitStream: multiplexed(submit, inFlight, refused("Submit")),
    confirmRelease: unary(confirm, inFlight, refused("ConfirmRelease")),
    confirmReleaseStream: multiplexed(confirm, inFlight, refused("ConfirmRelease")),
    report: unary(report, inFlight, refused("Report")),
    reportStream: multiplexed(report, inFlight, refused("Report")),
    register: unary((r) => protocol.register(r), inFlight, refused("Register")),
    heartbeat: unary((r) => protocol.heartbeat(r), inFlight, refused("Heartbeat")),
    reportPresence: unary((r) => protocol.reportPresence(r), inFlight, refused("ReportPresence")),
    resolveClientToken: unary((r) => protocol.resolveClientToken(r), inFlight, refused("ResolveClientToken")),
  };
}
