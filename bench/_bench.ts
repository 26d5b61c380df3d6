/**
 * What every benchmark module shares: the `Benchmark` shape that `run.ts` runs,
 * the figures a run reports, the way a benchmark says it was skipped, and how a
 * value is formatted (the tables are in `_report.ts`, the chart in `_chart.ts`).
 *
 * A benchmark measures, it does not judge: it returns figures, plus flags for
 * anything that makes a figure untrustworthy (error answers under load, say).
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { isLoopback } from "../lib/net_addr.ts";

/** Bytes in a MiB. */
export const MiB = 2 ** 20;

/** One measured number, e.g. `GET /peers` requests per second. */
export interface Figure {
  /** What was measured, e.g. `GET /peers req/s`. */
  name: string;
  /** The value; null when it could not be measured (e.g. no /proc). */
  value: number | null;
  /** Unit of `value`: `req/s`, `ms`, `MiB`, `count`, … */
  unit: string;
  /** Short context, e.g. `wrk -t2 -c32 -d8s`. */
  note?: string;
  /** Set when this figure is wrong or suspect; says why. */
  flag?: string;
  /**
   * The bound an issue sets on this figure (a ratio, usually): met when `value` is at
   * least `min` and at most `max`. The table prints whether it is met.
   */
  target?: { min?: number; max?: number };
  /** For a ratio: what it is measured against, e.g. `raw write of a new 1 GiB file`. */
  reference?: string;
  /**
   * The chart's bar group for a ratio with a `reference`, e.g. `p2p get -o, 1 GiB from
   * 3 sources`: ratios of one scenario to its several references share a group. When
   * unset, the name before its first `: ` (or the whole name) is the group.
   */
  scenario?: string;
}

/** What a benchmark module hands back. */
export interface BenchOutput {
  figures: Figure[];
  /** Free-form lines worth keeping with the figures (versions, sizes, warnings). */
  notes?: string[];
}

/** Settings shared by all benchmarks of one run. */
export interface BenchContext {
  /** Absolute path of the repository root (where `main.ts` is). */
  root: string;
  /** Seconds each load phase lasts. */
  duration: number;
  /** Aborted when the run must stop (Ctrl-C, or the whole run ran out of time). */
  signal: AbortSignal;
  /** Prints one progress line, prefixed with the benchmark's name. */
  log(line: string): void;
}

/** A benchmark module: `run.ts` calls `run()` of each, one after the other. */
export interface Benchmark {
  /** Short snake_case name, used to pick benchmarks on the command line. */
  name: string;
  /** One line saying what is measured. */
  description: string;
  /**
   * How many times `run.ts` runs it when `--runs` is not given; for a very long
   * benchmark that should run fewer times than the default (3).
   */
  runs?: number;
  /** Runs the benchmark; throws `BenchSkip` when a prerequisite is missing. */
  run(ctx: BenchContext): Promise<BenchOutput>;
}

/** Thrown by a benchmark whose prerequisite (a tool, /proc) is missing; not a failure. */
export class BenchSkip extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BenchSkip";
  }
}

/** How one run of a benchmark ended, as `bench/results/*.json` records it. */
export interface BenchResult {
  name: string;
  description: string;
  status: "ok" | "flagged" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  reason?: string;
  seconds: number;
  figures: Figure[];
  notes: string[];
}

/** Formats a figure's value for the table: thousands separated, sensible decimals. */
export function formatValue(value: number | null): string {
  if (value === null) return "n/a";
  const abs = Math.abs(value);
  const digits = Number.isInteger(value) ? 0 : abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Memory of a running process from `/proc/PID/status`, in KiB; null fields when unknown. */
export async function processMemory(
  pid: number,
): Promise<{ peakKiB: number | null; rssKiB: number | null }> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return { peakKiB: null, rssKiB: null };
  }
  const field = (name: string) => {
    const m = text.match(new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, "m"));
    return m ? Number(m[1]) : null;
  };
  return { peakKiB: field("VmHWM"), rssKiB: field("VmRSS") };
}

/** True for a URL whose host is an IPv4 loopback address (127.0.0.0/8). */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return ipaddr.IPv4.isValidFourPartDecimal(host) && isLoopback(host);
}

/** `signal` plus a time limit for a phase moving `bytes`: 60 s + 8 MiB/s. */
export function phaseSignal(signal: AbortSignal, bytes: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(60_000 + (bytes / (8 * MiB)) * 1000)]);
}

/**
 * Milliseconds to wait before a timed step that writes a large file, so that it
 * starts on memory in the state every step of the same size meets: this VM's balloon
 * driver hands freed pages back to the host about 2 s after they are freed, a part at
 * a time, and a page it handed back costs a fault in the host when it is written
 * again. Measured 2026-12-03, a new 1 GiB file written 1 MiB at a time (Deno) right
 * after another one was deleted: 0.40-0.66 s; after waiting 1 s: 1.50 s; 3 s: 4.65 s;
 * 6 s: 7.12 s; 10-15 s: 7.26-7.67 s. A step taken at once after a deletion thus
 * writes its first gigabyte or so almost for free, and a long step pays in full:
 * comparing the two (the raw write beside `p2p get -o`, curl beside it) measured the
 * memory, not the program.
 */
export const SETTLE_MS = 8_000;

/**
 * Before a timed step that writes a large file: writes back what earlier steps left
 * dirty (`sync`), then waits `SETTLE_MS` (see there). Without the `sync`, the kernel
 * writes a step's gigabytes out 30 s later (`vm.dirty_expire_centisecs`), in the
 * middle of whichever step then runs: the encrypted download that followed the filling
 * of sources 2 and 3 ran at 42 and 98 MiB/s against 152 and 278 in the pair after it.
 */
export async function settlePages(signal: AbortSignal): Promise<void> {
  await writeBackDirtyPages(signal);
  await new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", abort);
      resolve();
    }, SETTLE_MS);
    const abort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
  });
}

/** Runs `sync(1)`: every dirty page of every file system goes to its disk. */
async function writeBackDirtyPages(signal: AbortSignal): Promise<void> {
  const { success, stderr } = await new Deno.Command("sync", {
    stdout: "null",
    stderr: "piped",
    signal,
  })
    .output();
  if (!success) throw new Error(`sync failed: ${new TextDecoder().decode(stderr).trim()}`);
}

/** MiB per second of `bytes` moved in `seconds`. */
export function rate(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}

/** KiB (as `/proc` reports memory) in MiB; null stays null. */
export function kibToMib(kib: number | null): number | null {
  return kib === null ? null : kib / 1024;
}

/** CPU seconds used so far by each process. */
export function cpuOf(procs: { pid: number }[]): Promise<(number | null)[]> {
  return Promise.all(procs.map((p) => processCpuSeconds(p.pid)));
}

/** CPU used between two readings, e.g. `1.52 s (87%)`. */
export function cpuUse(before: number | null, after: number | null, seconds: number): string {
  if (before === null || after === null) return "n/a";
  const used = after - before;
  return `${used.toFixed(2)} s (${Math.round((used / seconds) * 100)}%)`;
}

/** Where a command is on PATH, or null. */
export async function which(command: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const path = `${dir}/${command}`;
    try {
      const info = await Deno.stat(path);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return path;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/** Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * CPU time a process has used so far (user + system, all its threads) from
 * `/proc/PID/stat`, in seconds; null when unknown (no /proc, or it has exited).
 */
export function processCpuSeconds(pid: number): Promise<number | null> {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** User + system seconds from a process's or thread's `stat` file; null when unreadable. */
async function statCpuSeconds(statPath: string): Promise<number | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(statPath);
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields 14 (utime) and 15 (stime), counted from 1 over the whole line.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / CLOCK_TICKS : null;
}

/**
 * CPU-seconds each thread of a process has used so far (thread id → seconds), from
 * `/proc/PID/task/TID/stat`; empty when unknown. A thread that ended is not listed.
 */
export async function threadCpuSeconds(pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  try {
    for await (const e of Deno.readDir(`/proc/${pid}/task`)) {
      const s = await statCpuSeconds(`/proc/${pid}/task/${e.name}/stat`);
      if (s !== null) out.set(Number(e.name), s);
    }
  } catch {
    // No /proc, or the process has exited.
  }
  return out;
}

/** The most CPU-seconds any one thread used between two `threadCpuSeconds()` readings. */
export function busiestThread(before: Map<number, number>, after: Map<number, number>): number {
  let most = 0;
  for (const [tid, s] of after) most = Math.max(most, s - (before.get(tid) ?? 0));
  return most;
}

/**
 * CPU-seconds the whole machine has been busy so far (all cores: every state of
 * `/proc/stat`'s `cpu` line but idle and iowait); null without `/proc`.
 */
export async function machineBusySeconds(): Promise<number | null> {
  try {
    const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 5 || f.some((v) => !Number.isFinite(v))) return null;
    const total = f.reduce((a, b) => a + b, 0);
    return (total - f[3] - f[4]) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Bytes free for an unprivileged user on the file system holding `path` (`df -Pk`); null when unknown. */
export async function freeDiskBytes(path: string): Promise<number | null> {
  try {
    const out = await new Deno.Command("df", {
      args: ["-Pk", path],
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(10_000),
    }).output();
    if (!out.success) return null;
    // Filesystem 1024-blocks Used Available Capacity Mounted-on
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    const available = Number(line.trim().split(/\s+/)[3]);
    return Number.isFinite(available) ? available * 1024 : null;
  } catch {
    return null;
  }
}

/** An nginx started by `startNginx()`. */
export interface Nginx {
  /** Stops it (SIGTERM) and waits for its exit; idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `nginx` in the foreground with one worker, every file it writes (pid, error
 * log, temporaries) under `dir`, and `servers` (nginx directives: `upstream` and
 * `server` blocks) inside its `http` block, which has access logs off and sendfile on.
 * The caller waits until it answers.
 */
export async function startNginx(nginx: string, dir: string, servers: string): Promise<Nginx> {
  const conf = `${dir}/nginx.conf`;
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `  ${kind}_temp_path ${dir}/nginx-${kind};`).join("\n");
  await Deno.writeTextFile(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
${temp}
${servers}
}
`,
  );
  const child = new Deno.Command(nginx, {
    args: ["-c", conf, "-p", dir],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        await child.status;
        await child.stderr.cancel().catch(() => {});
      })();
      return stopped;
    },
  };
}
