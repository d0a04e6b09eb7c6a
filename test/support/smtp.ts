import { execFile } from "node:child_process";
import type { AddressInfo } from "node:net";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

/** SMTP peers for tests, on loopback: a sink standing in for a relay, and swaks as an outside client. */

export interface ReceivedMail {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  parsed: ParsedMail;
}

interface Refusal {
  code: number;
  text: string;
}

/**
 * A relay that keeps what it receives (envelope, raw bytes, and the mail as mailparser reads
 * it), and can be told to refuse the next messages with a given reply at the end of DATA.
 */
export class SmtpSink {
  readonly mails: ReceivedMail[] = [];
  /** Every reply given at the end of DATA, refusals included ("250 ...", "451 ..."). */
  readonly replies: string[] = [];
  private readonly refusals: Refusal[] = [];
  private readonly server: SMTPServer;
  private waiters: Array<() => void> = [];
  port = 0;

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["AUTH", "STARTTLS"],
      disableReverseLookup: true,
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.once("end", () => {
          const refusal = this.refusals.shift();
          if (refusal) {
            this.replies.push(`${refusal.code} ${refusal.text}`);
            this.wake();
            return callback(Object.assign(new Error(refusal.text), { responseCode: refusal.code }));
          }
          const raw = Buffer.concat(chunks);
          const envelope = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
          };
          simpleParser(raw).then(
            (parsed) => {
              this.mails.push({ envelope, raw, parsed });
              this.replies.push("250 OK");
              this.wake();
              callback(null, "OK: kept");
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", () => resolve()));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** The next `count` messages are refused with this reply, e.g. (2, 451, "4.3.0 try later"). */
  refuseNext(count: number, code: number, text: string): void {
    for (let i = 0; i < count; i++) this.refusals.push({ code, text });
  }

  /** Resolves with the first mail (from now on or already kept) that matches. */
  async waitForMail(match: (mail: ReceivedMail) => boolean, timeoutMs = 10_000): Promise<ReceivedMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.mails.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching mail within ${timeoutMs} ms (${this.mails.length} kept, replies: ${this.replies.join(" | ")})`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

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
