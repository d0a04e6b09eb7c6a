#!/usr/bin/env node
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command, Option } from "commander";
import type { Context } from "./connect";
import { describeError } from "./errors";
import { dim, red, setColour } from "./format";
import { parseDuration } from "./parse";
import { resolveStateDir, type AdminOptions } from "./state";
import { gateways, route, transaction, usage, type RouteOptions, type UsageOptions } from "./commands/admin";
import { inbox, type InboxOptions } from "./commands/inbox";
import { keys } from "./commands/keys";
import { addProfile, deleteProfile, listProfiles, rotateToken, showProfile, type AddProfileOptions } from "./commands/profiles";
import { send, type SendOptions } from "./commands/send";
import { status, type StatusOptions } from "./commands/status";
import { up, type UpOptions } from "./commands/up";
import { benchAndReport, withBenchOptions } from "../bench/main";

/** The `uims` command line: wiring only; each command lives in commands/. */

/** The version in the nearest package.json upwards (the same from cli/ and from dist/cli/). */
function packageVersion(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) return (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version ?? "0.0.0";
    if (dirname(dir) === dir) return "0.0.0";
  }
}

interface GlobalOptions {
  stateDir?: string;
  timeout: string;
  color: boolean;
}

function context(cmd: Command): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!g.color) setColour(false);
  return { stateDir: resolveStateDir(g.stateDir), timeoutMs: parseDuration(g.timeout, "--timeout") };
}

/**
 * Runs a command's action: expected errors (bad input, gRPC refusals, no running mesh) become one
 * line on stderr and exit code 1; anything else is a bug and keeps its stack trace.
 */
function action<A extends unknown[]>(run: (ctx: Context, ...args: A) => Promise<number | void> | number | void) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    let code = 0;
    try {
      code = (await run(context(cmd), ...(args.slice(0, -1) as A))) ?? 0;
    } catch (err) {
      const { message, hint, expected } = describeError(err);
      process.stderr.write(`${red("uims: error:")} ${message}\n`);
      if (hint) process.stderr.write(`${dim(hint)}\n`);
      if (!expected) process.stderr.write(dim("this looks like a bug in uims; please report it with the lines above\n"));
      code = 1;
    }
    process.exitCode = code;
    // gRPC channels are closed by now; should anything still hold the event loop, do not hang.
    setTimeout(() => process.exit(code), 200).unref();
  };
}

function clientOptions(cmd: Command): Command {
  return cmd
    .option("--as <client>", "act as this client of the mesh that `uims up` started (endpoint and token from mesh.json)")
    .option("--gateway <host:port>", "an im gateway's client API (env UIMS_GATEWAY)")
    .option("--token <token>", "the client's token (env UIMS_TOKEN)");
}

function adminOptions(cmd: Command): Command {
  return cmd
    .option("--broker <host:port>", "the broker's admin API (env UIMS_BROKER; default from mesh.json)")
    .option("--admin-token <token>", "the admin token (env UIMS_ADMIN_TOKEN; default from mesh.json)");
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function buildProgram(): Command {
  const program = new Command("uims")
    .description("uims: unified instant messaging mesh. Start a local mesh, send, watch inboxes and statuses, manage profiles.")
    .version(packageVersion())
    .option("--state-dir <dir>", "where `uims up` keeps mesh.json and logs (env UIMS_STATE_DIR)", undefined)
    .option("--timeout <duration>", "deadline of each call, e.g. 5s, 1m", "10s")
    .option("--no-color", "plain output (also when NO_COLOR is set or output is not a terminal)")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError("(add --help for usage)");

  program
    .command("up")
    .description(
      "start the whole mesh locally (broker, im, email and sms gateways, processor, and a local SMSC and SMTP sink for the gateways to talk to) with demo clients alice, bob and carol; Ctrl-C stops it",
    )
    .addOption(new Option("--redis <url>", "share one Redis between all servers (default: embedded store per process)").env("REDIS_URL"))
    .option("--im <count>", "number of im gateways", "2")
    .option("--no-peers", "only the broker, the im gateways and the processor: no email and sms gateways, no local SMSC and SMTP sink")
    .action(action((ctx, opts: UpOptions) => up(opts, ctx)));

  clientOptions(
    program
      .command("send")
      .description("send a message (text, or - to read it from stdin)")
      .argument("<text>", "the message text")
      .requiredOption("--to <recipient>", 'a client id ("bob") or an address: im:bob, sms:+491701234567, mailto:bob@example.org')
      .option("--subject <subject>", "subject line (media that have one)")
      .option("--file <path>", "attach a file (repeat for more)", collect)
      .option("--ttl <duration>", "time to deliver before the message expires, e.g. 60s, 5m")
      .option("--idempotency-key <key>", "makes retries safe: a second send with the same key returns the first message")
      .option("--priority <priority>", "low, normal or high")
      .option("-q, --quiet", "print only the message id"),
  )
    .addHelpText("after", '\nExample:\n  uims send --as alice --to bob --subject lunch --file menu.pdf "12:30?"')
    .action(action((ctx, text: string, opts: SendOptions) => send(text, opts, ctx)));

  clientOptions(
    program
      .command("inbox")
      .description("follow a client's live inbox; reconnects and resumes where it left off when the stream breaks")
      .option("--from-start", "replay every retained message first")
      .option("--after <cursor>", "resume after this cursor (printed with each message)")
      .option("--manual-ack", "count a message as delivered only when acknowledged (this command acknowledges after printing)")
      .option("--read", "acknowledge each message as read"),
  ).action(action((ctx, opts: InboxOptions) => inbox(opts, ctx)));

  clientOptions(
    program
      .command("status")
      .description("a sent message's status with every step and its trace id")
      .argument("<message-id>", "the id `uims send` printed")
      .option("-f, --follow", "print changes as they happen until the message is final (read, failed, expired)"),
  ).action(action((ctx, id: string, opts: StatusOptions) => status(id, opts, ctx)));

  const profiles = program.command("profiles").description("client profiles on the broker: add, show, list, delete, rotate-token");
  adminOptions(
    profiles
      .command("add")
      .description("create a profile and print its token (stored in mesh.json too, when the mesh came from `uims up`)")
      .argument("<client-id>", "1 to 64 of a-z, 0-9, '.', '_', '-'")
      .option("--name <name>", "display name")
      .option("--im", "an im address (the client id); the default when no address is given")
      .option("--sms <number>", "SMS number, E.164 (+491701234567)")
      .option("--email <address>", "e-mail address")
      .option("--voice <number>", "voice mail number, E.164")
      .option("--fax <number>", "fax number, E.164")
      .option("--prefer <media>", "media in order of preference, e.g. im,sms,email (default: the addresses given, in this order)")
      .option("--quiet <HH:MM-HH:MM>", "quiet hours, e.g. 22:00-07:00 (im is never quiet)")
      .option("--tz <zone>", "IANA time zone of the quiet hours, e.g. Europe/Berlin (default UTC)"),
  )
    .addHelpText("after", "\nExample:\n  uims profiles add dave --name Dave --sms +491701111111 --prefer im,sms --quiet 22:00-07:00 --tz Europe/Berlin")
    .action(action((ctx, id: string, opts: AddProfileOptions) => addProfile(id, opts, ctx)));
  adminOptions(profiles.command("show").description("one profile").argument("<client-id>")).action(action((ctx, id: string, opts: AdminOptions) => showProfile(id, opts, ctx)));
  adminOptions(profiles.command("list").description("every profile")).action(action((ctx, opts: AdminOptions) => listProfiles(opts, ctx)));
  adminOptions(profiles.command("delete").description("delete a profile and its token").argument("<client-id>")).action(action((ctx, id: string, opts: AdminOptions) => deleteProfile(id, opts, ctx)));
  adminOptions(profiles.command("rotate-token").description("issue a new token; the old one stops working").argument("<client-id>")).action(
    action((ctx, id: string, opts: AdminOptions) => rotateToken(id, opts, ctx)),
  );

  adminOptions(
    program
      .command("route")
      .description("explain the route the broker would choose now, without sending")
      .requiredOption("--from <sender>", "sender client id")
      .requiredOption("--to <recipient>", "client id or address (sms:+49..., mailto:...)")
      .option("--content-type <type>", "content type of the message (default text/plain)")
      .option("--size <bytes>", "payload size in bytes"),
  ).action(action((ctx, opts: RouteOptions) => route(opts, ctx)));

  adminOptions(program.command("gateways").description("the broker's registry: every gateway with its health").option("--medium <medium>", "only gateways of this medium")).action(
    action((ctx, opts: AdminOptions & { medium?: string }) => gateways(opts, ctx)),
  );

  adminOptions(
    program
      .command("usage")
      .description("accounting: messages, bytes and SMS segments per sender, medium and UTC day")
      .option("--sender <client>", "only this sender")
      .option("--medium <medium>", "only this medium")
      .option("--from <YYYY-MM-DD>", "first UTC day (default today)")
      .option("--to <YYYY-MM-DD>", "last UTC day (default --from)"),
  ).action(action((ctx, opts: UsageOptions) => usage(opts, ctx)));

  adminOptions(program.command("tx").description("the broker's view of one message's transaction").argument("<message-id>")).action(
    action((ctx, id: string, opts: AdminOptions) => transaction(id, opts, ctx)),
  );

  program
    .command("keys")
    .description("print fresh mesh secrets as NAME=value lines (for an operator's Secret)")
    .option("--key-id <id>", "id of the new keys (default k<today>)")
    .action(action((_ctx, opts: { keyId?: string }) => keys(opts)));

  withBenchOptions(
    program.command("bench").description("measure the mesh end to end and against a store-and-forward baseline (as make bench): its own processes, Redis and NATS"),
  ).action(action(async (_ctx, opts: { quick: boolean; seconds: string; sizes: string; baseline: boolean; out: string }) => {
    await benchAndReport(opts);
  }));

  return program;
}

if (require.main === module) {
  void buildProgram().parseAsync(process.argv);
}
