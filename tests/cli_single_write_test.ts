/**
 * Each byte written once (issue 13), as a user sees it, between two real peers (child
 * processes on 127.0.0.2 and 127.0.0.3) and the CLI as a child process: `put FILE`
 * into a peer on this machine leaves no copy in its data directory (the peer reads the
 * file itself and links to it); `get -o FILE` from a peer on this machine has the peer
 * write the file, byte-identical, with no second copy in its data directory, and the
 * peer then shares it from that file; the `get` rules hold (an existing file kept
 * without `--force`, replaced with it; a symlink at the destination refused, its
 * target untouched); the path routes refuse a request without the owner's token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { tempDir } from "./_tracker_process.ts";
import { spawnPair } from "./_peer_process.ts";
import { runCli } from "./_cli_run.ts";

const MiB = 1024 * 1024;

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Bytes of the regular files under `root`, recursively. */
async function diskUse(root: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(root)) {
    const p = `${root}/${e.name}`;
    if (e.isDirectory) n += await diskUse(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

Deno.test("put FILE and get -o FILE with a peer on this machine write each byte once, and keep the get rules", async () => {
  await using dir = await tempDir();
  await using pair = await spawnPair(dir.path, { name: "alice" }, { name: "bob" });
  const { a, b } = pair;
  const cli = (peer: typeof a, ...args: string[]) => runCli(args, { cwd: dir.path, peer });
  const data = bytes(6 * MiB + 77);
  await Deno.writeFile(`${dir.path}/data.bin`, data);
  const aBefore = await diskUse(a.dataDir);
  const put = await cli(a, "put", `${dir.path}/data.bin`);
  assert.equal(put.code, 0, put.stderr);
  const id = put.stdout.trim();
  assert.ok(
    await diskUse(a.dataDir) - aBefore < MiB,
    "a's data directory gains no copy of the 6 MiB put",
  );

  const bBefore = await diskUse(b.dataDir);
  const got = await cli(b, "get", id, "-o", "out.bin");
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stderr, /^saved 6\.0 MiB to \.\/out\.bin \(verified, [\d.]+ s, 1 source\)$/m);
  assert.match(got.stderr, /the copy is the file saved, not a second one/);
  assert.deepEqual(await Deno.readFile(`${dir.path}/out.bin`), data);
  assert.ok(
    await diskUse(b.dataDir) - bBefore < MiB,
    "b's data directory gains no second copy of the 6 MiB saved",
  );
  await assert.rejects(Deno.lstat(`${dir.path}/out.bin.p2p-partial`), Deno.errors.NotFound);
  const listed = JSON.parse((await cli(b, "ls", "--json")).stdout);
  assert.equal(listed.length, 1);
  assert.equal(listed[0].held, listed[0].chunks, "b holds every chunk, from out.bin");

  // An existing file is kept without --force, replaced with it.
  await Deno.writeTextFile(`${dir.path}/kept.bin`, "mine");
  const refused = await cli(b, "get", id, "-o", "kept.bin");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /exists; add --force/);
  assert.equal(await Deno.readTextFile(`${dir.path}/kept.bin`), "mine");
  const forced = await cli(b, "get", id, "-o", "kept.bin", "--force");
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(await Deno.readFile(`${dir.path}/kept.bin`), data);

  // A symlink at the destination is refused; with --force it is replaced, never written through.
  await Deno.writeTextFile(`${dir.path}/victim`, "untouched");
  await Deno.symlink(`${dir.path}/victim`, `${dir.path}/link.bin`);
  const viaLink = await cli(b, "get", id, "-o", "link.bin");
  assert.equal(viaLink.code, 1);
  assert.match(viaLink.stderr, /exists; add --force/);
  // A symlink planted at the partial name is not written through either.
  await Deno.symlink(`${dir.path}/victim`, `${dir.path}/new.bin.p2p-partial`);
  const planted = await cli(b, "get", id, "-o", "new.bin");
  assert.equal(planted.code, 0, planted.stderr);
  assert.deepEqual(await Deno.readFile(`${dir.path}/new.bin`), data);
  assert.equal(await Deno.readTextFile(`${dir.path}/victim`), "untouched");

  // The path routes need the owner's token.
  for (
    const [path, body] of [
      [`/_p2p/downloads/${id}/to-file`, { path: `${dir.path}/stolen.bin` }],
      ["/_p2p/payloads/from-file", { path: `${dir.path}/data.bin` }],
    ] as const
  ) {
    const res = await fetch(`${b.http}${path}`, { method: "POST", body: JSON.stringify(body) });
    assert.equal(res.status, 401, path);
    await res.body?.cancel();
  }
  await assert.rejects(Deno.lstat(`${dir.path}/stolen.bin`), Deno.errors.NotFound);
});
