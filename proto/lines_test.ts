import assert from "node:assert/strict";
import fc from "fast-check";
import { jsonLines, LineStream } from "./lines.ts";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

Deno.test("LineStream gives the same lines whatever the chunk boundaries", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ unit: fc.constantFrom("a", "é", " ", "\n") }), { maxLength: 8 }),
      async (chunks) => {
        const text = chunks.join("");
        const want = text.split("\n");
        if (want.at(-1) === "") want.pop();
        const got = await collect(ReadableStream.from(chunks).pipeThrough(new LineStream()));
        assert.deepEqual(got, want);
      },
    ),
  );
});

Deno.test("jsonLines() parses each non-empty line, split across byte chunks", async () => {
  const bytes = new TextEncoder().encode('{"a":1}\n\n{"b":"ü"}\n[3]');
  const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 14), bytes.subarray(14)];
  assert.deepEqual(await collect(jsonLines(ReadableStream.from(chunks))), [
    { a: 1 },
    { b: "ü" },
    [3],
  ]);
  await assert.rejects(
    collect(jsonLines(ReadableStream.from([new TextEncoder().encode("{oops\n")]))),
    SyntaxError,
  );
});
