/**
 * `make bench`: runs every benchmark in `BENCHMARKS`, one after the other, then
 * prints one table of all figures and writes the same figures as JSON to
 * `.test-artifacts/bench.json`.
 *
 * ```sh
 * deno run -A bench/run.ts                      # all, 8 s per load phase
 * deno run -A bench/run.ts tracker_http -d 3    # one benchmark, 3 s phases
 * ```
 *
 * A benchmark whose tool is missing is skipped with one line saying how to get it.
 * The exit status is 1 when a benchmark failed or flagged a figure (error answers
 * under load, say), 2 for bad arguments, 0 otherwise. All load targets 127.0.0.0/8
 * and every phase ends by itself.
 *
 * @module
 */
import { type Benchmark, type BenchResult, BenchSkip, formatTable, formatValue } from "./_bench.ts";
import { errorMessage } from "../proto/errors.ts";
import { httpProxy } from "./http_proxy.ts";
import { lanDiscovery } from "./lan_discovery.ts";
import { peerDownload } from "./peer_download.ts";
import { search } from "./search.ts";
import { trackerHttp } from "./tracker_http.ts";

/** Every benchmark, in the order they run. Add new modules here. */
export const BENCHMARKS: Benchmark[] = [
  trackerHttp,
  peerDownload,
  lanDiscovery,
  httpProxy,
  search,
];

/** Seconds of each load phase unless `--duration` says otherwise. */
const DEFAULT_DURATION = 8;
/** The whole run stops after this long, whatever a benchmark is doing. */
const RUN_DEADLINE_MS = 30 * 60_000;

const USAGE = `usage: deno run -A bench/run.ts [NAME ...] [-d|--duration SECONDS]
benchmarks: ${BENCHMARKS.map((b) => b.name).join(", ")}`;

/** Parsed command line. */
interface RunArgs {
  names: string[];
  duration: number;
}

function parseArgs(args: string[]): RunArgs {
  const out: RunArgs = { names: [], duration: DEFAULT_DURATION };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    }
    const m = arg.match(/^(?:-d|--duration)(?:=(.*))?$/);
    if (m) {
      const text = m[1] ?? args[++i];
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1 || n > 600) {
        throw new RangeError(`Duration '${text}' must be a whole number of seconds, 1 to 600`);
      }
      out.duration = n;
    } else if (arg.startsWith("-")) {
      throw new RangeError(`Unknown option '${arg}'`);
    } else if (!BENCHMARKS.some((b) => b.name === arg)) {
      throw new RangeError(`No benchmark named '${arg}'`);
    } else {
      out.names.push(arg);
    }
  }
  return out;
}

/** Runs the selected benchmarks and reports; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let opts: RunArgs;
  try {
    opts = parseArgs(args);
  } catch (err) {
    console.error(`bench: ${errorMessage(err)}\n${USAGE}`);
    return 2;
  }
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const selected = BENCHMARKS.filter((b) => opts.names.length === 0 || opts.names.includes(b.name));

  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSigint);
  const signal = AbortSignal.any([interrupt.signal, AbortSignal.timeout(RUN_DEADLINE_MS)]);

  const startedAt = new Date().toISOString();
  const results: BenchResult[] = [];
  try {
    for (const bench of selected) {
      console.log(`\n== ${bench.name}: ${bench.description}`);
      const t0 = performance.now();
      const result: BenchResult = {
        name: bench.name,
        description: bench.description,
        status: "ok",
        seconds: 0,
        figures: [],
        notes: [],
      };
      try {
        if (signal.aborted) throw signal.reason;
        const out = await bench.run({
          root,
          duration: opts.duration,
          signal,
          log: (line) => console.log(`${bench.name}: ${line}`),
        });
        result.figures = out.figures;
        result.notes = out.notes ?? [];
        if (out.figures.some((f) => f.flag)) result.status = "flagged";
      } catch (err) {
        if (err instanceof BenchSkip) {
          result.status = "skipped";
          result.reason = err.message;
          console.log(`${bench.name}: skipped: ${err.message}`);
        } else {
          result.status = "failed";
          result.reason = errorMessage(err);
          console.error(`${bench.name}: failed: ${err instanceof Error ? err.stack : err}`);
        }
      }
      result.seconds = Math.round(performance.now() - t0) / 1000;
      for (const note of result.notes) console.log(`${bench.name}: note: ${note}`);
      for (const f of result.figures.filter((f) => f.flag)) {
        console.log(`${bench.name}: FLAG ${f.name} = ${formatValue(f.value)}: ${f.flag}`);
      }
      results.push(result);
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }

  console.log(`\n${formatTable(results)}`);
  const summary = results.map((r) => `${r.name} ${r.status}`).join(", ");
  console.log(`\n${summary || "no benchmarks selected"}`);

  const report = {
    startedAt,
    finishedAt: new Date().toISOString(),
    deno: Deno.version.deno,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    cpus: navigator.hardwareConcurrency,
    duration: opts.duration,
    results,
  };
  const artifacts = `${root}/.test-artifacts`;
  await Deno.mkdir(artifacts, { recursive: true });
  await Deno.writeTextFile(`${artifacts}/bench.json`, JSON.stringify(report, null, 2) + "\n");
  console.log(`figures written to .test-artifacts/bench.json`);

  return results.some((r) => r.status === "failed" || r.status === "flagged") ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
