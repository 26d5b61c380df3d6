/**
 * The client commands between two real peers (child processes on 127.0.0.2 and
 * 127.0.0.3): Ctrl-C on `p2p get` cancels the download on the peer and the same
 * command resumes it; `p2p ls`, `p2p rm` (the last known copy refused unless
 * `--force`) and `get --drop`; `log --peer` by prefix and by name.
 *
 * @module
 */
import assert from "node:assert/strict";
import { tempDir } from "./_tracker_process.ts";
import { followLog, spawnPair } from "./_peer_process.ts";
import { ended, runCli, spawnCli } from "./_cli_run.ts";

const MiB = 1024 * 1024;

/** Bytes that differ from run to run and between payloads. */
function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

Deno.test("Ctrl-C on p2p get cancels the download on the peer, says how far it got, and the same command resumes it", async () => {
  await using dir = await tempDir();
  // a serves slowly, so that the download is under way when the client is interrupted.
  await using pair = await spawnPair(
    dir.path,
    { name: "alice", args: ["--max-upload-rate", "1MiB"] },
    { name: "bob" },
  );
  const { a, b } = pair;
  const data = bytes(4 * MiB);
  await Deno.writeFile(`${dir.path}/data.bin`, data);
  const put = await runCli(["put", `${dir.path}/data.bin`], { cwd: dir.path, peer: a });
  assert.equal(put.code, 0, put.stderr);
  const id = put.stdout.trim().split("\n")[0];
  await using bLog = await followLog(b);

  const get = spawnCli(["get", "data.bin", "-o", "out.bin"], { cwd: dir.path, peer: b });
  await bLog.waitFor(
    (r) => r.type === "chunk.received" && r.payloadId === id,
    "b to receive a first chunk",
  );
  get.kill("SIGINT");
  const cancelled = await ended(get);
  assert.equal(cancelled.code, 130, cancelled.stderr);
  assert.match(
    cancelled.stderr,
    /^p2p: Cancelled at \d+ % \([\d.]+ (?:B|KiB|MiB) of 4\.0 MiB\); run the same command again to resume$/m,
  );
  const cancel = await bLog.waitFor(
    (r) => r.type === "download.cancel" && r.payloadId === id,
    "b to cancel the download",
  );
  assert.ok(Number(cancel.done) >= 1 && Number(cancel.done) < 4, JSON.stringify(cancel));
  await assert.rejects(Deno.lstat(`${dir.path}/out.bin`), Deno.errors.NotFound);
  await assert.rejects(Deno.lstat(`${dir.path}/out.bin.p2p-partial`), Deno.errors.NotFound);

  const again = await runCli(["get", id.slice(0, 6), "-o", "out.bin"], { cwd: dir.path, peer: b });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /^saved 4\.0 MiB to \.\/out\.bin \(verified, [\d.]+ s, 1 source\)$/m);
  assert.deepEqual(await Deno.readFile(`${dir.path}/out.bin`), data);
  const done = await bLog.waitFor(
    (r) => r.type === "download.done" && r.payloadId === id,
    "b to finish the download",
  );
  assert.ok(Number(done.resumed) >= 1, `resumed: ${JSON.stringify(done)}`);
});

Deno.test("p2p get says that the local peer was lost, and what to do, when it dies mid-download", async () => {
  await using dir = await tempDir();
  await using pair = await spawnPair(dir.path, { args: ["--max-upload-rate", "1MiB"] });
  const { a, b } = pair;
  await Deno.writeFile(`${dir.path}/data.bin`, bytes(3 * MiB));
  const put = await runCli(["put", `${dir.path}/data.bin`], { cwd: dir.path, peer: a });
  const id = put.stdout.trim();
  const bLog = await followLog(b);
  const get = spawnCli(["get", id, "-o", "out.bin"], { cwd: dir.path, peer: b });
  await bLog.waitFor((r) => r.type === "chunk.received", "b to receive a first chunk");
  await b.kill();
  await bLog[Symbol.asyncDispose]();
  const lost = await ended(get);
  assert.equal(lost.code, 1, lost.stderr);
  assert.equal(
    lost.stderr.trim(),
    `p2p: Lost the connection to the local peer at ${b.http} (did it stop?); start it again, ` +
      "then run the same command to resume",
  );
  await assert.rejects(Deno.lstat(`${dir.path}/out.bin`), Deno.errors.NotFound);
});

Deno.test("p2p ls lists what is held, rm refuses the last known copy unless --force, get --drop drops the peer's copy, and log --peer takes a prefix or a name", async () => {
  await using dir = await tempDir();
  await using pair = await spawnPair(dir.path, { name: "alice" }, { name: "bob" });
  const { a, b } = pair;
  const cli = (peer: typeof a, ...args: string[]) => runCli(args, { cwd: dir.path, peer });
  await Deno.writeFile(`${dir.path}/x.bin`, bytes(MiB + 5));
  assert.equal((await cli(a, "put", `${dir.path}/x.bin`)).code, 0);

  // --drop: saved, and b's store copy gone, as a holds every chunk.
  const dropped = await cli(b, "get", "x.bin", "-o", "first.bin", "--drop");
  assert.equal(dropped.code, 0, dropped.stderr);
  assert.match(dropped.stderr, /^dropped the peer's copy of [0-9a-f]{12} \(1\.0 MiB freed\)$/m);
  assert.match((await cli(b, "ls")).stdout, /^nothing held here yet/);

  const second = await cli(b, "get", "x.bin", "-o", "second.bin");
  assert.equal(second.code, 0, second.stderr);
  assert.match(
    second.stderr,
    /^the local peer keeps a copy too, to share it \(p2p rm [0-9a-f]{12} /m,
  );
  const listed = JSON.parse((await cli(b, "ls", "--json")).stdout);
  assert.equal(listed.length, 1);
  assert.equal(listed[0].name, "x.bin");
  assert.equal(listed[0].pinned, true);
  assert.match(listed[0].addedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const table = (await cli(a, "ls")).stdout.split("\n");
  assert.match(table[0], /^ID\s+NAME\s+SIZE\s+CHUNKS\s+KEPT AS\s+ADDED$/);
  assert.match(table[1], /^[0-9a-f]{12} {2}x\.bin\s+1\.0 MiB\s+2\s+yours\s+\d+s ago$/);
  // a's payload was put from a file on its machine: the store links to it, no copy.
  assert.equal(table[2], "1 payload, 0 B on disk");

  // b's copy may go (a has every chunk); then a's is the last, kept unless --force.
  const rmB = await cli(b, "rm", "x.bin");
  assert.equal(rmB.code, 0, rmB.stderr);
  // b saved second.bin itself (a peer on this machine): that file was its only copy.
  assert.match(rmB.stdout, /^removed x\.bin \([0-9a-f]{12}\): 0 B freed$/m);
  const refused = await cli(a, "rm", "x.bin");
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /^p2p: This peer holds the only known copy of 2 of the 2 chunks of 'x\.bin'; .*--force/,
  );
  const json = await cli(a, "rm", "x.bin", "--json");
  assert.equal(JSON.parse(json.stdout).error.code, "last_copy");
  const forced = await cli(a, "rm", "x.bin", "--force");
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /2 chunks had no other known copy/);

  // peers --json: times in ISO 8601.
  const known = JSON.parse((await cli(a, "peers", "--json")).stdout);
  assert.equal(known[0].peerId, b.peerId);
  assert.match(known[0].lastSeen, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  // Another peer's log by a prefix of its id or by its name.
  for (const ref of [b.peerId.slice(0, 8), "bob"]) {
    const log = await cli(a, "log", "--peer", ref, "--limit", "2", "--json");
    assert.equal(log.code, 0, `${ref}: ${log.stderr}`);
    assert.equal(log.stdout.trim().split("\n").length, 2, log.stdout);
  }
  const unknown = await cli(a, "log", "--peer", "carol");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^p2p: No peer 'carol' is known here \(see p2p peers\)$/m);
});
