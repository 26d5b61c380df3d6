/**
 * The client commands' and the peer's words as a child process shows them: a busy
 * port named with its option, Ctrl-C on a peer answered once, readable status and log
 * lines (short ids, ports in words, the store's disk use, a note at the log's limit).
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnTracker, tempDir } from "./_tracker_process.ts";
import { followLog, spawnPeer } from "./_peer_process.ts";
import { runCli } from "./_cli_run.ts";

Deno.test("p2p peer on a busy --http-port exits 1 with one line naming that port and option", async () => {
  await using dir = await tempDir();
  using taken = Deno.listen({ hostname: "127.0.0.2", port: 0 });
  const port = taken.addr.port;
  const run = await runCli([
    "peer",
    ...["--host", "127.0.0.2", "--port", "0", "--pingback-port", "0", "--app-port", "0"],
    ...["--http-port", String(port), "--data-dir", `${dir.path}/peer`],
  ], { cwd: dir.path, env: { P2P_HOME: `${dir.path}/home` } });
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(
    lines[0],
    new RegExp(
      `^p2p: Cannot listen on 127\\.0\\.0\\.2: port ${port} \\(--http-port\\) is in use; `,
    ),
  );
});

Deno.test("status and log print ports in words, the store's disk use and short ids, log notes its limit, and a peer says 'stopping' once", async () => {
  await using dir = await tempDir();
  const home = { P2P_HOME: `${dir.path}/home` };
  const peer = await spawnPeer({ dataDir: `${dir.path}/peer`, host: "127.0.0.2", env: home });
  try {
    const cli = (...args: string[]) => runCli(args, { cwd: dir.path, peer, env: home });
    const status = await cli("status");
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      new RegExp(`^peer      ${peer.peerId.slice(0, 12)} \\(test\\)`, "m"),
    );
    assert.match(
      status.stdout,
      /^ports {5}chunk \d+, pingback \d+, http \d+, app \d+, tls \d+ on 127\.0\.0\.2$/m,
    );
    assert.match(status.stdout, /^store {5}0 B on disk, room for [\d.]+ [KMGT]?i?B more$/m);
    const log = await cli("log", "--limit", "1");
    assert.equal(log.code, 0, log.stderr);
    assert.match(log.stdout, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [a-z.]+\s/);
    assert.doesNotMatch(log.stdout, /[0-9a-f]{13}/, "ids in their short form");
    assert.match(log.stderr, /^\(the newest record; --limit takes up to 1000/);
    // A loopback address nothing listens on: no device, and the words say why.
    const none = await cli("discover", "127.0.0.9");
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /^0 peers identified among 0 devices of 127\.0\.0\.9-127\.0\.0\.9 /m);
    assert.match(
      none.stdout,
      /^No device of 127\.0\.0\.9-127\.0\.0\.9 answered the ARP sweep, so none was asked: only devices that answer it are probed/m,
    );
  } finally {
    const exit = await peer.stop("SIGINT");
    assert.equal(exit.stdout.match(/stopping/g)?.length, 1, exit.stdout);
  }
});

Deno.test("a peer's start-up block says what to open and confirms the tracker, then says when it is lost and back", async () => {
  await using dir = await tempDir();
  // A short TTL: the peer beats every second, so a lost tracker is seen at once.
  const ttl = ["--peer-ttl", "3"];
  let tracker = await spawnTracker({ dir: `${dir.path}/tracker`, args: ttl });
  try {
    const peer = await spawnPeer({
      dataDir: `${dir.path}/peer`,
      host: "127.0.0.2",
      tracker: tracker.url,
      env: { P2P_HOME: `${dir.path}/home` },
    });
    let out: string;
    try {
      await using log = await followLog(peer, { type: "tracker" });
      const registered = (r: { type: string }) => r.type === "tracker.register";
      await log.waitFor(registered, "the first registration");
      await tracker.stop();
      const lost = await log.waitFor((r) => r.type === "tracker.error", "the tracker to be lost");
      tracker = await spawnTracker({
        dir: `${dir.path}/tracker`,
        args: [...ttl, "--port", String(tracker.port)],
      });
      await log.waitFor(
        (r) => registered(r) && r.id > lost.id,
        "the tracker to be back",
      );
    } finally {
      out = (await peer.stop("SIGTERM")).stdout;
    }
    const lines = out.split("\n");
    assert.match(lines[0], new RegExp(`^p2p peer ${peer.peerId} "test" listening: chunks tcp://`));
    assert.equal(lines[1], `p2p peer: open ${peer.http}/ in a browser to share and get files`);
    assert.match(lines[2], /^p2p peer: log in to the web app: /);
    assert.equal(lines[4], `p2p peer: tracker ${tracker.url}: registering…`);
    const events = lines.filter((l) => / the tracker /.test(l));
    assert.equal(events[0], `p2p peer: registered with the tracker ${tracker.url}`);
    assert.match(
      events[1],
      new RegExp(`^p2p peer: lost the tracker ${tracker.url}: .+; retrying$`),
    );
    assert.equal(events[2], `p2p peer: the tracker ${tracker.url} is back`);
    assert.equal(events.length, 3, out);
  } finally {
    await tracker.stop();
  }
});
