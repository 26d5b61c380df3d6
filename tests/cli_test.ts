/**
 * Smoke tests of the `p2p` command line as a child process: help, version, bad
 * arguments (exit 2, one line, no stack trace) and failures at run time (exit 1).
 *
 * @module
 */
import assert from "node:assert/strict";
import { REPO_ROOT, tempDir } from "./_tracker_process.ts";
import { VERSION } from "../version.ts";

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main.ts` with `args` to its end (killed after 15 s). */
async function p2p(...args: string[]): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(15_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Asserts one non-empty line on stderr, naming `needle`, without stack frames. */
function assertOneLineError(run: CliRun, needle: string, what: string): void {
  const lines = run.stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(run.stderr)}`);
  assert.ok(lines[0].includes(needle), `${what}: ${JSON.stringify(lines[0])} names '${needle}'`);
  assert.doesNotMatch(run.stderr, /^\s*at /m, `${what}: no stack trace`);
}

Deno.test("p2p --help lists the commands and exits 0", async () => {
  const run = await p2p("--help");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^Usage: p2p /m);
  for (const word of ["tracker", "demo", "--version", "--help"]) {
    assert.ok(run.stdout.includes(word), `--help mentions ${word}`);
  }
  assert.equal(run.stderr, "");
});

Deno.test("p2p tracker --help lists every tracker option and exits 0", async () => {
  const run = await p2p("tracker", "--help");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^Usage: p2p tracker /m);
  for (const option of ["--host", "--port", "--db", "--log", "--peer-ttl", "--max-upload"]) {
    assert.match(run.stdout, new RegExp(`^\\s+${option} `, "m"), `tracker --help lists ${option}`);
  }
  assert.equal(run.stderr, "");
});

Deno.test("p2p --version and -V print the version from version.ts", async () => {
  for (const flag of ["--version", "-V"]) {
    const run = await p2p(flag);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), VERSION, flag);
    assert.equal(run.stderr, "");
  }
});

Deno.test("p2p exits 2 with one line naming the bad command, option or value", async () => {
  await using dir = await tempDir();
  // Safe settings come first, so that a bad value accepted by mistake still starts
  // nothing but a loopback tracker on a free port, which the 15 s timeout ends.
  const tracker = [
    "tracker",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--db",
    `${dir.path}/tracker.kv`,
    "--log",
    `${dir.path}/activity.jsonl`,
  ];
  const peer = [
    "peer",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--http-port",
    "0",
    "--pingback-port",
    "0",
    "--data-dir",
    `${dir.path}/peer`,
  ];
  const cases: { args: string[]; names: string[] }[] = [
    { args: ["bogus"], names: ["bogus"] },
    { args: ["--bogus"], names: ["--bogus"] },
    { args: [...tracker, "--bogus"], names: ["--bogus"] },
    { args: [...tracker, "--port", "70000"], names: ["--port", "70000"] },
    { args: [...tracker, "--port", "abc"], names: ["--port", "abc"] },
    { args: [...tracker, "--max-upload", "12XB"], names: ["--max-upload", "12XB"] },
    { args: [...tracker, "--peer-ttl", "-1"], names: ["--peer-ttl", "-1"] },
    // Checked before any peer is contacted or any address scanned.
    { args: ["discover", "10.0.0.0/8", "--node", "http://127.0.0.1:1"], names: ["10.0.0.0/8"] },
    { args: ["discover", "lan", "--node", "http://127.0.0.1:1"], names: ["'lan'"] },
    { args: [...peer, "--scan", "10.1.2.3-10.1.2.1"], names: ["--scan", "10.1.2.3-10.1.2.1"] },
    { args: [...peer, "--scan-interval", "0"], names: ["--scan-interval", "0"] },
    { args: [...peer, "--pingback-port", "99999"], names: ["--pingback-port", "99999"] },
  ];
  const runs = await Promise.all(cases.map((c) => p2p(...c.args)));
  cases.forEach((c, i) => {
    const run = runs[i];
    const what = c.names.join(" ");
    assert.equal(run.code, 2, `${what}: exit status (stderr ${JSON.stringify(run.stderr)})`);
    for (const name of c.names) assertOneLineError(run, name, what);
    assert.equal(run.stdout, "", `${what}: nothing on stdout`);
  });
});

Deno.test("p2p tracker on a port in use exits 1 with one line saying so", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const run = await p2p(
    "tracker",
    "--host",
    "127.0.0.1",
    "--port",
    String(taken.addr.port),
    "--db",
    `${dir.path}/tracker.kv`,
    "--log",
    `${dir.path}/activity.jsonl`,
  );
  assert.equal(run.code, 1, `exit status (stderr ${JSON.stringify(run.stderr)})`);
  assertOneLineError(run, "in use", "a port in use");
  assertOneLineError(run, String(taken.addr.port), "a port in use");
  assert.doesNotMatch(run.stdout, /listening/);
});
