import assert from "node:assert/strict";
import { type Benchmark, BenchSkip } from "./_bench.ts";
import { README_END, README_START } from "./_report.ts";
import { main } from "./run.ts";

/** Benchmarks that report at once: a ratio that grows each run, a one-run one, a skipped one. */
function benchmarks(): { list: Benchmark[]; calls: Record<string, number> } {
  const calls: Record<string, number> = { ratio: 0, once: 0, missing: 0 };
  const list: Benchmark[] = [
    {
      name: "ratio",
      description: "a ratio to a reference",
      run: () => {
        const n = ++calls.ratio;
        return Promise.resolve({
          figures: [{
            name: "get: vs write",
            value: n,
            unit: "x",
            reference: "write",
            target: { min: 2 },
          }],
        });
      },
    },
    {
      name: "once",
      description: "a long one that runs once",
      runs: 1,
      run: () => {
        calls.once++;
        return Promise.resolve({ figures: [{ name: "ms", value: 5, unit: "ms" }] });
      },
    },
    {
      name: "missing",
      description: "a tool is missing",
      run: () => {
        calls.missing++;
        return Promise.reject(new BenchSkip("nothere is not installed (apt-get install nothere)"));
      },
    },
  ];
  return { list, calls };
}

Deno.test("main() runs each benchmark its runs, then writes JSON, SVG and the README table of a full run", async () => {
  const out = await Deno.makeTempDir({ prefix: "p2p-bench-run-" });
  try {
    const readme = `# Bench\n\n${README_START}\n\nold\n\n${README_END}\n\nafter\n`;
    await Deno.writeTextFile(`${out}/README.md`, readme);
    const { list, calls } = benchmarks();
    assert.equal(await main([], { benchmarks: list, root: out, out }), 0);
    assert.deepEqual(calls, { ratio: 3, once: 1, missing: 1 });

    const files = [...Deno.readDirSync(`${out}/results`)].map((e) => e.name).sort();
    assert.equal(files.length, 4);
    assert.deepEqual(files.slice(2), ["latest.json", "latest.svg"]);
    assert.match(files[0], /^\d{8}T\d{6}Z\.json$/);
    const report = JSON.parse(await Deno.readTextFile(`${out}/results/latest.json`));
    assert.equal(report.full, true);
    assert.equal(report.runs.length, 3);
    assert.equal(report.runs[0].results.length, 3);
    assert.deepEqual(report.runs[2].results.map((r: { name: string }) => r.name), ["ratio"]);
    assert.equal(typeof report.machine.deno, "string");
    assert.equal(report.machine.loadEnd.length, 3);
    assert.match(await Deno.readTextFile(`${out}/results/latest.svg`), /<rect class="bar"/);

    const table = await Deno.readTextFile(`${out}/README.md`);
    assert.match(table, /^# Bench\n/);
    assert.match(table, /after\n$/);
    assert.doesNotMatch(table, /\nold\n/);
    assert.match(table, /Latest full run: \*\*\d{4}-\d\d-\d\d \d\d:\d\d UTC\*\*, up to 3 runs/);
    assert.match(
      table,
      /\| ratio +\| get: vs write +\| +2 \| +1 \| +3 \| x +\| +3\/3 \| write +\| ≥ 2 +\| met +\|/,
    );
    assert.match(table, /\| once +\| ms +\| +5 \|.*\| +1\/1 \|/);
    assert.match(table, /\| missing +\| \(skipped in run 1\) +\|.*nothere is not installed/);

    // A run of selected benchmarks writes dated files only.
    const { list: again } = benchmarks();
    assert.equal(await main(["ratio", "--runs", "1"], { benchmarks: again, root: out, out }), 0);
    assert.equal(await Deno.readTextFile(`${out}/README.md`), table);
    const partial = [...Deno.readDirSync(`${out}/results`)].map((e) => e.name);
    assert.equal(partial.length, 6);
    assert.ok(partial.some((name) => /^\d{8}T\d{6}Z-ratio\.svg$/.test(name)));
    const latest = JSON.parse(await Deno.readTextFile(`${out}/results/latest.json`));
    assert.equal(latest.runs.length, 3);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("main() answers a bad option or name with one line and status 2, running nothing", async () => {
  const { list, calls } = benchmarks();
  for (const args of [["--runs", "0"], ["--runs", "x"], ["-d", "601"], ["--what"], ["nosuch"]]) {
    assert.equal(
      await main(args, { benchmarks: list, root: "/nonexistent", out: "/nonexistent" }),
      2,
    );
  }
  assert.deepEqual(calls, { ratio: 0, once: 0, missing: 0 });
});
