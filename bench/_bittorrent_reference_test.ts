import assert from "node:assert/strict";
import type { BenchContext } from "./_bench.ts";
import { which } from "./_bench.ts";
import { pseudoRandomStream } from "./_bench_peer.ts";
import { bittorrentReference } from "./_bittorrent_reference.ts";
import { writePayloadFile } from "./_reference_kit.ts";

const TOOLS = ["aria2c", "opentracker", "mktorrent"];
const missing = (await Promise.all(TOOLS.map(which))).some((p) => p === null);
if (missing) console.log(`skipped: bittorrentReference() needs ${TOOLS.join(", ")} on PATH`);

function context(): BenchContext {
  return { root: ".", duration: 1, signal: new AbortController().signal, log: () => {} };
}

Deno.test({
  name: "bittorrentReference() times 2 leechers fetching 3 MiB from 2 seeders, copies verified",
  ignore: missing,
  async fn() {
    const ctx = context();
    const payload = await writePayloadFile(
      "payload.bin",
      pseudoRandomStream(3 * 2 ** 20 + 123, 5),
      ctx.signal,
    );
    try {
      const got = await bittorrentReference(ctx, "3 MiB", payload, {
        seeders: ["127.0.0.2", "127.0.0.3"],
        leechers: ["127.0.0.4", "127.0.0.5"],
      });
      assert.equal(got.note, undefined);
      assert.equal(got.leechers?.length, 2);
      assert.ok(got.seconds! > 0 && got.seconds === Math.max(...got.leechers!));
    } finally {
      await Deno.remove(payload.dir, { recursive: true });
    }
  },
});

Deno.test("bittorrentReference() without its tools on PATH gives one note naming them", async () => {
  const ctx = context();
  const payload = await writePayloadFile("payload.bin", pseudoRandomStream(1024, 1), ctx.signal);
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", payload.dir);
  try {
    const got = await bittorrentReference(ctx, "1 KiB", payload, {
      seeders: ["127.0.0.2"],
      leechers: ["127.0.0.3"],
    });
    assert.equal(got.seconds, undefined);
    assert.match(
      got.note ?? "",
      /^1 KiB: no aria2c BitTorrent reference .*: aria2c, opentracker, mktorrent not installed$/,
    );
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(payload.dir, { recursive: true });
  }
});
