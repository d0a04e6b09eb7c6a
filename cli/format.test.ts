import { FailureKind, Medium, MessageState } from "../gen/uims/common/v1/types";
import { ago, bytes, formatTime, keyValues, setColour, stateLabel, stateName, statusEventRow, table, visibleWidth, colourEnabled } from "./format";

describe("table", () => {
  beforeAll(() => setColour(false));

  test("aligns columns two spaces apart, without trailing blanks", () => {
    const out = table(["node", "role", "pid"], [
      ["broker-0", "broker", "101"],
      ["gw-im-1", "im gateway", "7"],
    ]);
    expect(out.split("\n")).toEqual(["node      role        pid", "broker-0  broker      101", "gw-im-1   im gateway  7"]);
  });

  test("right-aligned columns and an empty table", () => {
    expect(table([{ header: "n", align: "right" }, "x"], [["5", "a"], ["100", "b"]]).split("\n")).toEqual(["  n  x", "  5  a", "100  b"]);
    expect(table(["a", "b"], [])).toBe("a  b\n(none)");
  });

  test("colour codes take no width", () => {
    setColour(true);
    try {
      const out = table(["state", "x"], [[stateLabel(MessageState.MESSAGE_STATE_DELIVERED), "1"], ["ROUTED", "2"]]);
      const lines = out.split("\n").map((l) => l.replace(/\u001b\[[0-9;]*m/g, ""));
      expect(lines).toEqual(["state      x", "DELIVERED  1", "ROUTED     2"]);
      expect(visibleWidth(stateLabel(MessageState.MESSAGE_STATE_FAILED))).toBe("FAILED".length);
    } finally {
      setColour(false);
    }
  });

  test("key/value lines are aligned", () => {
    expect(keyValues([["message", "m1"], ["trace", "t1"]])).toBe("message  m1\ntrace    t1");
  });
});

describe("names and values", () => {
  beforeAll(() => setColour(false));

  test("states and status events", () => {
    expect(stateName(MessageState.MESSAGE_STATE_TRANSMITTED)).toBe("TRANSMITTED");
    const now = new Date(2024, 4, 1, 12, 0, 0).getTime();
    const row = statusEventRow(
      { state: MessageState.MESSAGE_STATE_FAILED, medium: Medium.MEDIUM_SMS, atUnixMs: now - 1500, failureKind: FailureKind.FAILURE_KIND_TEMPORARY, reason: "SMSC down", attempt: 2, gatewayId: "gw-sms-1" },
      now,
    );
    expect(row).toEqual(["11:59:58.500", "FAILED", "sms", "2", "gw-sms-1", "temporary: SMSC down"]);
  });

  test("times: today with milliseconds, other days with the date", () => {
    const now = new Date(2024, 4, 1, 12, 0, 0).getTime();
    expect(formatTime(new Date(2024, 4, 1, 9, 5, 7, 42).getTime(), now)).toBe("09:05:07.042");
    expect(formatTime(new Date(2024, 3, 30, 23, 59, 1).getTime(), now)).toBe("2024-04-30 23:59:01");
    expect(formatTime(0, now)).toBe("-");
    expect(ago(now - 3_000, now)).toBe("3s ago");
    expect(ago(now - 7_200_000, now)).toBe("2h ago");
    expect(ago(0, now)).toBe("never");
  });

  test("sizes", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(4 * 1024 * 1024)).toBe("4.0 MiB");
  });

  test("colour only on a terminal and never with NO_COLOR", () => {
    const tty = { isTTY: true } as NodeJS.WriteStream;
    const pipe = { isTTY: false } as NodeJS.WriteStream;
    expect(colourEnabled(tty, {})).toBe(true);
    expect(colourEnabled(pipe, {})).toBe(false);
    expect(colourEnabled(tty, { NO_COLOR: "1" })).toBe(false);
    expect(colourEnabled(pipe, { FORCE_COLOR: "1" })).toBe(true);
  });
});
