import assert from "node:assert/strict";
import { browserUrl, startupLines, trackerWatch } from "./startup.ts";

Deno.test("browserUrl() names this machine when the peer listens on every address", () => {
  assert.equal(browserUrl("http://127.0.0.1:5805", "0.0.0.0", "laptop"), "http://laptop:5805/");
  assert.equal(
    browserUrl("http://127.0.0.2:5805", "127.0.0.2", "laptop"),
    "http://127.0.0.2:5805/",
  );
});

Deno.test("startupLines() keep the listening line first and say what to open", () => {
  const lines = startupLines({
    peerId: "ab".repeat(20),
    name: "alice",
    host: "127.0.0.2",
    chunkPort: 5801,
    httpUrl: "http://127.0.0.2:5805",
    dataDir: "/d",
    loginUrl: "http://127.0.0.2:5805/_p2p/login?once=x",
    membership: "network: OPEN",
  });
  assert.equal(
    lines[0],
    `p2p peer ${"ab".repeat(20)} "alice" listening: chunks tcp://127.0.0.2:5801, ` +
      "http http://127.0.0.2:5805 (data /d)",
  );
  assert.equal(
    lines[1],
    "p2p peer: open http://127.0.0.2:5805/ in a browser to share and get files",
  );
  assert.match(lines[4], /^p2p peer: no tracker/);
});

Deno.test("startupLines() name the TLS link port last among the ports, when there is one", () => {
  const [first] = startupLines({
    peerId: "ab".repeat(20),
    name: "alice",
    host: "127.0.0.2",
    chunkPort: 5801,
    linkTlsPort: 5802,
    httpUrl: "http://127.0.0.2:5805",
    pingbackPort: 5800,
    dataDir: "/d",
    loginUrl: "http://127.0.0.2:5805/_p2p/login?once=x",
    membership: "network: OPEN",
  });
  assert.equal(
    first,
    `p2p peer ${"ab".repeat(20)} "alice" listening: chunks tcp://127.0.0.2:5801, ` +
      "http http://127.0.0.2:5805, pingback 5800, tls links 5802 (data /d)",
  );
});

Deno.test("trackerWatch() prints the first contact, one line per outage, and the return", () => {
  const out: string[] = [];
  const watch = trackerWatch((l) => out.push(l));
  const rec = (type: string, more: Record<string, unknown> = {}) =>
    watch({ id: 1, ts: "", type, url: "http://t", ...more });
  rec("tracker.error", { message: "TypeError: fetch failed" });
  rec("tracker.register");
  rec("tracker.error", { during: "announce", message: "x" });
  rec("tracker.error", { message: "refused" });
  rec("tracker.error", { message: "refused" });
  rec("tracker.register");
  assert.deepEqual(out, [
    "p2p peer: cannot reach the tracker http://t yet: Fetch failed; retrying",
    "p2p peer: registered with the tracker http://t",
    "p2p peer: lost the tracker http://t: Refused; retrying",
    "p2p peer: the tracker http://t is back",
  ]);
});
