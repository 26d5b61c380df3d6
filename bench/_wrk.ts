/**
 * Runs the `wrk` HTTP load generator against a loopback URL and reads its report.
 * `parseWrkReport()` is pure, so it is tested on captured output.
 *
 * @module
 */
import { isLoopbackUrl, which } from "./_bench.ts";

/** What `runWrk()` is asked to do. */
export interface WrkOptions {
  /** Target; must be on 127.0.0.0/8. */
  url: string;
  threads: number;
  connections: number;
  /** Seconds of load. */
  duration: number;
  /** Path of a Lua script (`-s`), for methods other than GET. */
  script?: string;
  /** Seconds after which wrk counts a request as timed out. */
  timeout?: number;
  /** Request headers (`-H`), e.g. `Accept-Encoding: gzip,br`. */
  headers?: string[];
  signal?: AbortSignal;
}

/** The numbers of one wrk report; latencies in milliseconds. */
export interface WrkReport {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  latencyAvgMs: number;
  latencyMaxMs: number;
  /** Latency distribution from `--latency`: percentile → ms. */
  percentilesMs: Record<string, number>;
  /** Answers with a status outside 2xx and 3xx. */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** Bytes read per second. */
  transferPerSec: number;
}

/** The wrk binary on PATH, or null. */
export function findWrk(): Promise<string | null> {
  return which("wrk");
}

/** Runs wrk once with `--latency`; resolves with its parsed report and raw output. */
export async function runWrk(opts: WrkOptions): Promise<{ report: WrkReport; output: string }> {
  if (!isLoopbackUrl(opts.url)) {
    throw new RangeError(`Cannot load '${opts.url}': benchmarks only target 127.0.0.0/8`);
  }
  const args = [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${opts.duration}s`,
    `--timeout`,
    `${opts.timeout ?? 5}s`,
    "--latency",
    ...(opts.headers ?? []).flatMap((h) => ["-H", h]),
    ...(opts.script ? ["-s", opts.script] : []),
    opts.url,
  ];
  // wrk stops by itself after -d; the deadline only catches a wrk that hangs.
  const deadline = AbortSignal.timeout((opts.duration + 30) * 1000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const out = await new Deno.Command("wrk", { args, stdout: "piped", stderr: "piped", signal })
    .output();
  const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) {
    const why = deadline.aborted ? "ran past its deadline" : `exited with status ${out.code}`;
    throw new Error(`wrk ${args.join(" ")} ${why}:\n${output.trim()}`);
  }
  return { report: parseWrkReport(output), output };
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
};

function ms(value: string, unit: string): number {
  const scale = TIME_UNITS[unit];
  if (scale === undefined) throw new RangeError(`Cannot read wrk time unit '${unit}'`);
  return Number(value) * scale;
}

/**
 * Reads a wrk 4.x report (run with `--latency`). Throws `RangeError` naming the
 * missing line when the text is not such a report.
 */
export function parseWrkReport(text: string): WrkReport {
  const need = (re: RegExp, what: string): RegExpMatchArray => {
    const m = text.match(re);
    if (!m) throw new RangeError(`Cannot read wrk output: no '${what}' line in:\n${text.trim()}`);
    return m;
  };
  const rps = need(/^Requests\/sec:\s+([\d.]+)\s*$/m, "Requests/sec");
  const total = need(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m, "N requests in T");
  const lat = need(
    /^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s+[\d.]+(?:us|ms|s|m|h)\s+([\d.]+)(us|ms|s|m|h)/m,
    "Latency avg stdev max",
  );
  const percentilesMs: Record<string, number> = {};
  for (const m of text.matchAll(/^\s+(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) {
    percentilesMs[m[1]] = ms(m[2], m[3]);
  }
  if (percentilesMs["50"] === undefined || percentilesMs["99"] === undefined) {
    throw new RangeError(`Cannot read wrk output: no latency distribution (run with --latency)`);
  }
  const non2xx = text.match(/^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$/m);
  const sock = text.match(
    /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$/m,
  );
  const transfer = text.match(/^Transfer\/sec:\s+([\d.]+)([KMGT]?B)\s*$/m);
  return {
    requests: Number(total[1]),
    seconds: ms(total[2], total[3]) / 1000,
    requestsPerSec: Number(rps[1]),
    latencyAvgMs: ms(lat[1], lat[2]),
    latencyMaxMs: ms(lat[3], lat[4]),
    percentilesMs,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
    },
    transferPerSec: transfer ? Number(transfer[1]) * SIZE_UNITS[transfer[2]] : 0,
  };
}

/** Quotes a string as a Lua long-bracket literal, whatever it contains. */
export function luaString(s: string): string {
  let eq = "";
  while (s.includes(`]${eq}]`)) eq += "=";
  // Lua drops a newline right after the opening bracket: give it one to drop.
  return `[${eq}[\n${s}]${eq}]`;
}

/**
 * Several wrk runs of one load as one report: requests and errors summed, the rate
 * over the summed time, the median of the 50th percentiles and the worst of the
 * others (a run's latency distribution cannot be merged exactly).
 */
export function mergeReports(reports: WrkReport[]): WrkReport {
  if (reports.length === 0) throw new RangeError("Cannot merge no wrk reports");
  const sum = (f: (r: WrkReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  const requests = sum((r) => r.requests);
  const seconds = sum((r) => r.seconds);
  const percentilesMs: Record<string, number> = {};
  for (const p of Object.keys(reports[0].percentilesMs)) {
    const values = reports.map((r) => r.percentilesMs[p]).filter((v) => v !== undefined);
    percentilesMs[p] = p === "50"
      ? values.toSorted((a, b) => a - b)[Math.floor((values.length - 1) / 2)]
      : Math.max(...values);
  }
  return {
    requests,
    seconds,
    requestsPerSec: seconds > 0 ? requests / seconds : 0,
    latencyAvgMs: sum((r) => r.latencyAvgMs * r.requests) / Math.max(1, requests),
    latencyMaxMs: Math.max(...reports.map((r) => r.latencyMaxMs)),
    percentilesMs,
    non2xx: sum((r) => r.non2xx),
    socketErrors: {
      connect: sum((r) => r.socketErrors.connect),
      read: sum((r) => r.socketErrors.read),
      write: sum((r) => r.socketErrors.write),
      timeout: sum((r) => r.socketErrors.timeout),
    },
    transferPerSec: seconds > 0 ? sum((r) => r.transferPerSec * r.seconds) / seconds : 0,
  };
}
