import assert from "node:assert/strict";
import { rotatedPath, RotatingFile } from "./rotating_file.ts";

const enc = new TextEncoder();
const line = (i: number) => enc.encode(`{"i":${i},"pad":"${"x".repeat(40)}"}\n`);

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-rotate-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const numbers = (text: string) =>
  text.trim().split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { i: number }).i);

Deno.test("RotatingFile rotates at maxBytes, keeps keepFiles old files and never splits a line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/activity.jsonl`;
    const size = line(0).length;
    const f = await RotatingFile.open(path, { maxBytes: 3 * size, keepFiles: 2 });
    for (let i = 0; i < 10; i++) f.appendSync(line(i));
    f.close();
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["activity.1.jsonl", "activity.2.jsonl", "activity.jsonl"],
    );
    // 3 lines a file, newest last: 0..2 and 3..5 are gone with the oldest file.
    assert.deepEqual(numbers(await Deno.readTextFile(rotatedPath(path, 2))), [3, 4, 5]);
    assert.deepEqual(numbers(await Deno.readTextFile(rotatedPath(path, 1))), [6, 7, 8]);
    assert.deepEqual(numbers(await Deno.readTextFile(path)), [9]);
  });
});

Deno.test("RotatingFile.open() appends to an existing file and counts its size", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/log.jsonl`;
    await Deno.writeFile(path, line(1));
    const f = await RotatingFile.open(path, { maxBytes: 1000 });
    assert.equal(f.size, line(1).length);
    f.appendSync(line(2));
    f.close();
    assert.deepEqual(numbers(await Deno.readTextFile(path)), [1, 2]);
  });
});

Deno.test("RotatingFile rejects bad options and appends after close()", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/log.jsonl`;
    await assert.rejects(RotatingFile.open(path, { maxBytes: 0 }), /maxBytes '0'/);
    await assert.rejects(RotatingFile.open(path, { keepFiles: 1.5 }), /keepFiles '1.5'/);
    const f = await RotatingFile.open(path);
    f.close();
    f.close();
    assert.throws(() => f.appendSync(line(1)), Deno.errors.BadResource);
  });
});
