import assert from "node:assert/strict";
import { gathered } from "./put.ts";

Deno.test("gathered() sends standard input in 1 MiB pieces, the last one shorter, bytes unchanged", async () => {
  const total = 2 * 1024 * 1024 + 12_345;
  const bytes = new Uint8Array(total).map((_, i) => (i * 7) % 251);
  // Pieces of odd sizes, as a pipe brings them.
  const parts: Uint8Array[] = [];
  for (let at = 0, n = 1; at < total; at += n, n = (n * 31 + 17) % 70_001 + 1) {
    parts.push(bytes.slice(at, Math.min(total, at + n)));
  }
  const out: Uint8Array[] = [];
  for await (const piece of gathered(ReadableStream.from(parts))) out.push(piece);
  assert.deepEqual(out.map((p) => p.length), [1024 * 1024, 1024 * 1024, 12_345]);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of out) (joined.set(p, at), at += p.length);
  assert.deepEqual(joined, bytes);
});

Deno.test("gathered() of an empty input sends nothing", async () => {
  const out: Uint8Array[] = [];
  for await (const piece of gathered(ReadableStream.from<Uint8Array>([]))) out.push(piece);
  assert.equal(out.length, 0);
});
