/**
 * The SVG chart of a bench run: one group of horizontal bars per scenario that has a
 * reference, one bar per ratio of the scenario to one of its references. A bar ends at
 * the median ratio over the runs, a whisker spans min to max, a red tick marks the
 * target, and the dashed line at 1× is the reference itself. Green bars meet their
 * target, red ones miss it, grey ones have none. Hand-written: a few rects, lines and
 * texts, no layout engine needed, and no dependency for a file that a README embeds.
 *
 * @module
 */
import { formatValue } from "./_bench.ts";
import { type BenchSummary, type FigureSummary, formatTarget, plain } from "./_report.ts";

const WIDTH = 960;
/** Left edge of the plot; labels sit to its left. */
const X0 = 400;
const X1 = 900;
const TOP = 64;
const GROUP_HEAD = 26;
const ROW = 38;
const BAR = 14;
const COLORS = { met: "#2e9e4f", missed: "#d1432f", none: "#8c8c8c" } as const;

/** One bar: a ratio figure of a scenario, in × (a `%` figure is divided by 100). */
export interface ChartBar {
  label: string;
  reference: string;
  median: number | null;
  min: number | null;
  max: number | null;
  target?: { min?: number; max?: number };
  met: boolean | null;
  /** Runs with a value / runs, e.g. `3/3`. */
  count: string;
}

/** One group of bars: a scenario of a benchmark. */
export interface ChartGroup {
  benchmark: string;
  scenario: string;
  bars: ChartBar[];
}

/** Units a bar can show, and the factor that turns them into ×. */
const RATIO_UNITS: Record<string, number> = { "x": 1, "×": 1, "%": 0.01 };

/** The bars of the chart: every ratio figure with a reference, grouped by scenario. */
export function chartGroups(benches: BenchSummary[]): ChartGroup[] {
  const groups = new Map<string, ChartGroup>();
  for (const b of benches) {
    for (const f of b.figures) {
      const factor = RATIO_UNITS[f.unit];
      if (f.reference === undefined || factor === undefined) continue;
      const key = `${b.name}\n${f.scenario}`;
      let group = groups.get(key);
      if (!group) {
        group = { benchmark: b.name, scenario: f.scenario, bars: [] };
        groups.set(key, group);
      }
      group.bars.push(barOf(f, factor));
    }
  }
  return [...groups.values()];
}

function barOf(f: FigureSummary, factor: number): ChartBar {
  const scale = (v: number | null | undefined) => v === null || v === undefined ? v : v * factor;
  const prefix = `${f.scenario}: `;
  const target = f.target &&
    { min: scale(f.target.min) ?? undefined, max: scale(f.target.max) ?? undefined };
  return {
    label: f.name.startsWith(prefix) ? f.name.slice(prefix.length) : f.name,
    reference: f.reference ?? "",
    median: scale(f.median) ?? null,
    min: scale(f.min) ?? null,
    max: scale(f.max) ?? null,
    ...(target ? { target } : {}),
    met: f.met,
    count: `${f.values.filter((v) => v !== null).length}/${f.runs}`,
  };
}

/** Text safe inside an SVG element or attribute. */
export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

/** `text` cut to `max` characters with an ellipsis. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A round axis step giving 4 to 10 ticks up to `top`. */
function niceStep(top: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(top));
  for (const m of [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10]) {
    if (top / (m * magnitude) <= 10) return m * magnitude;
  }
  return 10 * magnitude;
}

/** Rounds for coordinates: one decimal. */
const r1 = (n: number) => Math.round(n * 10) / 10;

/**
 * The chart of `benches` as an SVG document; `caption` (the date and machine, say)
 * is printed under the title. A run with no ratio to a reference gets a chart that
 * says so.
 */
export function renderChart(benches: BenchSummary[], caption: string): string {
  const groups = chartGroups(benches);
  const rows = groups.reduce((n, g) => n + g.bars.length, 0);
  const height = TOP + groups.length * GROUP_HEAD + Math.max(rows, 1) * ROW + 56;
  const values = groups.flatMap((g) =>
    g.bars.flatMap((b) => [b.median, b.max, b.target?.min, b.target?.max])
  ).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const step = niceStep(Math.max(1, ...values) * 1.08);
  const top = Math.ceil((Math.max(1, ...values) * 1.08) / step) * step;
  const x = (v: number) => r1(X0 + (Math.max(0, Math.min(v, top)) / top) * (X1 - X0));

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="22" font-size="15" font-weight="bold">` +
    `p2p bench: each scenario as a ratio to its references (median of the runs)</text>`,
    `<text x="16" y="40" fill="#555555">${escapeXml(clip(caption, 150))}</text>`,
  ];
  const plotBottom = height - 48;
  for (let v = 0; v <= top + step / 1000; v += step) {
    const at = x(v);
    out.push(
      `<line x1="${at}" y1="${TOP - 6}" x2="${at}" y2="${plotBottom}" stroke="#e4e4e4"/>`,
      `<text x="${at}" y="${TOP - 10}" text-anchor="middle" fill="#555555">` +
        `${plain(v)}×</text>`,
    );
  }
  if (groups.length === 0) {
    out.push(
      `<text x="16" y="${TOP + 24}">No figure of this run is a ratio to a reference.</text>`,
    );
  }
  let y = TOP;
  for (const g of groups) {
    out.push(
      `<text x="16" y="${y + 18}" font-weight="bold">${escapeXml(clip(g.scenario, 60))}` +
        `<tspan font-weight="normal" fill="#777777"> (${escapeXml(g.benchmark)})</tspan></text>`,
    );
    y += GROUP_HEAD;
    for (const b of g.bars) {
      out.push(...barElements(b, y, x));
      y += ROW;
    }
  }
  const one = x(1);
  out.push(
    `<line x1="${one}" y1="${TOP - 6}" x2="${one}" y2="${plotBottom}" stroke="#333333" ` +
      `stroke-dasharray="4 3"/>`,
    ...legend(height - 22),
    `</svg>`,
  );
  return out.join("\n") + "\n";
}

/** The label, bar, whisker, target tick and value of one bar whose row starts at `y`. */
function barElements(b: ChartBar, y: number, x: (v: number) => number): string[] {
  const mid = y + 8 + BAR / 2;
  const target = formatTarget(b.target);
  const tip = `${b.label} vs ${b.reference}: median ${formatValue(b.median)}× ` +
    `(min ${formatValue(b.min)}, max ${formatValue(b.max)}, ${b.count} runs)` +
    (target ? `, target ${target}: ${b.met ? "met" : b.met === false ? "missed" : "n/a"}` : "");
  const out = [
    `<g><title>${escapeXml(tip)}</title>`,
    `<text x="28" y="${y + 14}">${escapeXml(clip(b.label, 58))}</text>`,
    `<text x="28" y="${y + 28}" font-size="11" fill="#666666">` +
    `${escapeXml(clip(`vs ${b.reference}`, 62))}</text>`,
  ];
  if (b.median === null) {
    out.push(`<text x="${X0 + 6}" y="${mid + 4}" fill="#666666">not measured</text>`);
  } else {
    const color = b.met === true ? COLORS.met : b.met === false ? COLORS.missed : COLORS.none;
    const end = x(b.median);
    out.push(
      `<rect class="bar" x="${X0}" y="${y + 8}" width="${r1(end - X0)}" height="${BAR}" ` +
        `fill="${color}"/>`,
    );
    if (b.min !== null && b.max !== null && b.max > b.min) {
      const [lo, hi] = [x(b.min), x(b.max)];
      out.push(
        `<line class="whisker" x1="${lo}" y1="${mid}" x2="${hi}" y2="${mid}" stroke="#222222"/>`,
        `<line x1="${lo}" y1="${mid - 4}" x2="${lo}" y2="${mid + 4}" stroke="#222222"/>`,
        `<line x1="${hi}" y1="${mid - 4}" x2="${hi}" y2="${mid + 4}" stroke="#222222"/>`,
      );
    }
    const after = Math.max(end, b.max === null ? end : x(b.max)) + 6;
    out.push(`<text x="${r1(after)}" y="${mid + 4}">${formatValue(b.median)}×</text>`);
  }
  for (const [bound, sign] of [[b.target?.min, "≥"], [b.target?.max, "≤"]] as const) {
    if (bound === undefined) continue;
    const at = x(bound);
    out.push(
      `<line class="target" x1="${at}" y1="${y + 3}" x2="${at}" y2="${y + BAR + 13}" ` +
        `stroke="#b00020" stroke-width="2.5"/>`,
      `<text x="${at}" y="${y + BAR + 24}" text-anchor="middle" font-size="10" ` +
        `fill="#b00020">${sign} ${plain(bound)}</text>`,
    );
  }
  out.push(`</g>`);
  return out;
}

/** The key under the plot. */
function legend(y: number): string[] {
  const swatch = (at: number, color: string, text: string) => [
    `<rect x="${at}" y="${y - 10}" width="12" height="12" fill="${color}"/>`,
    `<text x="${at + 17}" y="${y}">${text}</text>`,
  ];
  return [
    ...swatch(16, COLORS.met, "meets its target"),
    ...swatch(146, COLORS.missed, "misses it"),
    ...swatch(236, COLORS.none, "no target"),
    `<line x1="336" y1="${y - 4}" x2="366" y2="${y - 4}" stroke="#222222"/>`,
    `<text x="372" y="${y}">min–max of the runs</text>`,
    `<line x1="506" y1="${y - 11}" x2="506" y2="${y + 2}" stroke="#b00020" stroke-width="2.5"/>`,
    `<text x="513" y="${y}">target</text>`,
    `<line x1="570" y1="${y - 11}" x2="570" y2="${y + 2}" stroke="#333333" ` +
    `stroke-dasharray="4 3"/>`,
    `<text x="577" y="${y}">1× = the reference itself</text>`,
  ];
}
