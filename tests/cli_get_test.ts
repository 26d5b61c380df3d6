/**
 * `p2p get` as a child process against a real peer: every destination rule (the
 * payload's name in the current folder, a folder, a file, an existing file kept
 * without `--force`, standard output through a pipe or `-o -`, binary refused on a
 * terminal, standard output closed by its reader), the partial file never written
 * through a symlink, ids by prefix and name (unique, ambiguous, unknown), and errors
 * as one line or, with `--json`, JSON.
 *
 * @module
 */
import assert from "node:assert/strict";
import { p2pCommand, REPO_ROOT, tempDir } from "./_tracker_process.ts";
import { spawnPeer } from "./_peer_process.ts";
import { type CliRun, runCli, SCRIPT, shellQuote } from "./_cli_run.ts";

const BINARY = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
const TEXT = new TextEncoder().encode("hello, world\n");

/** Asserts one line on stderr starting `p2p: ` and naming `needle`, and exit status 1. */
function assertFailed(run: CliRun, needle: string | RegExp, what: string): void {
  assert.equal(run.code, 1, `${what}: exit status (stderr ${JSON.stringify(run.stderr)})`);
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(run.stderr)}`);
  assert.match(lines[0], /^p2p: /, what);
  if (typeof needle === "string") assert.ok(lines[0].includes(needle), `${what}: ${lines[0]}`);
  else assert.match(lines[0], needle, what);
}

Deno.test("p2p get saves where its destination rules say, keeps existing files, and never writes through a symlink", async () => {
  await using dir = await tempDir();
  const home = { P2P_HOME: `${dir.path}/home` };
  await using peer = await spawnPeer({ dataDir: `${dir.path}/peer`, host: "127.0.0.2", env: home });
  const work = `${dir.path}/work`;
  await Deno.mkdir(work);
  await Deno.writeFile(`${dir.path}/big.bin`, BINARY);
  await Deno.writeFile(`${dir.path}/hi.txt`, TEXT);
  const cli = (args: string[], pty = false) => runCli(args, { cwd: work, peer, env: home, pty });
  const put = await cli(["put", `${dir.path}/big.bin`]);
  assert.equal(put.code, 0, put.stderr);
  const id = put.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/, "stdout: the payloadId alone");
  assert.match(put.stderr, new RegExp(`^get it elsewhere with: p2p get ${id.slice(0, 12)}$`, "m"));
  const link = `${peer.http}/#/payloads/${id}`;
  assert.ok(put.stderr.includes(`or open: ${link}\n`), put.stderr);
  assert.equal((await cli(["put", `${dir.path}/hi.txt`])).code, 0);

  // A pipe: standard output, by the payload's name.
  const piped = await cli(["get", "big.bin"]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.deepEqual(piped.bytes, BINARY);
  assert.match(piped.stderr, /^saved 98 KiB to standard output \(verified, already here\)$/m);
  assert.doesNotMatch(piped.stderr, /MiB\/s|ETA/);
  const dash = await cli(["get", id.slice(0, 8), "-o", "-"]);
  assert.deepEqual(dash.bytes, BINARY, dash.stderr);

  // -o FILE, then the same again: kept, unless --force.
  const file = await cli(["get", id, "-o", "copy.bin"]);
  assert.equal(file.code, 0, file.stderr);
  assert.match(file.stderr, /^saved 98 KiB to \.\/copy\.bin \(verified, already here\)$/m);
  assert.deepEqual(await Deno.readFile(`${work}/copy.bin`), BINARY);
  await Deno.writeTextFile(`${work}/copy.bin`, "mine");
  assertFailed(await cli(["get", id, "-o", "copy.bin"]), "exists; add --force", "existing file");
  assert.equal(await Deno.readTextFile(`${work}/copy.bin`), "mine");
  assert.equal((await cli(["get", id, "-o", "copy.bin", "--force"])).code, 0);
  assert.deepEqual(await Deno.readFile(`${work}/copy.bin`), BINARY);

  // -o DIR: inside it, under the payload's name; a missing folder is one line.
  await Deno.mkdir(`${work}/into`);
  const into = await cli(["get", "hi.txt", "-o", "into"]);
  assert.equal(into.code, 0, into.stderr);
  assert.deepEqual(await Deno.readFile(`${work}/into/hi.txt`), TEXT);
  assertFailed(await cli(["get", "hi.txt", "-o", "nope/"]), "'nope/' does not exist", "no DIR");
  assertFailed(await cli(["get", "hi.txt", "-o", "nope/x"]), "'nope' does not exist", "no dir");

  // A symlink planted at FILE.p2p-partial is removed, never written through.
  await Deno.writeTextFile(`${dir.path}/victim`, "untouched");
  await Deno.symlink(`${dir.path}/victim`, `${work}/planted.bin.p2p-partial`);
  assert.equal((await cli(["get", id, "-o", "planted.bin"])).code, 0);
  assert.equal(await Deno.readTextFile(`${dir.path}/victim`), "untouched");
  assert.deepEqual(await Deno.readFile(`${work}/planted.bin`), BINARY);
  await assert.rejects(Deno.lstat(`${work}/planted.bin.p2p-partial`), Deno.errors.NotFound);

  // Standard output closed by its reader after the first bytes: one line, status 1.
  const big = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
  await Deno.writeFile(`${dir.path}/four.bin`, big);
  const four = await cli(["put", `${dir.path}/four.bin`]);
  assert.equal(four.code, 0, four.stderr);
  // `p2p get ID | head -c 1000`: head exits, the pipe closes under the writer.
  const { cmd, args } = p2pCommand(
    ["get", four.stdout.trim(), "--node", peer.http, "--token", peer.token],
    undefined,
    new URL("main.ts", REPO_ROOT).pathname,
  );
  const quoted = [cmd, ...args].map(shellQuote).join(" ");
  const early = await new Deno.Command("bash", {
    args: ["-c", `${quoted} | head -c 1000 > /dev/null; echo "status \${PIPESTATUS[0]}" >&2`],
    cwd: work,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...home },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const lines = new TextDecoder().decode(early.stderr).trim().split("\n");
  assert.equal(lines.at(-1), "status 1", lines.join("\n"));
  assertFailed(
    { code: 1, stdout: "", stderr: lines.slice(0, -1).join("\n"), bytes: new Uint8Array() },
    "Standard output was closed before the end",
    "stdout closed early",
  );

  if (!SCRIPT) {
    console.log("skipped the terminal cases: util-linux script is not installed");
    return;
  }
  // A terminal: the payload's name in the current folder; binary refused on it.
  const named = await cli(["get", id.slice(0, 6)], true);
  assert.equal(named.code, 0, named.stdout);
  assert.match(named.stdout, /saved 98 KiB to \.\/big\.bin \(verified, already here\)/);
  assert.deepEqual(await Deno.readFile(`${work}/big.bin`), BINARY);
  const refused = await cli(["get", id, "-o", "-"], true);
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /^p2p: Not writing binary data to the terminal: pipe it/m);
  const text = await cli(["get", "hi.txt", "-o", "-"], true);
  assert.equal(text.code, 0, text.stdout);
  assert.match(text.stdout, /hello, world/);
});

Deno.test("p2p get and where take a prefix or a name, list the matches of an ambiguous one, and with --json answer errors as JSON", async () => {
  await using dir = await tempDir();
  const home = { P2P_HOME: `${dir.path}/home` };
  await using peer = await spawnPeer({ dataDir: `${dir.path}/peer`, host: "127.0.0.2", env: home });
  const cli = (args: string[]) => runCli(args, { cwd: dir.path, peer, env: home });
  const ids: string[] = [];
  for (const text of ["one", "two"]) {
    await Deno.writeTextFile(`${dir.path}/${text}`, text);
    const put = await cli(["put", `${dir.path}/${text}`, "--name", "same.txt"]);
    assert.equal(put.code, 0, put.stderr);
    ids.push(put.stdout.trim().split("\n")[0]);
  }
  const where = await cli(["where", ids[0].slice(0, 10)]);
  assert.equal(where.code, 0, where.stderr);
  assert.match(where.stdout, new RegExp(`^payload ${ids[0].slice(0, 12)}\\b`, "m"));

  const ambiguous = await cli(["get", "same.txt"]);
  assertFailed(ambiguous, /'same\.txt' matches 2 payloads: /, "ambiguous name");
  for (const id of ids) assert.ok(ambiguous.stderr.includes(id.slice(0, 12)), ambiguous.stderr);
  assert.doesNotMatch(ambiguous.stderr, /[0-9a-f]{13}/, "ids in their short form");
  assertFailed(await cli(["get", "abc"]), "'abc' is too short", "short prefix");
  assertFailed(await cli(["get", "nothing-by-this-name"]), "No payload", "unknown");

  const json = await cli(["get", "same.txt", "--json"]);
  assert.equal(json.code, 1);
  assert.equal(json.stderr, "");
  const body = JSON.parse(json.stdout);
  assert.equal(body.error.code, "ambiguous_id");
  assert.match(body.error.message, /matches 2 payloads/);
  const usage = await cli(["get", "--json"]);
  assert.equal(usage.code, 2);
  assert.equal(JSON.parse(usage.stdout).error.code, "usage");
});
