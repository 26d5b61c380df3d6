/**
 * Smoke tests of the `p2p` command line as a child process: help, version, bad
 * arguments (exit 2, one line, no stack trace), failures at run time (exit 1), and
 * the client commands finding a running peer's control token with no flags.
 *
 * @module
 */
import assert from "node:assert/strict";
import { REPO_ROOT, stopGracefully, tempDir } from "./_tracker_process.ts";
import { spawnPeer } from "./_peer_process.ts";
import { VERSION } from "../version.ts";

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main.ts` with `args` to its end (killed after 15 s). */
function p2p(...args: string[]): Promise<CliRun> {
  return p2pWith({}, ...args);
}

/** Runs `main.ts` with `args` and `env` added to the environment. */
async function p2pWith(env: Record<string, string>, ...args: string[]): Promise<CliRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env },
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

Deno.test("client commands find the token of a peer this user runs, whatever its --data-dir; a missing or wrong token is one clear line", async () => {
  await using dir = await tempDir();
  // A p2p folder of the test's own (P2P_HOME), so that other tests' peers and client
  // commands never touch this registry; and a data directory outside it, which the
  // registry finds all the same.
  const home = { P2P_HOME: `${dir.path}/home` };
  await using peer = await spawnPeer({
    dataDir: `${dir.path}/elsewhere/a`,
    host: "127.0.0.2",
    env: home,
  });
  const node = ["--node", peer.http];
  const p2p = (...args: string[]) => p2pWith(home, ...args);
  const status = await p2p("status", "--json", ...node);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(JSON.parse(status.stdout).peerId, peer.peerId);
  const peers = await p2p("peers", "--json", ...node);
  assert.equal(peers.code, 0, peers.stderr);
  assert.deepEqual(JSON.parse(peers.stdout), []);
  const log = await p2p("log", "--limit", "1", "--json", ...node);
  assert.equal(log.code, 0, log.stderr);
  // A new one-time link for the web app, when the printed one is gone.
  const login = await p2p("login", ...node);
  assert.equal(login.code, 0, login.stderr);
  const link = login.stdout.trim();
  assert.ok(link.startsWith(`${peer.http}/_p2p/login?once=`), link);
  const opened = await fetch(link, { redirect: "manual" });
  await opened.body?.cancel();
  assert.equal(opened.status, 303);
  assert.match(opened.headers.get("set-cookie") ?? "", /^p2p_token=/);
  // --token and P2P_TOKEN win over the registry: the right one works.
  const given = await p2pWith(
    { P2P_HOME: `${dir.path}/nobody` },
    "status",
    ...node,
    "--token",
    peer.token,
  );
  assert.equal(given.code, 0, given.stderr);
  const env = await p2pWith(
    { P2P_HOME: `${dir.path}/nobody`, P2P_TOKEN: peer.token },
    "status",
    ...node,
  );
  assert.equal(env.code, 0, env.stderr);

  // No peer of this user's at that URL, no flag: one line that says what to do.
  const none = await p2pWith({ P2P_HOME: `${dir.path}/nobody` }, "status", ...node);
  assert.equal(none.code, 1);
  assertOneLineError(
    none,
    `no token for the peer at ${peer.http}: start it as this user, or pass --token / P2P_TOKEN`
      .replace(/^n/, "N"),
    "no token",
  );
  assert.equal(none.stdout, "");
  // A wrong token: one line naming where it came from.
  const wrong = await p2p("status", ...node, "--token", "not-the-token");
  assert.equal(wrong.code, 1);
  assertOneLineError(wrong, `The peer at ${peer.http} refused the token from --token`, "--token");
  const wrongEnv = await p2pWith({ ...home, P2P_TOKEN: "nope" }, "put", "-", ...node);
  assert.equal(wrongEnv.code, 1);
  assertOneLineError(wrongEnv, "refused the token from P2P_TOKEN", "P2P_TOKEN");
  // Each refusal is in the peer's activity log.
  const refused = await p2p("log", "--type", "control.refused", "--json", ...node);
  const records = refused.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(records.length >= 3, refused.stdout);
  assert.ok(records.every((r) => r.status === 401 && r.code === "unauthorized"));
});

Deno.test("a peer prints a one-time login link, lists itself in the registry while it runs, and leaves it when stopped", async () => {
  await using dir = await tempDir();
  // The registry under a P2P_HOME of the test's own, which no other test touches.
  const home = `${dir.path}/home`;
  await using peer = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    env: { P2P_HOME: home },
  });
  const entry = `${home}/running/${peer.peerId}.json`;
  const listed = JSON.parse(await Deno.readTextFile(entry));
  assert.equal(listed.pid, peer.child.pid);
  // Its URL first, then one per name it answers to (the host name, say).
  assert.equal(listed.urls[0], peer.http);
  assert.ok(
    listed.urls.includes(`http://${Deno.hostname().toLowerCase()}:${new URL(peer.http).port}`),
  );
  assert.equal(listed.tokenFile, `${peer.dataDir}/control.token`);
  assert.equal((await Deno.stat(entry)).mode! & 0o777, 0o600);
  const exit = await stopGracefully(peer);
  assert.ok(
    exit.success,
    `exit ${exit.code} (${exit.signal ?? "no signal"}); stdout ${JSON.stringify(peer.stdout())}; ` +
      `stderr ${JSON.stringify(peer.stderr())}`,
  );
  await assert.rejects(Deno.stat(entry), Deno.errors.NotFound);
  const link = /^p2p peer: log in to the web app: (\S+) \(works once, for 10 minutes\)$/m
    .exec(peer.stdout())?.[1];
  assert.ok(link?.startsWith(`${peer.http}/_p2p/login?once=`), peer.stdout());
});
