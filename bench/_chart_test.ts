import assert from "node:assert/strict";
import type { BenchResult, Figure } from "./_bench.ts";
import { chartGroups, escapeXml, renderChart } from "./_chart.ts";
import { summarize } from "./_report.ts";

/** Runs of benchmark `name`: one result per list of figures. */
function runsOf(name: string, runs: Figure[][]): BenchResult[][] {
  return runs.map((figures) => [{
    name,
    description: name,
    status: "ok",
    seconds: 1,
    figures,
    notes: [],
  }]);
}

const fig = (name: string, value: number, extra: Partial<Figure> = {}): Figure => ({
  name,
  value,
  unit: "x",
  ...extra,
});

/** Three runs of one scenario against two references, a swarm ratio, and a plain rate. */
const SUMMARY = summarize(runsOf(
  "dl",
  [0.5, 0.7, 0.9].map((v) => [
    fig("get -o 1 GiB: / raw write", v, { reference: "raw write", target: { min: 0.6 } }),
    fig("get -o 1 GiB: / aria2c <BitTorrent> & co", v * 2, {
      reference: "aria2c",
      target: { min: 2 },
    }),
    fig("16 at once / one alone", 1.5, {
      reference: "one downloader alone",
      target: { max: 2 },
      scenario: "swarm 256 MiB",
    }),
    fig("proxied share", 80, { unit: "%", reference: "direct" }),
    { name: "download", value: 200, unit: "MiB/s" },
  ]),
));

/**
 * Checks that `xml` is well-formed as far as an SVG writer can get it wrong: every
 * tag closed in order, attributes quoted, `&` only in the five entities; throws if not.
 */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    assert.doesNotMatch(text, /&(?!(?:amp|lt|gt|quot|apos);)|>/, `bad text '${text}'`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    assert.ok(m, `malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`);
    if (m[1]) assert.equal(stack.pop(), m[2], `'</${m[2]}>' closes the wrong element`);
    else if (!m[4]) stack.push(m[2]);
    i = tag.lastIndex;
  }
  assert.deepEqual(stack, [], "unclosed elements");
}

Deno.test("chartGroups() groups ratios with a reference by scenario; % becomes ×", () => {
  const groups = chartGroups(SUMMARY);
  assert.deepEqual(groups.map((g) => [g.scenario, g.bars.length]), [
    ["get -o 1 GiB", 2],
    ["swarm 256 MiB", 1],
    ["proxied share", 1],
  ]);
  const [raw, aria] = groups[0].bars;
  assert.deepEqual([raw.label, raw.median, raw.min, raw.max, raw.met], [
    "/ raw write",
    0.7,
    0.5,
    0.9,
    true,
  ]);
  assert.equal(aria.met, false);
  assert.equal(groups[2].bars[0].median, 0.8);
});

Deno.test("renderChart() writes well-formed SVG with a bar, whisker and target per ratio", () => {
  const svg = renderChart(SUMMARY, "2026-12-03 12:00 UTC · Example CPU & co, 2 cores");
  assertWellFormed(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal(svg.match(/<rect class="bar"/g)?.length, 4);
  assert.equal(svg.match(/class="whisker"/g)?.length, 2);
  assert.equal(svg.match(/class="target"/g)?.length, 3);
  assert.match(svg, /fill="#2e9e4f"/); // met
  assert.match(svg, /fill="#d1432f"/); // missed
  assert.match(svg, /Example CPU &amp; co/);
  assert.match(svg, /aria2c &lt;BitTorrent&gt; &amp; co/);
  assert.match(svg, /target ≥ 0\.6: met/);
});

Deno.test("renderChart() of a run without ratios says so in a well-formed SVG", () => {
  const svg = renderChart(summarize(runsOf("s", [[{ name: "ms", value: 3, unit: "ms" }]])), "x");
  assertWellFormed(svg);
  assert.match(svg, /No figure of this run is a ratio to a reference/);
  assert.doesNotMatch(svg, /class="bar"/);
});

Deno.test("the well-formedness check rejects what a careless writer produces", () => {
  assert.throws(() => assertWellFormed("<svg><g></svg>"));
  assert.throws(() => assertWellFormed('<svg a="1"><text>a & b</text></svg>'));
  assert.throws(() => assertWellFormed("<svg a=1></svg>"));
  assert.equal(
    escapeXml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;",
  );
});
