import { ContractCopy, RELEASED_IMAGE, buf, type RunResult } from "./contract-tree";

const BROKER_PROTO = "proto/uims/broker/v1/broker.proto";

interface Finding {
  path: string;
  type: string;
  message: string;
}

/** Parses buf's `--error-format=json` output: one finding per line. */
function findings(result: RunResult): Finding[] {
  return result.stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Finding);
}

function expectClean(result: RunResult): void {
  if (result.status !== 0) throw new Error(`expected success, got exit ${result.status}:\n${result.output}`);
}

describe("the contract in the repository", () => {
  test("passes buf lint (STANDARD + COMMENTS: every service, RPC, message, field, enum and value is documented)", () => {
    expectClean(buf(["lint"]));
  });

  test("is formatted as buf format writes it", () => {
    expectClean(buf(["format", "-d", "--exit-code"]));
  });

  test("is wire- and source-compatible with the released contract", () => {
    expectClean(buf(["breaking", "--against", RELEASED_IMAGE]));
  });
});

describe("the checks fail on a broken copy of the contract", () => {
  let copy: ContractCopy;
  beforeEach(() => {
    copy = new ContractCopy();
  });
  afterEach(() => {
    copy.remove();
  });

  const breakingChanges: Array<[string, (c: ContractCopy) => void, string, RegExp]> = [
    [
      "a deleted field",
      (c) => c.replace(BROKER_PROTO, "  // Messages in flight at the node now.\n  uint32 in_flight = 3;\n", ""),
      "FIELD_NO_DELETE",
      /field "3" with name "in_flight" on message "HeartbeatRequest" was deleted/,
    ],
    [
      "a field whose type changed",
      (c) => c.replace(BROKER_PROTO, "  uint32 capacity = 6;", "  string capacity = 6;"),
      "FIELD_SAME_TYPE",
      /"capacity" on message "RegisterRequest" changed type from "uint32" to "string"/,
    ],
    [
      "a renumbered field",
      (c) => c.replace(BROKER_PROTO, "  bytes token_sha256 = 2;", "  bytes token_sha256 = 3;"),
      "FIELD_NO_DELETE",
      /field "2" with name "token_sha256" on message "ResolveClientTokenRequest" was deleted/,
    ],
    [
      "a deleted RPC",
      (c) =>
        c.replace(
          BROKER_PROTO,
          "  // A registered node tells the broker it is alive, and how loaded.\n  rpc Heartbeat(HeartbeatRequest) returns (HeartbeatResponse);\n",
          "",
        ),
      "RPC_NO_DELETE",
      /RPC "Heartbeat" on service "BrokerService" was deleted/,
    ],
  ];

  test.each(breakingChanges)("buf breaking refuses %s", (_name, edit, rule, message) => {
    edit(copy);
    const result = copy.buf(["breaking", "--against", RELEASED_IMAGE, "--error-format=json"]);
    expect(result.status).not.toBe(0);
    expect(findings(result)).toContainEqual(
      expect.objectContaining({ path: BROKER_PROTO, type: rule, message: expect.stringMatching(message) }),
    );
  });

  test("buf breaking accepts an added, documented field (the check is not just failing on any change)", () => {
    copy.replace(
      BROKER_PROTO,
      "  string detail = 5;\n}",
      "  string detail = 5;\n  // Messages queued at the node now.\n  uint32 queued = 6;\n}",
    );
    expectClean(copy.buf(["breaking", "--against", RELEASED_IMAGE]));
    expectClean(copy.buf(["lint"]));
  });

  const lintViolations: Array<[string, (c: ContractCopy) => void, string, RegExp]> = [
    [
      "an enum without an _UNSPECIFIED zero value",
      (c) =>
        c.write(
          BROKER_PROTO,
          `${c.read(BROKER_PROTO)}\n// Load levels.\nenum Load {\n  // Idle.\n  LOAD_IDLE = 0;\n  // Busy.\n  LOAD_BUSY = 1;\n}\n`,
        ),
      "ENUM_ZERO_VALUE_SUFFIX",
      /Enum zero value name "LOAD_IDLE" should be suffixed with "_UNSPECIFIED"/,
    ],
    [
      "an undocumented field",
      (c) => c.replace(BROKER_PROTO, "  // Readable detail when not healthy.\n  string detail = 5;", "  string detail = 5;"),
      "COMMENT_FIELD",
      /Field "detail" should have a non-empty comment/,
    ],
    [
      "an undocumented RPC",
      (c) => c.replace(BROKER_PROTO, "  // A registered node tells the broker it is alive, and how loaded.\n", ""),
      "COMMENT_RPC",
      /RPC "Heartbeat" should have a non-empty comment/,
    ],
    [
      "an undocumented enum value",
      (c) => c.replace(BROKER_PROTO, "  // A content processor.\n", ""),
      "COMMENT_ENUM_VALUE",
      /Enum value "NODE_KIND_PROCESSOR" should have a non-empty comment/,
    ],
    [
      "an undocumented message",
      (c) => c.replace(BROKER_PROTO, "// Response of Heartbeat.\n", ""),
      "COMMENT_MESSAGE",
      /Message "HeartbeatResponse" should have a non-empty comment/,
    ],
    [
      "a request type shared by two RPCs",
      (c) =>
        c.replace(
          BROKER_PROTO,
          "rpc Heartbeat(HeartbeatRequest) returns (HeartbeatResponse);",
          "rpc Heartbeat(RegisterRequest) returns (HeartbeatResponse);",
        ),
      "RPC_REQUEST_STANDARD_NAME",
      /should be named "HeartbeatRequest" or "BrokerServiceHeartbeatRequest"/,
    ],
  ];

  test.each(lintViolations)("buf lint refuses %s", (_name, edit, rule, message) => {
    edit(copy);
    const result = copy.buf(["lint", "--error-format=json"]);
    expect(result.status).not.toBe(0);
    expect(findings(result)).toContainEqual(
      expect.objectContaining({ path: BROKER_PROTO, type: rule, message: expect.stringMatching(message) }),
    );
  });

  test("the format check refuses badly formatted proto and shows the fix", () => {
    copy.replace(BROKER_PROTO, "message HeartbeatResponse {", "message   HeartbeatResponse{");
    const result = copy.buf(["format", "-d", "--exit-code"]);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain(`+++ ${BROKER_PROTO}`);
    expect(result.stdout).toContain("-message   HeartbeatResponse{");
    expect(result.stdout).toContain("+message HeartbeatResponse {");
  });
});
