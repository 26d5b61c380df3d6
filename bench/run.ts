/**
 * `make bench`: runs every benchmark in `BENCHMARKS` several times (`--runs`,
 * default 3, or a benchmark's own lower `runs`), round-robin so that a drift in the
 * machine's load spreads over all of them, then prints one table of every figure's
 * median, min and max with its reference and target (`_report.ts`), and writes the
 * raw figures of every run, the summary and the machine as JSON, plus an SVG chart of
 * the ratios (`_chart.ts`), to `bench/results/`. A full run (no names given) also
 * rewrites the table in `bench/README.md` and `bench/results/latest.{json,svg}`.
 *
 * ```sh
 * deno run -A bench/run.ts                               # all, 3 runs, 8 s phases
 * deno run -A bench/run.ts tracker_http -d 3 --runs 5    # one benchmark
 * ```
 *
 * A benchmark whose tool is missing is skipped with one line saying how to get it,
 * and is not tried again in later runs. The exit status is 1 when a run failed or
 * flagged a figure (error answers under load, say), 2 for bad arguments, 0 otherwise.
 * All load targets 127.0.0.0/8 and every phase ends by itself.
 *
 * @module
 */
import { type Benchmark, type BenchResult, BenchSkip, formatValue } from "./_bench.ts";
import { errorMessage } from "../proto/errors.ts";
import { renderChart } from "./_chart.ts";
import {
  type BenchSummary,
  describeMachine,
  formatNotes,
  formatTextTable,
  loadAverage,
  type Machine,
  readMachine,
  readmeBlock,
  replaceReadmeBlock,
  summarize,
} from "./_report.ts";
import { httpProxy } from "./http_proxy.ts";
import { lanDiscovery } from "./lan_discovery.ts";
import { peerDownload } from "./peer_download.ts";
import { search } from "./search.ts";
import { swarm } from "./swarm.ts";
import { trackerScale } from "./tracker_scale.ts";
import { trackerHttp } from "./tracker_http.ts";

/** Every benchmark, in the order they run. Add new modules here. */
export const BENCHMARKS: Benchmark[] = [
  trackerHttp,
  trackerScale,
  peerDownload,
  swarm,
  lanDiscovery,
  httpProxy,
  search,
];

/** Seconds of each load phase unless `--duration` says otherwise. */
const DEFAULT_DURATION = 8;
/** Runs of each benchmark unless `--runs` or the benchmark's own `runs` says otherwise. */
const DEFAULT_RUNS = 3;
/** Each run of all benchmarks stops after this long, whatever a benchmark is doing. */
const RUN_DEADLINE_MS = 30 * 60_000;

const USAGE = `usage: deno run -A bench/run.ts [NAME ...] [-d|--duration SECONDS] [-r|--runs N]
  NAME           run only these benchmarks (default: all); then bench/README.md is
                 left alone and only dated files are written to bench/results/
  -d, --duration seconds of each load phase, 1 to 600 (default ${DEFAULT_DURATION})
  -r, --runs     runs of every selected benchmark, 1 to 20 (default ${DEFAULT_RUNS}, or less
                 for a benchmark that declares fewer for itself)
  -h, --help     this text
Prints the median, min and max of each figure over the runs, its reference and target,
and whether the median meets the target. Writes bench/results/<date>.json (every run's
figures, the summary, the machine) and <date>.svg (the ratios as bars); a full run also
writes bench/results/latest.{json,svg} and the table in bench/README.md.
benchmarks: ${BENCHMARKS.map((b) => b.name).join(", ")}`;

/** Parsed command line; `runs` is null when not given. */
interface RunArgs {
  names: string[];
  duration: number;
  runs: number | null;
}

/** The whole number after option `arg` (`-d 3`, `--duration=3`), within [min, max]. */
function intValue(text: string | undefined, what: string, min: number, max: number): number {
  const n = Number(text);
  if (text === undefined || text === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${what} '${text ?? ""}' must be a whole number, ${min} to ${max}`);
  }
  return n;
}

function parseArgs(args: string[], benchmarks: Benchmark[]): RunArgs {
  const out: RunArgs = { names: [], duration: DEFAULT_DURATION, runs: null };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      console.log(USAGE);
      Deno.exit(0);
    }
    const m = arg.match(/^(-d|--duration|-r|--runs)(?:=(.*))?$/);
    if (m) {
      const text = m[2] ?? args[++i];
      if (m[1] === "-d" || m[1] === "--duration") {
        out.duration = intValue(text, "--duration", 1, 600);
      } else {
        out.runs = intValue(text, "--runs", 1, 20);
      }
    } else if (arg.startsWith("-")) {
      throw new RangeError(`Unknown option '${arg}'`);
    } else if (!benchmarks.some((b) => b.name === arg)) {
      throw new RangeError(`No benchmark named '${arg}'`);
    } else if (!out.names.includes(arg)) {
      out.names.push(arg);
    }
  }
  return out;
}

/** Runs one benchmark once and returns how it ended; never throws. */
async function runOnce(
  bench: Benchmark,
  run: { root: string; duration: number; signal: AbortSignal; label: string },
): Promise<BenchResult> {
  const t0 = performance.now();
  const result: BenchResult = {
    name: bench.name,
    description: bench.description,
    status: "ok",
    seconds: 0,
    figures: [],
    notes: [],
  };
  const prefix = `${bench.name}${run.label}`;
  try {
    run.signal.throwIfAborted();
    const out = await bench.run({
      root: run.root,
      duration: run.duration,
      signal: run.signal,
      log: (line) => console.log(`${prefix}: ${line}`),
    });
    result.figures = out.figures;
    result.notes = out.notes ?? [];
    if (out.figures.some((f) => f.flag)) result.status = "flagged";
  } catch (err) {
    if (err instanceof BenchSkip) {
      result.status = "skipped";
      result.reason = printable(err.message);
      console.log(`${prefix}: skipped: ${err.message}`);
    } else {
      result.status = "failed";
      result.reason = printable(errorMessage(err));
      console.error(`${prefix}: failed: ${err instanceof Error ? err.stack : err}`);
    }
  }
  result.seconds = Math.round(performance.now() - t0) / 1000;
  for (const note of result.notes) console.log(`${prefix}: note: ${note}`);
  for (const f of result.figures.filter((f) => f.flag)) {
    console.log(`${prefix}: FLAG ${f.name} = ${formatValue(f.value)}: ${f.flag}`);
  }
  return result;
}

/** What one invocation writes to `bench/results/` (and, when full, to the README). */
interface Report {
  startedAt: string;
  finishedAt: string;
  args: string[];
  /** All benchmarks ran, none was interrupted. */
  full: boolean;
  duration: number;
  machine: Machine;
  runs: { run: number; results: BenchResult[] }[];
  summary: BenchSummary[];
}

/**
 * Writes the JSON and SVG (dated, and `latest` for a full run) to `out/results/` and,
 * after a full run, the table in `out/README.md`.
 */
async function writeReport(out: string, report: Report, names: string[]): Promise<void> {
  const dir = `${out}/results`;
  await Deno.mkdir(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[-:]/g, "").slice(0, 15) + "Z";
  const base = report.full ? stamp : `${stamp}-${names.join("+")}`.slice(0, 100);
  const json = JSON.stringify(report, null, 2) + "\n";
  const caption = `${report.finishedAt.slice(0, 16).replace("T", " ")} UTC · ` +
    describeMachine(report.machine);
  const svg = renderChart(report.summary, caption);
  const files = [[`${base}.json`, json], [`${base}.svg`, svg]];
  if (report.full) files.push(["latest.json", json], ["latest.svg", svg]);
  for (const [name, text] of files) await Deno.writeTextFile(`${dir}/${name}`, text);
  console.log(`written: ${files.map(([name]) => `bench/results/${name}`).join(", ")}`);
  if (!report.full) {
    console.log(
      "bench/README.md is left alone: only a full run (no names, not interrupted) " +
        "rewrites its table",
    );
    return;
  }
  const readmePath = `${out}/README.md`;
  try {
    const readme = await Deno.readTextFile(readmePath);
    const maxRuns = Math.max(0, ...report.summary.map((b) => b.runs));
    const block = readmeBlock(report.summary, { ...report, runs: maxRuns });
    await Deno.writeTextFile(readmePath, replaceReadmeBlock(readme, block));
    console.log("written: the table in bench/README.md");
  } catch (err) {
    console.error(`bench: ${errorMessage(err)}`);
  }
  // The committed files pass `make check`'s `deno fmt --check` as written.
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", readmePath, `${dir}/latest.json`, `${dir}/latest.svg`],
    cwd: out,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!fmt.success) {
    const why = new TextDecoder().decode(fmt.stderr).trim().split("\n").at(-1);
    console.error(`bench: deno fmt of the README and bench/results/latest.* failed: ${why}`);
  }
}

/** What `main()` runs and where it writes; the defaults are this repository's. */
export interface RunSetup {
  benchmarks?: Benchmark[];
  /** The repository root, handed to every benchmark. */
  root?: string;
  /** Where `README.md` and `results/` are: `bench/` of the root. */
  out?: string;
}

/** Runs the selected benchmarks and reports; returns the exit status. */
export async function main(args: string[], setup: RunSetup = {}): Promise<number> {
  const benchmarks = setup.benchmarks ?? BENCHMARKS;
  let opts: RunArgs;
  try {
    opts = parseArgs(args, benchmarks);
  } catch (err) {
    console.error(`bench: ${errorMessage(err)} (see --help)`);
    return 2;
  }
  const root = setup.root ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const plan = benchmarks
    .filter((b) => opts.names.length === 0 || opts.names.includes(b.name))
    .map((bench) => ({ bench, runs: opts.runs ?? Math.min(bench.runs ?? DEFAULT_RUNS, 20) }));
  const passes = Math.max(0, ...plan.map((p) => p.runs));

  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error("interrupted"));
  Deno.addSignalListener("SIGINT", onSigint);
  const signal = AbortSignal.any([
    interrupt.signal,
    AbortSignal.timeout(RUN_DEADLINE_MS * Math.max(1, passes)),
  ]);

  const machine = await readMachine();
  const startedAt = new Date().toISOString();
  const runs: BenchResult[][] = [];
  const skipped = new Set<string>();
  try {
    for (let pass = 1; pass <= passes && !signal.aborted; pass++) {
      const results: BenchResult[] = [];
      runs.push(results);
      for (const { bench, runs: planned } of plan) {
        if (planned < pass || skipped.has(bench.name)) continue;
        const label = planned > 1 ? ` (run ${pass}/${planned})` : "";
        console.log(`\n== ${bench.name}${label}: ${bench.description}`);
        const result = await runOnce(bench, { root, duration: opts.duration, signal, label });
        if (result.status === "skipped") skipped.add(bench.name);
        results.push(result);
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  machine.loadEnd = loadAverage();

  const summary = summarize(runs);
  console.log(`\n${formatTextTable(summary)}`);
  const notes = formatNotes(summary);
  if (notes) console.log(`\nnotes:\n${notes}`);
  const all = runs.flat();
  const statuses = summary.map((b) => {
    const mine = all.filter((r) => r.name === b.name);
    const count = (s: string) => mine.filter((r) => r.status === s).length;
    const parts = ["ok", "flagged", "skipped", "failed"].filter((s) => count(s) > 0)
      .map((s) => `${s} ${count(s)}`);
    return `${b.name}: ${parts.join(", ")}`;
  });
  console.log(`\n${statuses.join("; ") || "no benchmarks selected"}`);
  console.log(describeMachine(machine));

  await writeReport(setup.out ?? `${root}/bench`, {
    startedAt,
    finishedAt: new Date().toISOString(),
    args,
    full: opts.names.length === 0 && !signal.aborted,
    duration: opts.duration,
    machine,
    runs: runs.map((results, i) => ({ run: i + 1, results })),
    summary,
  }, opts.names);

  return all.some((r) => r.status === "failed" || r.status === "flagged") ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/** `text` with control characters written as `\xNN`, so the table stays text (a failure may quote binary bytes). */
function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x08\x0b-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
