/**
 * Test helpers that run `p2p tracker` as a real child process: `spawnTracker()`
 * starts it on 127.0.0.1, port 0, learns its URL from the line it prints once it
 * listens, and stops it with a signal while draining its output, so Deno's resource
 * sanitizer sees nothing left open. `tempDir()` is a disposable temporary folder.
 *
 * ```ts
 * await using dir = await tempDir();
 * await using tracker = await spawnTracker({ dir: dir.path, args: ["--peer-ttl", "1"] });
 * await fetch(`${tracker.url}/health`).then((r) => r.json());
 * const exit = await tracker.stop("SIGTERM");
 * ```
 *
 * @module
 */

import { LineStream } from "../proto/lines.ts";

/** The repository root: the working directory of every child process. */
export const REPO_ROOT: URL = new URL("../", import.meta.url);

/** What a tracker prints on stdout once it listens; group 1 is its base URL. */
const LISTENING = /^p2p tracker \S+ listening on (https?:\/\/127\.0\.0\.1:(\d+)) \(/;

/** Options of `spawnTracker()`. */
export interface SpawnTrackerOptions {
  /** Folder of the tracker's files: `DIR/tracker.kv` and `DIR/activity.jsonl`. */
  dir: string;
  /** More arguments after the defaults (`--peer-ttl 1`, `--max-upload 1MiB`). */
  args?: string[];
  /** Aborts the wait for the listening line; 15 s by default. */
  signal?: AbortSignal;
}

/** How a tracker process ended, with everything it printed. */
export interface TrackerExit {
  status: Deno.CommandStatus;
  stdout: string;
  stderr: string;
}

/** A running tracker child process. */
export interface TrackerProcess extends AsyncDisposable {
  /** Base URL, `http://127.0.0.1:PORT` (`https://` when started with a certificate). */
  url: string;
  /** The port the tracker listens on. */
  port: number;
  /** Its KV database file and its JSON-lines activity log. */
  db: string;
  log: string;
  child: Deno.ChildProcess;
  /** What the process printed on stdout so far. */
  stdout(): string;
  /** What the process printed on stderr so far. */
  stderr(): string;
  /** Sends `signal` (SIGTERM by default) and waits for the exit and the end of its output. */
  stop(signal?: Deno.Signal): Promise<TrackerExit>;
  /** `stop("SIGKILL")`. */
  kill(): Promise<TrackerExit>;
}

/** A running p2p child process, before its role's details are read. */
export interface P2pProcess {
  child: Deno.ChildProcess;
  /** What the process printed on stdout so far. */
  stdout(): string;
  /** What the process printed on stderr so far. */
  stderr(): string;
  /** Sends `signal` (SIGTERM by default) and waits for the exit and the end of its output. */
  stop(signal?: Deno.Signal): Promise<TrackerExit>;
}

/**
 * The program and arguments that run `main.ts ...args`: with Deno directly, or inside
 * the network namespace `netns` (`ip netns exec`, which execs the command, so signals
 * reach the p2p process itself).
 */
export function p2pCommand(
  args: string[],
  netns?: string,
  script = "main.ts",
): { cmd: string; args: string[] } {
  // Flags for Deno itself, for profiling a test or bench peer: for example
  // P2P_DENO_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
  const extra = Deno.env.get("P2P_DENO_FLAGS")?.split(" ").filter(Boolean) ?? [];
  const deno = ["run", "-A", ...extra, script, ...args];
  return netns
    ? { cmd: "ip", args: ["netns", "exec", netns, Deno.execPath(), ...deno] }
    : { cmd: Deno.execPath(), args: deno };
}

/** Options of `spawnP2p()`. */
export interface SpawnP2pOptions {
  /** More environment variables for the process (P2P_HOME, say). */
  env?: Record<string, string>;
  /** Gives up (killing the process) when it aborts first; default: after 15 s. */
  signal?: AbortSignal;
  /** Run inside this network namespace. */
  netns?: string;
  /** The script to run instead of `main.ts` (a bench app, say). */
  script?: string;
}

/**
 * Starts `main.ts ...args` (inside `netns` when given) and resolves once a stdout line
 * matches `ready`, with the match. Rejects, with the process's output, when it exits
 * or the signal aborts first.
 */
export async function spawnP2p(
  args: string[],
  ready: RegExp,
  what: string,
  opts: SpawnP2pOptions = {},
): Promise<P2pProcess & { match: RegExpExecArray }> {
  const signal = opts.signal ?? AbortSignal.timeout(15_000);
  const command = p2pCommand(args, opts.netns, opts.script);
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let out = "";
  let err = "";
  const listening = Promise.withResolvers<RegExpExecArray>();
  // Both pumps read to the end, so the child never blocks on a full pipe and the
  // pipes are closed once it exits.
  const stdoutDone = (async () => {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new LineStream());
    for await (const line of lines) {
      out += line + "\n";
      const m = ready.exec(line);
      if (m) listening.resolve(m);
    }
    listening.reject(new Error(`${what} closed its stdout before it listened`));
  })();
  const stderrDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) err += text;
  })();

  let exit: Promise<TrackerExit> | undefined;
  const stop = (sig: Deno.Signal = "SIGTERM"): Promise<TrackerExit> => {
    exit ??= (async () => {
      try {
        child.kill(sig);
      } catch (e) {
        // It exited already: there is nothing to signal, only a status to collect.
        if (!(e instanceof TypeError)) throw e;
      }
      const status = await child.status;
      await Promise.all([stdoutDone, stderrDone]);
      return { status, stdout: out, stderr: err };
    })();
    return exit;
  };

  const aborted = Promise.withResolvers<never>();
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let match: RegExpExecArray;
  try {
    signal.throwIfAborted();
    match = await Promise.race([listening.promise, aborted.promise]);
  } catch (cause) {
    const ended = await stop("SIGKILL");
    throw new Error(
      `${what} did not start (${cause}); exit ${JSON.stringify(ended.status)}\n` +
        `stdout: ${ended.stdout}\nstderr: ${ended.stderr}`,
      { cause },
    );
  } finally {
    signal.removeEventListener("abort", onAbort);
    listening.promise.catch(() => {});
    aborted.promise.catch(() => {});
  }
  return { match, child, stdout: () => out, stderr: () => err, stop };
}

/**
 * Stops `p` with SIGTERM and waits for its exit; SIGKILL when it is not gone within
 * `graceMs` (default 15 s). Resolves with its exit status.
 */
export async function stopGracefully(
  p: P2pProcess,
  graceMs = 15_000,
): Promise<Deno.CommandStatus> {
  const killTimer = setTimeout(() => {
    try {
      p.child.kill("SIGKILL");
    } catch {
      // It exited meanwhile.
    }
  }, graceMs);
  try {
    return (await p.stop("SIGTERM")).status;
  } finally {
    clearTimeout(killTimer);
  }
}

/** The arguments of `p2p tracker` on 127.0.0.1, a free port, `db` and `log`, then `more`. */
export function trackerArgs(db: string, log: string, more: string[] = []): string[] {
  return ["tracker", "--host", "127.0.0.1", "--port", "0", "--db", db, "--log", log, ...more];
}

/**
 * Starts `p2p tracker --host 127.0.0.1 --port 0 --db DIR/tracker.kv --log
 * DIR/activity.jsonl ...args` and resolves once it printed its listening line.
 * Rejects, with the process's output, when it exits or the signal aborts first.
 */
export async function spawnTracker(opts: SpawnTrackerOptions): Promise<TrackerProcess> {
  const db = `${opts.dir}/tracker.kv`;
  const log = `${opts.dir}/activity.jsonl`;
  const p = await spawnP2p(trackerArgs(db, log, opts.args), LISTENING, "tracker", {
    signal: opts.signal,
  });
  const url = p.match[1];
  return {
    url,
    port: Number(new URL(url).port),
    db,
    log,
    child: p.child,
    stdout: p.stdout,
    stderr: p.stderr,
    stop: p.stop,
    kill: () => p.stop("SIGKILL"),
    [Symbol.asyncDispose]: async () => {
      await p.stop("SIGKILL");
    },
  };
}

/** A temporary folder, removed with everything in it on dispose. */
export interface TempDir extends AsyncDisposable {
  path: string;
}

/** Makes a temporary folder for one test; `await using` removes it. */
export async function tempDir(prefix = "p2p-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
