import assert from "node:assert/strict";
import { type BenchContext, MiB, which } from "./_bench.ts";
import { pseudoRandomStream } from "./_bench_peer.ts";
import { aria2Reference } from "./_aria2_reference.ts";
import { curlReference } from "./_curl_reference.ts";
import { writePayloadFile } from "./_reference_kit.ts";

/** Which of `tools` are not on PATH; prints why a test is skipped. */
async function lacking(test: string, tools: string[]): Promise<boolean> {
  const paths = await Promise.all(tools.map(which));
  const missing = tools.filter((_, i) => paths[i] === null);
  if (missing.length) console.log(`skipped: ${test} needs ${missing.join(", ")} on PATH`);
  return missing.length > 0;
}

function context(): BenchContext {
  return { root: ".", duration: 1, signal: new AbortController().signal, log: () => {} };
}

async function withPayload(fn: (p: Awaited<ReturnType<typeof writePayloadFile>>) => Promise<void>) {
  const payload = await writePayloadFile(
    "payload.bin",
    pseudoRandomStream(3 * MiB + 77, 9),
    new AbortController().signal,
  );
  try {
    await fn(payload);
  } finally {
    await Deno.remove(payload.dir, { recursive: true });
  }
}

Deno.test({
  name: "curlReference() times curl fetching 3 MiB from nginx on 127.0.0.2, copy verified",
  ignore: await lacking("curlReference()", ["curl", "nginx"]),
  async fn() {
    await withPayload(async (payload) => {
      const got = await curlReference(context(), "3 MiB", payload, "127.0.0.2");
      assert.equal(got.note, undefined);
      assert.ok(got.seconds! > 0);
    });
  },
});

Deno.test({
  name: "aria2Reference() times aria2c fetching 3 MiB from 3 nginx servers with a metalink",
  ignore: await lacking("aria2Reference()", ["aria2c", "nginx"]),
  async fn() {
    await withPayload(async (payload) => {
      assert.equal(payload.pieces.length, 4);
      const got = await aria2Reference(context(), "3 MiB", payload, [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
      ]);
      assert.equal(got.note, undefined);
      assert.ok(got.seconds! > 0);
    });
  },
});

Deno.test("writePayloadFile() writes the bytes with their SHA-256 and per-MiB hashes", async () => {
  await withPayload(async (payload) => {
    const info = await Deno.stat(payload.path);
    assert.equal(info.size, 3 * MiB + 77);
    assert.equal(payload.bytes, info.size);
    assert.equal((await Deno.stat(payload.dir)).mode! & 0o777, 0o755);
    assert.match(payload.sha256, /^[0-9a-f]{64}$/);
  });
});
