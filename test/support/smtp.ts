import { execFile } from "node:child_process";

/** SMTP peers for tests, on loopback: the sink standing in for a relay, and swaks as an outside client. */

export { SmtpSink, type ReceivedMail } from "../../cli/dev-peers/smtp-sink";

export interface SwaksResult {
  /** swaks' exit code: 0 sent, 24 no recipient accepted, 26 refused after DATA, ... */
  exitCode: number;
  transcript: string;
  /** Server replies in order, e.g. ["220 ...", "250 ...", "550 5.7.1 ..."]. */
  replies: string[];
  /** The reply that decided: the last one before QUIT's 221. */
  decisive: string;
}

/** Runs Debian's swaks against a local SMTP server; `input` is fed to stdin (for `--data -`). */
export function swaks(port: number, args: string[], input?: Buffer | string): Promise<SwaksResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "swaks",
      ["--server", "127.0.0.1", "--port", String(port), "--timeout", "20", "--hide-informational", ...args],
      { encoding: "buffer", timeout: 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const exitCode = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        if (err && typeof err.code !== "number") return reject(err);
        const transcript = `${stdout.toString("latin1")}${stderr.toString("latin1")}`;
        // Server lines: " <-  250 ..." (expected), "<** 550 ..." (unexpected), " <-  250-..." (continued).
        const replies = transcript
          .split(/\r?\n/)
          .map((l) => /^\s*<(?:-|\*\*)\s+(\d{3}[ -].*)$/.exec(l)?.[1])
          .filter((l): l is string => l !== undefined && /^\d{3} /.test(l));
        const beforeQuit = replies.filter((r) => !r.startsWith("221 "));
        resolve({ exitCode, transcript, replies, decisive: beforeQuit[beforeQuit.length - 1] ?? "" });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}
