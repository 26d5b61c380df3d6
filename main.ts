/**
 * `p2p`: one program that runs as a tracker or as a peer. This is the command-line
 * entry: it parses arguments once and calls the role's core.
 *
 * ```sh
 * p2p tracker --port 5700
 * p2p demo
 * p2p --help
 * ```
 *
 * Bad arguments print one line naming what was wrong and exit with status 2;
 * failures at run time exit with status 1.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import {
  defaultDataDir,
  dirname,
  parseBytes,
  parseHost,
  parsePort,
  parseSeconds,
} from "./cli/options.ts";
import { runDemo } from "./cli/demo.ts";
import { startTracker } from "./tracker/server.ts";
import { VERSION } from "./version.ts";

/** Options of `p2p tracker`, as parsed. */
interface TrackerCliOptions {
  host: string;
  port: number;
  db?: string;
  log?: string;
  peerTtl: number;
  maxUpload: number;
}

/** Builds the command tree; `main()` runs it. Exported for tests. */
export function buildProgram(): Command {
  const program = new Command("p2p")
    .description("Share payloads peer to peer on a LAN: run a tracker, or a peer on every machine.")
    .version(VERSION, "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "show help for a command")
    .exitOverride()
    .configureOutput({
      // Errors are one line: commander's suggestion ("Did you mean …?") joins it.
      outputError: (text, write) => write(text.trim().replace(/\s*\n\s*/g, " ") + "\n"),
    })
    .addHelpText(
      "after",
      `
Ports: tracker 5700; peer TCP chunks 5801, pingback 5800, HTTP 5805, app 5810.
Data: ${defaultDataDir()} (set P2P_HOME to move it).`,
    );

  program.command("tracker")
    .description("Run the tracker: the HTTP API peers register with, payload ids, chunk holders.")
    .addOption(
      new Option("--host <host>", "address to listen on").default("0.0.0.0").argParser(parseHost),
    )
    .addOption(
      new Option("--port <port>", "HTTP port (0 picks a free one)").default(5700).argParser(
        parsePort,
      ),
    )
    .option("--db <path>", "Deno KV database file (default: <data>/tracker.kv)")
    .option("--log <path>", "JSON-lines activity log (default: tracker-activity.jsonl beside --db)")
    .addOption(
      new Option("--peer-ttl <seconds>", "a peer that stops heartbeating expires after this")
        .default(60).argParser(parseSeconds),
    )
    .addOption(
      new Option("--max-upload <bytes>", "largest payload POST /payloads accepts (e.g. 64MiB)")
        .default(64 * 1024 * 1024, "64MiB").argParser(parseBytes),
    )
    .action(async (opts: TrackerCliOptions) => {
      await runTracker(opts);
    });

  program.command("demo")
    .description(
      "Run the main job on embedded defaults: a tracker on 127.0.0.1, registrations, an upload.",
    )
    .action(async () => {
      await runDemo();
    });

  return program;
}

async function runTracker(opts: TrackerCliOptions): Promise<void> {
  const db = opts.db ?? `${defaultDataDir()}/tracker.kv`;
  const log = opts.log ?? `${dirname(db)}/tracker-activity.jsonl`;
  await Deno.mkdir(dirname(db), { recursive: true });
  await Deno.mkdir(dirname(log), { recursive: true });
  let tracker;
  try {
    tracker = await startTracker({
      host: opts.host,
      port: opts.port,
      db,
      log,
      peerTtl: opts.peerTtl,
      maxUpload: opts.maxUpload,
    });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new RunError(`cannot listen on ${opts.host}:${opts.port}: the address is in use`);
    }
    throw err;
  }
  console.log(`p2p tracker ${VERSION} listening on ${tracker.url} (db ${db}, log ${log})`);
  const onSignal = () => {
    console.log("p2p tracker: stopping");
    tracker.stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await tracker.finished;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  console.log("p2p tracker: stopped");
}

/** A failure at run time that deserves one line, not a stack trace. */
class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunError";
  }
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const message = err instanceof Error ? err.message : String(err);
    console.error(`p2p: ${message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
