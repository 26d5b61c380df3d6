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
import {
  Command,
  CommanderError,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import {
  defaultDataDir,
  keepLanOffProxies,
  parseBytes,
  parseCount,
  parseHost,
  parsePeerAddress,
  parsePort,
  parseScanRange,
  parseSeconds,
  parseUrl,
  type PeerAddress,
} from "./cli/options.ts";
import * as client from "./cli/client.ts";
import { get, InterruptedError } from "./cli/get.ts";
import { put } from "./cli/put.ts";
import { ls, rm } from "./cli/payloads.ts";
import { errorLine } from "./cli/errors.ts";
import { keygen } from "./cli/keygen.ts";
import { NETWORK_KEY_ENV } from "./lib/network_key_file.ts";
import { VERSION } from "./version.ts";
import { putMetaTarget, search, SEARCH_HELP, tag, tagAfterPut } from "./cli/search.ts";
import { searchBackendOption, searchUrlOption } from "./cli/search_options.ts";

/** `--network-key-file`, shared by the tracker and the peer. */
function networkKeyOption() {
  return new Option(
    "--network-key-file <path>",
    `the network key (from p2p keygen); only its holders may join. Default: $${NETWORK_KEY_ENV}, ` +
      "else an open network that anyone on the LAN may join",
  );
}

/** Builds the command tree; `main()` runs it. Exported for tests. */
export function buildProgram(): CommandUnknownOpts {
  const program = new Command("p2p")
    .description("Share payloads peer to peer on a LAN: run a tracker, or a peer on every machine.")
    .version(VERSION, "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "show help for a command")
    .exitOverride()
    .configureOutput({
      // Errors are one line: commander's suggestion ("Did you mean …?") joins it.
      outputError: (text, write) =>
        write(errorLine(new Error(text.trim().replace(/^error: /, "")), false) + "\n"),
    })
    .addHelpText(
      "after",
      `
Everyday use: p2p peer, then p2p put FILE here and p2p get ID there (6+ digits of the id,
or the payload's name); p2p ls and p2p rm for what a peer holds. The web app: open
http://HOST:5805/ in a browser.
Ports: tracker 5700; peer TCP chunks 5801, pingback 5800, HTTP 5805 (control API and web
app), app 5810 (internal, served through 5805).
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
    .addOption(networkKeyOption())
    .option("--tls-cert <path>", "PEM certificate (chain): serve HTTPS (with --tls-key)")
    .option("--tls-key <path>", "PEM private key of --tls-cert")
    .addOption(
      new Option("--rate-limit <n>", "requests a second per client address (0: no limit)")
        .default(200).argParser(parseCount(0, 1_000_000)),
    )
    .addOption(
      new Option("--max-conns-per-address <n>", "open connections per client address")
        .default(64).argParser(parseCount(1, 100_000)),
    )
    .addOption(
      new Option("--head-timeout <seconds>", "a request head must arrive whole within this")
        .default(10).argParser(parseSeconds),
    )
    .action(async (opts) => {
      const { runTracker } = await import("./cli/roles.ts");
      await runTracker(opts);
    });

  program.command("peer")
    .description("Run a peer: serve chunks over TCP, download from many peers, replicate.")
    .addOption(
      new Option("--host <host>", "address to listen on").default("0.0.0.0").argParser(parseHost),
    )
    .addOption(
      new Option("--port <port>", "TCP chunk port (0 picks a free one)").default(5801)
        .argParser(parsePort),
    )
    .addOption(
      new Option("--tracker <url>", "tracker to register with, e.g. http://10.0.0.1:5700")
        .argParser(parseUrl),
    )
    .addOption(
      new Option("--peer <host:port>", "a peer to contact at start (repeatable)")
        .argParser((v, prev: PeerAddress[] = []) => [...prev, parsePeerAddress(v)]),
    )
    .option(
      "--data-dir <dir>",
      "where chunks, identity and logs live (default: <data>/peer-<host>-<port>)",
    )
    .option("--name <name>", "a name people recognise (default: the host name)")
    .addOption(
      new Option("--replicas <n>", "copies of each chunk pushed to other peers on put")
        .default(2).argParser(parseCount(0, 16)),
    )
    .addOption(
      new Option("--http-port <port>", "HTTP port of the control API (0 picks a free one)")
        .default(5805).argParser(parsePort),
    )
    .addOption(
      new Option("--pingback-port <port>", "LAN discovery (pingback) port (0 picks a free one)")
        .default(5800).argParser(parsePort),
    )
    .addOption(
      new Option("--app-port <port>", "port of the built-in web app (0 picks a free one)")
        .default(5810).argParser(parsePort),
    )
    .addOption(
      new Option(
        "--app <url>",
        "proxy to this application server instead of the built-in web app, e.g. http://127.0.0.1:3000",
      ).argParser(parseUrl),
    )
    .addOption(
      new Option(
        "--scan [range]",
        "find peers on the LAN at start and every --scan-interval (CIDR or FIRST-LAST; " +
          "default: this machine's subnets). Off unless given: sweeping a network is intrusive",
      ).argParser(parseScanRange),
    )
    .addOption(
      new Option("--scan-interval <seconds>", "period of --scan").default(300).argParser(
        parseSeconds,
      ),
    )
    .addOption(
      new Option(
        "--max-upload-rate <bytes>",
        "cap on bytes per second served to others (e.g. 10MiB)",
      )
        .argParser(parseBytes),
    )
    .addOption(networkKeyOption())
    .option("--tls-cert <path>", "PEM certificate (chain): the HTTP server serves HTTPS")
    .option("--tls-key <path>", "PEM private key of --tls-cert")
    .addOption(
      new Option("--rate-limit <n>", "HTTP requests a second per client address (0: no limit)")
        .default(200).argParser(parseCount(0, 1_000_000)),
    )
    .addOption(
      new Option(
        "--max-store <bytes>",
        "most bytes the chunk store holds (e.g. 20GiB; default: keep 10% of the disk free)",
      ).argParser(parseBytes),
    )
    .option(
      "--insecure-plaintext",
      "links to other peers without encryption, for measuring its cost; only between " +
        "loopback addresses (127.0.0.0/8)",
    )
    .addOption(searchBackendOption())
    .addOption(searchUrlOption())
    .option("--verbose", "print activity to stderr as it happens")
    .action(async (opts) => {
      const { runPeer } = await import("./cli/roles.ts");
      await runPeer(opts);
    });

  const nodeOption = () =>
    new Option(
      "--node <url>",
      "the local peer's HTTP address (default: $P2P_NODE or http://127.0.0.1:5805)",
    )
      .argParser(parseUrl);
  const tokenOption = () =>
    new Option(
      "--token <token>",
      "the peer's control token (default: $P2P_TOKEN, or the token of the peer this user " +
        "runs at --node)",
    );

  program.command("put")
    .description(
      "Store a file (or - for stdin) on the local peer, replicate it, print its payloadId.",
    )
    .argument("<file>", "file to share, or - for standard input")
    .option("--name <name>", "name kept with the payload (default: the file name)")
    .option("--tag <tag...>", "tags that search finds it by")
    .option("--type <mime>", "its content type for search, e.g. text/markdown (default: sniffed)")
    .option("--json", "print a JSON summary instead of the payloadId")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (file, opts) => {
      const metaName = putMetaTarget(file, opts);
      const target = await client.peerTarget(opts.node, opts.token);
      const payloadId = await put(target, file, opts);
      // By id: another payload may have the same name.
      if (metaName) await tagAfterPut(target, payloadId, opts);
    });

  const payloadArgument = "its id, 6 or more of the id's first hex digits, or its name";
  program.command("get")
    .description(
      "Download a payload from many peers at once, verified; save it under its name here, " +
        "or where -o says.",
    )
    .argument("<payload>", payloadArgument)
    .option(
      "-o, --output <path>",
      "a file, a folder to save in, or - for standard output (default: the payload's name " +
        "in this folder; standard output when it is piped)",
    )
    .option("--force", "replace the file if it exists")
    .option("--drop", "remove the local peer's copy once saved (kept if it is a last copy)")
    .option("--json", "print a JSON summary (bytes, seconds, chunks per source)")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (id, opts) => {
      await get(await client.peerTarget(opts.node, opts.token), id, opts);
    });

  program.command("ls")
    .description("List the payloads the local peer holds: yours, and replicas kept for others.")
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (opts) => {
      await ls(await client.peerTarget(opts.node, opts.token), opts);
    });

  program.command("rm")
    .description(
      "Remove a payload's copy from the local peer (refused when it is the last known copy " +
        "of a chunk, unless --force).",
    )
    .argument("<payload>", payloadArgument)
    .option("--force", "remove it even if no other known peer holds some of its chunks")
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (id, opts) => {
      await rm(await client.peerTarget(opts.node, opts.token), id, opts);
    });

  program.command("search")
    .description(
      "Search the text, names, tags and types of the payloads this peer and every live peer " +
        "hold; one line per payload with the peers that hold it.",
    )
    .argument("<query>", 'words, OR, -word, "a phrase", prefix*, name:, tag:, type:')
    .option("--limit <n>", "most hits shown (1-50, default 20)", parseCount(1, 50))
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .addHelpText("after", SEARCH_HELP)
    .action(async (q, opts) => {
      await search(await client.peerTarget(opts.node, opts.token), q, opts);
    });

  program.command("tag")
    .description("Give a payload held here tags (and a content type) that search finds.")
    .argument("<payload>", payloadArgument)
    .argument("[tags...]", "its tags (replace those it had)")
    .option("--type <mime>", "its content type, e.g. text/markdown (default: sniffed)")
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (id, tags, opts) => {
      await tag(await client.peerTarget(opts.node, opts.token), id, tags, opts);
    });

  program.command("where")
    .description("Show which peer holds which chunk positions of a payload.")
    .argument("<payload>", payloadArgument)
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (id, opts) => {
      await client.where(await client.peerTarget(opts.node, opts.token), id, opts);
    });

  program.command("peers")
    .description("List the peers the local peer knows.")
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (opts) => {
      await client.peers(await client.peerTarget(opts.node, opts.token), opts);
    });

  program.command("discover")
    .description(
      "Find the peers on a LAN: list its devices (ARP), ask each one's pingback port, " +
        "verify the signed answers, and remember the peers found.",
    )
    .argument(
      "[range]",
      "CIDR (10.0.0.0/24) or FIRST-LAST; default: the subnets of this machine's interfaces",
      parseScanRange,
    )
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (range, opts) => {
      await client.discover(await client.peerTarget(opts.node, opts.token), range, opts);
    });

  program.command("login")
    .description(
      "Print a new one-time link that opens the local peer's web app logged in (10 minutes).",
    )
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (opts) => {
      await client.login(await client.peerTarget(opts.node, opts.token), opts);
    });

  program.command("status")
    .description("Show the local peer: id, ports, tracker, payloads, peers.")
    .option("--json", "machine-readable output")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (opts) => {
      await client.status(await client.peerTarget(opts.node, opts.token), opts);
    });

  program.command("log")
    .description("Print the local peer's activity, or another peer's (--peer PEER, over TCP).")
    .option("--peer <peer>", "read this peer's log instead (its id, 6+ hex digits of it, or name)")
    .option("-f, --follow", "keep printing new records")
    .option("--type <type>", "only records of this type (dotted prefix, e.g. chunk)")
    .addOption(
      new Option("--limit <n>", "at most this many records").argParser(parseCount(1, 1000)),
    )
    .option("--json", "one JSON record per line")
    .addOption(nodeOption())
    .addOption(tokenOption())
    .action(async (opts) => {
      await client.log(await client.peerTarget(opts.node, opts.token), opts);
    });

  program.command("keygen")
    .description(
      "Make a network key: only the trackers and peers started with it can join the network.",
    )
    .option("-o, --output <file>", "write the key to this file (mode 600) instead of printing it")
    .option("--force", "replace --output if it exists")
    .action(async (opts) => {
      await keygen(opts);
    });

  program.command("demo")
    .description(
      "Run the main job on embedded defaults: a tracker on 127.0.0.1, registrations, an upload.",
    )
    .action(async () => {
      const { runDemo } = await import("./cli/demo.ts");
      await runDemo();
    });

  return program;
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  // With --json, errors are JSON too (on stdout, where the answer would have been).
  const json = args.includes("--json");
  try {
    keepLanOffProxies();
    const program = buildProgram();
    if (json) jsonUsageErrors(program);
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    // One line: a message that spans lines (a server's answer, say) is joined.
    if (json) console.log(errorLine(err, true));
    else console.error(errorLine(err, false));
    return err instanceof InterruptedError ? 130 : 1;
  }
}

/** Usage errors as `{"error":{"code":"usage",…}}` lines on stdout, for `--json`. */
function jsonUsageErrors(program: CommandUnknownOpts): void {
  const configure = (cmd: CommandUnknownOpts) => {
    cmd.configureOutput({
      outputError: (text) => {
        const message = text.trim().replace(/\s*\n\s*/g, " ").replace(/^error: /, "");
        console.log(JSON.stringify({ error: { code: "usage", message } }));
      },
    });
    for (const sub of cmd.commands) configure(sub as CommandUnknownOpts);
  };
  configure(program);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
