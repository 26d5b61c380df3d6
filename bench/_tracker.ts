/**
 * Starts a real tracker as a child process (`main.ts tracker` on 127.0.0.1, port 0)
 * for benchmarks to load, and stops it with SIGTERM. Its output is drained all the
 * time (by the test suite's `spawnP2p()`), so a chatty tracker never blocks on a
 * full pipe; the last lines are kept for error messages.
 *
 * @module
 */
import { isLoopbackUrl, processMemory } from "./_bench.ts";
import { spawnP2p, stopGracefully, trackerArgs } from "../tests/_tracker_process.ts";

/** What `spawnTracker()` needs. */
export interface SpawnTrackerOptions {
  /** Directory for the KV database and the activity log. */
  dir: string;
  /** `--peer-ttl` in seconds. */
  peerTtl: number;
  /** Milliseconds to wait for the "listening on" line. */
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A tracker child process. `await using` stops it. */
export interface TrackerProcess extends AsyncDisposable {
  /** Base URL read from its stdout, e.g. `http://127.0.0.1:40123`. */
  url: string;
  pid: number;
  db: string;
  log: string;
  /** Current and peak resident memory, from /proc. */
  memory(): Promise<{ peakKiB: number | null; rssKiB: number | null }>;
  /** The last lines it printed (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 15 s); idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

const KEEP_LINES = 40;
const LISTENING = /listening on (http:\/\/[^\s]+) \(/;

/** A child process of `main.ts` that said where it listens. */
export interface ListeningChild {
  child: Deno.ChildProcess;
  /** The match of the "listening" pattern. */
  match: RegExpMatchArray;
  /** The last lines it printed (stdout, then stderr). */
  output(): string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 15 s); idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts ...args` (or `script`) with the test suite's `spawnP2p()`, which
 * drains its output all the time, and resolves once a line matches `ready` and the
 * URL in group `urlGroup` is on loopback.
 */
export async function spawnListening(opts: {
  /** The script to run (default `main.ts`). */
  script?: string;
  args: string[];
  ready: RegExp;
  urlGroup: number;
  what: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<ListeningChild> {
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const p = await spawnP2p(opts.args, opts.ready, opts.what, { signal, script: opts.script });
  const url = p.match[opts.urlGroup];
  if (!isLoopbackUrl(url)) {
    await p.stop("SIGKILL");
    throw new Error(`${opts.what} listens on '${url}', not on loopback`);
  }
  const tail = (text: string) => text.trimEnd().split("\n").slice(-KEEP_LINES).join("\n");
  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = () => stopping ??= stopGracefully(p);
  return {
    child: p.child,
    match: p.match,
    output: () => `${tail(p.stdout())}\nstderr: ${tail(p.stderr())}`,
    stop,
  };
}

/** Starts `main.ts tracker` and resolves once it printed the URL it listens on. */
export async function spawnTracker(opts: SpawnTrackerOptions): Promise<TrackerProcess> {
  const db = `${opts.dir}/tracker.kv`;
  const log = `${opts.dir}/tracker-activity.jsonl`;
  const { child, match, output, stop } = await spawnListening({
    // wrk loads from one address: the per-address request rate must not cap it.
    args: trackerArgs(db, log, ["--peer-ttl", String(opts.peerTtl), "--rate-limit", "0"]),
    ready: LISTENING,
    urlGroup: 1,
    what: "Tracker",
    timeoutMs: opts.startTimeoutMs,
    signal: opts.signal,
  });
  return {
    url: match[1],
    pid: child.pid,
    db,
    log,
    memory: () => processMemory(child.pid),
    output,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
