/**
 * What `run.ts` makes of several runs of the benchmarks: per figure the median, min
 * and max over the runs, whether the median meets the figure's target, the flags of
 * every run; the plain-text table printed at the end, the markdown table that
 * `bench/README.md` shows, the machine the runs were on, and the rewrite of the
 * README's table block. All pure but `readMachine()`.
 *
 * @module
 */
import { type BenchResult, type Figure, formatValue } from "./_bench.ts";

/** A figure over all runs of its benchmark. */
export interface FigureSummary {
  name: string;
  unit: string;
  /** The value of each run that reported this figure, in run order; null when unmeasured. */
  values: (number | null)[];
  /** Runs of its benchmark, whether or not they reported this figure. */
  runs: number;
  /** Median, min and max of the numeric values; null when there are none. */
  median: number | null;
  min: number | null;
  max: number | null;
  reference?: string;
  target?: Figure["target"];
  /** Whether the median meets the target; null without a target or a median. */
  met: boolean | null;
  /** Every run's flag, e.g. `run 2: 3 answers were not 2xx/3xx`. */
  flags: string[];
  /** The note of the last run that reported the figure. */
  note?: string;
  /** The chart's bar group: `scenario`, else the name before its first `: `, else the name. */
  scenario: string;
}

/** A benchmark over all its runs. */
export interface BenchSummary {
  name: string;
  description: string;
  /** How many times it ran (a benchmark skipped in its first run does not run again). */
  runs: number;
  /** Why runs were skipped or failed, e.g. `skipped in run 1: no wrk`. */
  problems: string[];
  figures: FigureSummary[];
  /** Distinct notes of all runs. */
  notes: string[];
}

/** The median of numbers (the mean of the middle two for an even count); null for none. */
export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Whether `value` meets `target`; null when there is no target or no value. */
export function meetsTarget(value: number | null, target: Figure["target"]): boolean | null {
  if (!target || (target.min === undefined && target.max === undefined) || value === null) {
    return null;
  }
  return (target.min === undefined || value >= target.min) &&
    (target.max === undefined || value <= target.max);
}

/** A round number (a target, an axis tick) as written: `0.6`, not `0.600`. */
export function plain(n: number): string {
  return String(Number(n.toPrecision(6)));
}

/** A target as text: `≥ 0.6`, `≤ 2`, `0.5–2`; empty without one. */
export function formatTarget(target: Figure["target"]): string {
  const { min, max } = target ?? {};
  if (min !== undefined && max !== undefined) return `${plain(min)}–${plain(max)}`;
  if (min !== undefined) return `≥ ${plain(min)}`;
  if (max !== undefined) return `≤ ${plain(max)}`;
  return "";
}

/** The chart's bar group of a figure (see `FigureSummary.scenario`). */
function scenarioOf(f: Figure): string {
  if (f.scenario) return f.scenario;
  const colon = f.name.indexOf(": ");
  return colon > 0 ? f.name.slice(0, colon) : f.name;
}

/**
 * Summarizes every run of each benchmark (`runs[i]` holds the results of run i+1,
 * in any order; a benchmark may be missing from some runs). Benchmarks come out in
 * the order of `runs[0]` then of later runs; figures in the order they first appear.
 */
export function summarize(runs: BenchResult[][]): BenchSummary[] {
  const benches = new Map<string, BenchSummary>();
  const byName = new Map<string, Map<string, FigureSummary>>();
  runs.forEach((results, i) => {
    const run = i + 1;
    for (const r of results) {
      let bench = benches.get(r.name);
      if (!bench) {
        bench = {
          name: r.name,
          description: r.description,
          runs: 0,
          problems: [],
          figures: [],
          notes: [],
        };
        benches.set(r.name, bench);
        byName.set(r.name, new Map());
      }
      bench.runs++;
      if (r.status === "skipped" || r.status === "failed") {
        bench.problems.push(`${r.status} in run ${run}: ${r.reason ?? "no reason given"}`);
      }
      for (const note of r.notes) if (!bench.notes.includes(note)) bench.notes.push(note);
      const figures = byName.get(r.name)!;
      for (const f of r.figures) {
        let s = figures.get(f.name);
        if (!s) {
          s = {
            name: f.name,
            unit: f.unit,
            values: [],
            runs: 0,
            median: null,
            min: null,
            max: null,
            met: null,
            flags: [],
            scenario: scenarioOf(f),
          };
          figures.set(f.name, s);
          bench.figures.push(s);
        }
        s.values.push(f.value);
        if (f.unit !== s.unit) s.flags.push(`run ${run}: unit '${f.unit}', not '${s.unit}'`);
        if (f.flag) s.flags.push(`run ${run}: ${f.flag}`);
        if (f.note !== undefined) s.note = f.note;
        if (f.reference !== undefined) s.reference = f.reference;
        if (f.target !== undefined) s.target = f.target;
      }
    }
  });
  for (const bench of benches.values()) {
    for (const s of bench.figures) {
      const numbers = s.values.filter((v): v is number => v !== null && Number.isFinite(v));
      s.runs = bench.runs;
      s.median = median(numbers);
      s.min = numbers.length ? Math.min(...numbers) : null;
      s.max = numbers.length ? Math.max(...numbers) : null;
      s.met = meetsTarget(s.median, s.target);
    }
  }
  return [...benches.values()];
}

/** Runs with a number out of all runs, e.g. `2/3`. */
function countOf(s: FigureSummary): string {
  return `${s.values.filter((v) => v !== null && Number.isFinite(v)).length}/${s.runs}`;
}

/** `met`, `MISSED`, `n/a` (a target but no value), or empty (no target). */
export function verdict(s: FigureSummary): string {
  if (s.met === true) return "met";
  if (s.met === false) return "MISSED";
  return formatTarget(s.target) ? "n/a" : "";
}

const HEADER = [
  "benchmark",
  "figure",
  "median",
  "min",
  "max",
  "unit",
  "runs",
  "reference",
  "target",
  "met",
  "note",
];
/** Columns whose cells are right-aligned in the text table. */
const NUMERIC = new Set([2, 3, 4, 6]);

/** The table's rows (without the header): one per figure, one per skipped or failed run. */
export function tableRows(benches: BenchSummary[]): string[][] {
  const rows: string[][] = [];
  for (const b of benches) {
    for (const s of b.figures) {
      const note = s.flags.length ? `FLAG ${s.flags.join("; ")}` : s.note ?? "";
      rows.push([
        b.name,
        s.name,
        formatValue(s.median),
        formatValue(s.min),
        formatValue(s.max),
        s.unit,
        countOf(s),
        s.reference ?? "",
        formatTarget(s.target),
        verdict(s),
        note,
      ]);
    }
    for (const problem of b.problems) {
      const [status, reason] = splitProblem(problem);
      rows.push([b.name, `(${status})`, "", "", "", "", "", "", "", "", reason]);
    }
    if (b.figures.length === 0 && b.problems.length === 0) {
      rows.push([b.name, "(no figures)", "", "", "", "", `0/${b.runs}`, "", "", "", ""]);
    }
  }
  return rows;
}

/** `skipped in run 1: no wrk` → [`skipped in run 1`, `no wrk`]. */
function splitProblem(problem: string): [string, string] {
  const i = problem.indexOf(": ");
  return [problem.slice(0, i), problem.slice(i + 2)];
}

/** The summaries as a plain-text table, columns padded, numbers right-aligned. */
export function formatTextTable(benches: BenchSummary[]): string {
  const rows = [HEADER, ...tableRows(benches)];
  const widths = HEADER.map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) =>
    row.map((cell, c) => NUMERIC.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))
      .join("  ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(HEADER), rule, ...rows.map(line).slice(1)].join("\n");
}

/** One markdown table cell: pipes escaped, line breaks as spaces. */
function mdCell(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("|", "\\|").replace(/\s*\n\s*/g, " ");
}

/** The summaries as a GitHub markdown table, numbers right-aligned. */
export function formatMarkdownTable(benches: BenchSummary[]): string {
  const line = (row: string[]) => `| ${row.map(mdCell).join(" | ")} |`;
  const align = HEADER.map((_, c) => NUMERIC.has(c) ? "---:" : "---");
  return [line(HEADER), `|${align.join("|")}|`, ...tableRows(benches).map(line)].join("\n");
}

/**
 * The benchmarks' notes (versions, sizes, a reference that could not run), one
 * `name: note` line each, distinct over the runs; `markdown` makes them list items.
 */
export function formatNotes(benches: BenchSummary[], markdown = false): string {
  return benches.flatMap((b) =>
    b.notes.map((note) =>
      markdown ? `- ${b.name}: ${note.replace(/\s*\n\s*/g, " ")}` : `${b.name}: ${note}`
    )
  ).join("\n");
}

/** The machine a run was on, as `bench/results/*.json` records it. */
export interface Machine {
  /** `model name` of the first CPU in /proc/cpuinfo; null when unknown. */
  cpu: string | null;
  cores: number;
  /** Total memory in bytes; null when unknown. */
  memoryBytes: number | null;
  /** `Linux 6.1.0-…`. */
  kernel: string;
  deno: string;
  /** 1, 5 and 15 minute load averages when the run started and when it ended. */
  loadStart: number[];
  loadEnd: number[];
}

/** The CPU model and the number of processors in /proc/cpuinfo's text. */
export function parseCpuInfo(text: string): { model: string | null; processors: number } {
  const model = text.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? null;
  const processors = text.match(/^processor\s*:/gm)?.length ?? 0;
  return { model, processors };
}

/** Reads the machine's description; `loadEnd` is left empty for the caller to fill. */
export async function readMachine(): Promise<Machine> {
  let cpu: { model: string | null; processors: number } = { model: null, processors: 0 };
  try {
    cpu = parseCpuInfo(await Deno.readTextFile("/proc/cpuinfo"));
  } catch {
    // No /proc: the model stays unknown.
  }
  let memoryBytes: number | null = null;
  try {
    memoryBytes = Deno.systemMemoryInfo().total;
  } catch {
    // Not available on this platform.
  }
  return {
    cpu: cpu.model,
    cores: cpu.processors || navigator.hardwareConcurrency,
    memoryBytes,
    kernel: `${Deno.build.os === "linux" ? "Linux" : Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    loadStart: loadAverage(),
    loadEnd: [],
  };
}

/** The 1, 5 and 15 minute load averages, rounded to 2 decimals. */
export function loadAverage(): number[] {
  return Deno.loadavg().map((n) => Math.round(n * 100) / 100);
}

/** One line saying what the machine is, e.g. `Xeon …, 2 cores, 7.8 GiB, Linux 6.1, Deno 2.9.6, load 0.5 → 1.2`. */
export function describeMachine(m: Machine): string {
  const memory = m.memoryBytes === null
    ? "memory unknown"
    : `${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB`;
  const load = (l: number[]) => (l.length ? l[0].toFixed(2) : "?");
  return `${m.cpu ?? "unknown CPU"}, ${m.cores} cores, ${memory}, ${m.kernel}, Deno ${m.deno}, ` +
    `1-min load ${load(m.loadStart)} at start, ${load(m.loadEnd)} at end`;
}

/** The comments around the generated block of `bench/README.md`. */
export const README_START = "<!-- bench:results:start (written by bench/run.ts) -->";
export const README_END = "<!-- bench:results:end -->";

/**
 * `readme` with the text between its start and end markers replaced by `block`.
 * Throws a RangeError when the markers are missing or out of order.
 */
export function replaceReadmeBlock(readme: string, block: string): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < 0 || end < start) {
    throw new RangeError(
      `Cannot update the README: it needs '${README_START}' and then '${README_END}'`,
    );
  }
  // Blank lines around the block, as `deno fmt` leaves markdown.
  return `${readme.slice(0, start + README_START.length)}\n\n${block.trim()}\n\n${
    readme.slice(end)
  }`;
}

/** The README block: the run's date, its runs, the machine, and the markdown table. */
export function readmeBlock(
  benches: BenchSummary[],
  run: { finishedAt: string; runs: number; machine: Machine },
): string {
  const date = run.finishedAt.slice(0, 16).replace("T", " ");
  const notes = formatNotes(benches, true);
  return `Latest full run: **${date} UTC**, up to ${run.runs} runs of each benchmark, on ` +
    `${describeMachine(run.machine)}.\n\n${formatMarkdownTable(benches)}\n` +
    (notes ? `\nNotes of the benchmarks:\n\n${notes}\n` : "");
}
