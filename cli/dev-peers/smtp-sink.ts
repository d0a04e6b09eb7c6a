import type { AddressInfo } from "node:net";
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

/**
 * An SMTP server on loopback standing in for the outgoing relay, for a mesh on one machine
 * (`uims up`) and for tests: it keeps what it receives (envelope, raw bytes, and the mail as
 * mailparser reads it), tells `onMail` about each, and can be told to refuse the next messages
 * with a given reply at the end of DATA. Nothing is sent on.
 */

export interface ReceivedMail {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  parsed: ParsedMail;
}

export interface SmtpSinkOptions {
  /** Every mail kept (refused ones are not). */
  onMail?: (mail: ReceivedMail) => void;
  /** Errors of the server and its connections (a client that resets, ...); ignored by default. */
  onError?: (err: Error) => void;
}

interface Refusal {
  code: number;
  text: string;
}

export class SmtpSink {
  readonly mails: ReceivedMail[] = [];
  /** Every reply given at the end of DATA, refusals included ("250 ...", "451 ..."). */
  readonly replies: string[] = [];
  private readonly refusals: Refusal[] = [];
  private readonly server: SMTPServer;
  private waiters: Array<() => void> = [];
  port = 0;

  constructor(private readonly opts: SmtpSinkOptions = {}) {
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
              const mail = { envelope, raw, parsed };
              this.mails.push(mail);
              this.replies.push("250 OK");
              this.wake();
              callback(null, "OK: kept");
              try {
                this.opts.onMail?.(mail);
              } catch (err) {
                this.opts.onError?.(err as Error);
              }
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
    // Without a listener, an error of one client's connection would end the process.
    this.server.on("error", (err: Error) => this.opts.onError?.(err));
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  /** Listens on loopback, on `port` or (0, the default) any free port; resolves with the port. */
  async start(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => reject(err);
      this.server.once("error", failed);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", failed);
        resolve();
      });
    });
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
