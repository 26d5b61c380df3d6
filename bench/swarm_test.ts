import assert from "node:assert/strict";
import { swarm } from "./swarm.ts";
import { which } from "./_bench.ts";

const tools = ["aria2c", "opentracker", "mktorrent"];
const missing = (await Promise.all(tools.map(which))).some((p) => p === null);

Deno.test("swarm.run() at 2 MiB and 2 downloaders gives its ratios with targets", async () => {
  Deno.env.set("P2P_BENCH_MIB", "2");
  Deno.env.set("P2P_BENCH_SWARM", "2");
  try {
    const out = await swarm.run({
      root: new URL("..", import.meta.url).pathname,
      duration: 1,
      signal: AbortSignal.timeout(120_000),
      log: () => {},
    });
    const byName = new Map(out.figures.map((f) => [f.name, f]));
    const flat = byName.get("2 MiB, 1 seeder, 2 downloaders: all done / one alone");
    assert.deepEqual(flat?.target, { max: 2 });
    assert.ok(flat.value! > 0 && flat.reference);
    const plain = byName.get("2 MiB, 1 seeder, 2 downloaders, plaintext links: all done");
    assert.ok(plain?.value! > 0 && plain?.unit === "MiB/s");
    const bt = byName.get("2 MiB, 1 seeder, 2 downloaders: p2p vs aria2c BitTorrent");
    if (missing) {
      console.log(`no BitTorrent rows checked: ${tools.join(", ")} needed on PATH`);
      assert.ok(out.notes?.some((n) => n.includes("not installed")));
    } else {
      assert.deepEqual(bt?.target, { min: 1 });
      assert.ok(bt.value! > 0);
      const btPlain = byName.get(
        "2 MiB, 1 seeder, 2 downloaders, plaintext links: p2p vs aria2c BitTorrent",
      );
      assert.equal(btPlain?.target, undefined);
      assert.ok(btPlain?.value! > 0);
    }
  } finally {
    Deno.env.delete("P2P_BENCH_MIB");
    Deno.env.delete("P2P_BENCH_SWARM");
  }
});
