import assert from "node:assert/strict";
import type { BenchResult, Figure } from "./_bench.ts";
import {
  describeMachine,
  formatMarkdownTable,
  formatTarget,
  formatTextTable,
  median,
  meetsTarget,
  parseCpuInfo,
  README_END,
  README_START,
  readmeBlock,
  replaceReadmeBlock,
  summarize,
} from "./_report.ts";

/** A result of benchmark `name` with `figures`, status from its flags. */
function result(name: string, figures: Figure[]): BenchResult {
  return {
    name,
    description: `${name} benchmark`,
    status: figures.some((f) => f.flag) ? "flagged" : "ok",
    seconds: 1,
    figures,
    notes: [],
  };
}

/** A skipped result of benchmark `name`. */
function skippedResult(name: string, reason: string): BenchResult {
  return { ...result(name, []), status: "skipped", reason };
}

const ratio = (value: number | null): Figure => ({
  name: "get -o: vs raw write",
  value,
  unit: "x",
  reference: "raw write of a new 1 GiB file",
  target: { min: 0.6 },
});

Deno.test("median() takes the middle value, or the mean of the middle two", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  assert.equal(median([]), null);
});

Deno.test("meetsTarget() checks min and max, inclusive; null without target or value", () => {
  assert.equal(meetsTarget(0.6, { min: 0.6 }), true);
  assert.equal(meetsTarget(0.59, { min: 0.6 }), false);
  assert.equal(meetsTarget(2, { max: 2 }), true);
  assert.equal(meetsTarget(2.1, { max: 2 }), false);
  assert.equal(meetsTarget(1, { min: 0.5, max: 2 }), true);
  assert.equal(meetsTarget(1, undefined), null);
  assert.equal(meetsTarget(1, {}), null);
  assert.equal(meetsTarget(null, { min: 1 }), null);
  assert.equal(formatTarget({ min: 0.6 }), "≥ 0.6");
  assert.equal(formatTarget({ max: 2 }), "≤ 2");
  assert.equal(formatTarget({ min: 0.5, max: 2 }), "0.5–2");
  assert.equal(formatTarget(undefined), "");
});

Deno.test("summarize() gives median, min and max per figure over the runs and judges the median", () => {
  const [bench] = summarize([
    [result("dl", [ratio(0.7), { name: "rate", value: 100, unit: "MiB/s" }])],
    [result("dl", [ratio(0.5), { name: "rate", value: 300, unit: "MiB/s" }])],
    [result("dl", [ratio(0.65), { name: "rate", value: 200, unit: "MiB/s" }])],
  ]);
  assert.equal(bench.runs, 3);
  const [r, rate] = bench.figures;
  assert.deepEqual([r.median, r.min, r.max, r.met], [0.65, 0.5, 0.7, true]);
  assert.equal(r.reference, "raw write of a new 1 GiB file");
  assert.equal(r.scenario, "get -o");
  assert.deepEqual([rate.median, rate.min, rate.max, rate.met], [200, 100, 300, null]);

  const [missed] = summarize([[result("dl", [ratio(0.5)])], [result("dl", [ratio(0.9)])], [
    result("dl", [ratio(0.55)]),
  ]]);
  assert.equal(missed.figures[0].met, false);
});

Deno.test("summarize() keeps a figure of only some runs, and every run's flag", () => {
  const [bench] = summarize([
    [result("t", [{ name: "req/s", value: 10, unit: "req/s", flag: "3 non-2xx" }])],
    [result("t", [{ name: "req/s", value: 30, unit: "req/s" }, {
      name: "extra",
      value: 5,
      unit: "ms",
    }])],
    [result("t", [{ name: "req/s", value: null, unit: "req/s", flag: "wrk died" }])],
  ]);
  const [rps, extra] = bench.figures;
  assert.deepEqual([rps.median, rps.min, rps.max], [20, 10, 30]);
  assert.deepEqual(rps.flags, ["run 1: 3 non-2xx", "run 3: wrk died"]);
  assert.deepEqual(extra.values, [5]);
  const table = formatTextTable([bench]);
  assert.match(
    table,
    /req\/s\s+20\s+10\s+30\s+req\/s\s+2\/3\s+FLAG run 1: 3 non-2xx; run 3: wrk died/,
  );
  assert.match(table, /extra\s+5\s+5\s+5\s+ms\s+1\/3/);
});

Deno.test("summarize() and the tables keep skipped and failed runs as rows with their reason", () => {
  const summary = summarize([
    [skippedResult("swarm", "aria2c is not installed (apt-get install aria2)"), {
      ...result("dl", []),
      status: "failed",
      reason: "peer exited",
    }],
    [result("dl", [ratio(0.7)])],
  ]);
  const text = formatTextTable(summary).split("\n");
  assert.equal(text.length, 5);
  assert.match(text[0], /^benchmark\s+figure\s+median\s+min\s+max\s+unit\s+runs\s+reference/);
  assert.match(text[2], /^swarm\s+\(skipped in run 1\)\s+aria2c is not installed/);
  assert.match(
    text[3],
    /^dl\s+get -o: vs raw write\s+0\.700\s+0\.700\s+0\.700\s+x\s+1\/2\s+raw write/,
  );
  assert.match(text[3], /≥ 0\.6\s+met$/);
  assert.match(text[4], /^dl\s+\(failed in run 1\)\s+peer exited$/);
});

Deno.test("formatMarkdownTable() escapes pipes and right-aligns the numbers", () => {
  const md = formatMarkdownTable(summarize([[result("a", [
    { name: "x | y", value: 0.4, unit: "x", reference: "ref", target: { min: 0.5 } },
  ])]]));
  const lines = md.split("\n");
  assert.equal(lines.length, 3);
  assert.equal(
    lines[0],
    "| benchmark | figure | median | min | max | unit | runs | reference | target | met | note |",
  );
  assert.equal(lines[1], "|---|---|---:|---:|---:|---|---:|---|---|---|---|");
  assert.equal(
    lines[2],
    "| a | x \\| y | 0.400 | 0.400 | 0.400 | x | 1/1 | ref | ≥ 0.5 | MISSED |  |",
  );
});

Deno.test("replaceReadmeBlock() replaces only the text between the markers", () => {
  const readme = `# Bench\n\nbefore\n${README_START}\nold table\n${README_END}\nafter\n`;
  const once = replaceReadmeBlock(readme, "new table\n");
  assert.equal(once, `# Bench\n\nbefore\n${README_START}\n\nnew table\n\n${README_END}\nafter\n`);
  assert.equal(replaceReadmeBlock(once, "new table"), once);
  assert.throws(() => replaceReadmeBlock("# no markers\n", "x"), RangeError);
  assert.throws(() => replaceReadmeBlock(`${README_END}\n${README_START}\n`, "x"), RangeError);
});

Deno.test("readmeBlock() says when and on what machine, then the table", () => {
  const machine = {
    cpu: "Example CPU @ 2.20GHz",
    cores: 2,
    memoryBytes: 8 * 2 ** 30,
    kernel: "Linux 6.1.0",
    deno: "2.9.6",
    loadStart: [0.5, 0.4, 0.3],
    loadEnd: [1.25, 0.9, 0.5],
  };
  assert.equal(
    describeMachine(machine),
    "Example CPU @ 2.20GHz, 2 cores, 8.0 GiB, Linux 6.1.0, Deno 2.9.6, " +
      "1-min load 0.50 at start, 1.25 at end",
  );
  const block = readmeBlock(summarize([[{ ...result("a", [ratio(1)]), notes: ["aria2c 1.36"] }]]), {
    finishedAt: "2026-12-03T12:34:56.000Z",
    runs: 3,
    machine,
  });
  assert.match(block, /^Latest full run: \*\*2026-12-03 12:34 UTC\*\*, up to 3 runs/);
  assert.match(block, /\n\| a \| get -o: vs raw write \| 1 \|/);
  assert.match(block, /\nNotes of the benchmarks:\n\n- a: aria2c 1.36\n$/);
});

Deno.test("parseCpuInfo() reads the model name and counts processors", () => {
  const text = "processor\t: 0\nmodel name\t: Example CPU @ 2.20GHz\n\n" +
    "processor\t: 1\nmodel name\t: Example CPU @ 2.20GHz\n";
  assert.deepEqual(parseCpuInfo(text), { model: "Example CPU @ 2.20GHz", processors: 2 });
  assert.deepEqual(parseCpuInfo(""), { model: null, processors: 0 });
});
