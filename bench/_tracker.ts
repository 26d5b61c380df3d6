/**
 * Starts a real tracker as a child process (`main.ts tracker` on 127.0.0.1, port 0)
 * for benchmarks to load, and stops it with SIGTERM. Its output is drained all the
 * time, so a chatty tracker never blocks on a full pipe; the last lines are kept
 * for error messages.
 *
 * @module
 */
import { isLoopbackUrl, processMemory } from "./_bench.ts";

/** What `spawnTracker()` needs. */
export interface SpawnTrackerOptions {
  /** Repository root, where `main.ts` is. */
  root: string;
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
  /** The last lines it printed (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 15 s); idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts ...args` in `root`, drains its output all the time, and resolves
 * once a line matches `ready` and the URL in group `urlGroup` is on loopback.
 */
export async function spawnListening(opts: {
  root: string;
  /** The script to run (default `main.ts`). */
  script?: string;
  args: string[];
  ready: RegExp;
  urlGroup: number;
  what: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<ListeningChild> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", opts.script ?? "main.ts", ...opts.args],
    cwd: opts.root,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const lines: string[] = [];
  const listening = Promise.withResolvers<RegExpMatchArray>();
  const keep = (prefix: string) => (line: string) => {
    lines.push(prefix + line);
    if (lines.length > KEEP_LINES) lines.shift();
    const m = line.match(opts.ready);
    if (m) listening.resolve(m);
  };
  const pumps = Promise.all([
    drainLines(child.stdout, keep("")),
    drainLines(child.stderr, keep("stderr: ")),
  ]);
  const output = () => lines.join("\n");
  child.status.then((s) => {
    listening.reject(
      new Error(`${opts.what} exited with status ${s.code} before listening:\n${output()}`),
    );
  });

  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // It has exited already.
      }
      const killTimer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }, 15_000);
      try {
        const status = await child.status;
        await pumps;
        return status;
      } finally {
        clearTimeout(killTimer);
      }
    })();
    return stopping;
  };

  const deadline = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const onAbort = () =>
    listening.reject(new Error(`${opts.what} did not say it listens in time:\n${output()}`));
  signal.addEventListener("abort", onAbort, { once: true });
  let match: RegExpMatchArray;
  try {
    match = await listening.promise;
    const url = match[opts.urlGroup];
    if (!isLoopbackUrl(url)) throw new Error(`${opts.what} listens on '${url}', not on loopback`);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return { child, match, output, stop };
}

/** Starts `main.ts tracker` and resolves once it printed the URL it listens on. */
export async function spawnTracker(opts: SpawnTrackerOptions): Promise<TrackerProcess> {
  const db = `${opts.dir}/tracker.kv`;
  const log = `${opts.dir}/tracker-activity.jsonl`;
  const { child, match, output, stop } = await spawnListening({
    root: opts.root,
    args: [
      "tracker",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--db",
      db,
      "--log",
      log,
      "--peer-ttl",
      String(opts.peerTtl),
    ],
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

/** Reads a byte stream to its end, calling `onLine` with each text line. */
async function drainLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop()!;
    for (const line of parts) onLine(line);
  }
  if (rest) onLine(rest);
}
