import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { Priority, type Attachment } from "../../gen/uims/common/v1/types";
import { parseRecipient } from "../../common/addresses";
import { connectClient, type Context } from "../connect";
import { CliError } from "../errors";
import { bytes, dim, keyValues, mediumLabel, stateLabel } from "../format";
import { contentTypeFor, parseDuration, parsePriority } from "../parse";
import { resolveClient, type ClientOptions } from "../state";

export interface SendOptions extends ClientOptions {
  to: string;
  subject?: string;
  file?: string[];
  ttl?: string;
  idempotencyKey?: string;
  priority?: string;
  quiet?: boolean;
}

export function readAttachment(path: string): Attachment {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new CliError(`--file ${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`--file ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  // The gateway enforces the real limit (MAX_PAYLOAD_BYTES); this only avoids reading a huge file for nothing.
  if (size > 64 * 1024 * 1024) throw new CliError(`--file ${path}: ${bytes(size)} is more than a message can carry`);
  return { filename: basename(path), contentType: contentTypeFor(path), data: readFileSync(path) };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function send(textArg: string, opts: SendOptions, ctx: Context): Promise<void> {
  const recipient = parseRecipient(opts.to);
  if ("error" in recipient) throw new CliError(`--to: ${recipient.error}`);
  const ttlMs = opts.ttl !== undefined ? parseDuration(opts.ttl, "--ttl") : 0;
  if (opts.ttl !== undefined && ttlMs < 1000) throw new CliError("--ttl must be at least 1s");
  const priority = opts.priority !== undefined ? parsePriority(opts.priority) : Priority.PRIORITY_UNSPECIFIED;
  const attachments = (opts.file ?? []).map(readAttachment);
  // `echo hi | uims send ... -` ends with a newline that is not part of the message.
  const text = textArg === "-" ? (await readStdin()).replace(/\r?\n$/, "") : textArg;
  const target = resolveClient(opts, ctx.stateDir);

  const conn = connectClient(target, ctx);
  try {
    const res = await conn.call((c) => c.send, {
      recipient: opts.to,
      payload: { contentType: "text/plain; charset=utf-8", body: Buffer.from(text, "utf8"), attachments, subject: opts.subject ?? "" },
      idempotencyKey: opts.idempotencyKey ?? "",
      priority,
      ttlSeconds: Math.ceil(ttlMs / 1000),
    });
    if (opts.quiet) {
      process.stdout.write(`${res.messageId}\n`);
      return;
    }
    const st = res.status;
    const pairs: Array<[string, string]> = [
      ["message", res.messageId + (res.duplicate ? dim("  (already sent with this idempotency key)") : "")],
      ["status", st ? `${stateLabel(st.state)} ${dim(`on ${mediumLabel(st.medium)}`)}` : "-"],
    ];
    if (st?.traceId) pairs.push(["trace", st.traceId]);
    process.stdout.write(`${keyValues(pairs)}\n`);
    const as = target.clientId ? ` --as ${target.clientId}` : "";
    process.stdout.write(dim(`follow it: uims status ${res.messageId}${as} --follow\n`));
  } finally {
    conn.close();
  }
}
