/**
 * `p2p rm` and the tracker, across processes: a tracker, one peer registered with it,
 * a payload put there; once the peer removes its copy, the tracker no longer lists it
 * as a holder, and a new put of the same bytes lists it again.
 */
import assert from "node:assert/strict";
import { spawnTracker, tempDir } from "./_tracker_process.ts";
import { followLog, p2pClient, spawnPeer } from "./_peer_process.ts";
import { HolderList } from "../proto/tracker.ts";

Deno.test("p2p rm tells the tracker, which stops listing the peer as a holder; a new put lists it again", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    tracker: tracker.url,
  });
  await using aLog = await followLog(a);
  await aLog.waitFor((r) => r.type === "tracker.register", "a to register");
  const file = `${dir.path}/notes.txt`;
  await Deno.writeTextFile(file, "notes to share, then to take back\n");
  const node = ["--node", a.http, "--token", a.token];

  const put = await p2pClient(["put", file, ...node]);
  assert.equal(put.code, 0, put.stderr);
  const id = put.stdout.trim();
  await aLog.waitFor(
    (r) => r.type === "tracker.announce" && r.payloadId === id,
    "a to announce the payload",
  );
  const holders = async () =>
    HolderList.parse(await (await fetch(`${tracker.url}/payloads/${id}/peers`)).json())
      .peers.map((h) => h.peerId);
  assert.deepEqual(await holders(), [a.peerId]);

  // The only copy: rm needs --force.
  const rm = await p2pClient(["rm", id.slice(0, 8), "--force", ...node]);
  assert.equal(rm.code, 0, rm.stderr);
  const withdrawn = await aLog.waitFor(
    (r) => r.type === "tracker.withdraw" && r.payloadId === id,
    "a to withdraw the payload from the tracker",
  );
  assert.deepEqual(await holders(), [], "no longer listed as a holder");

  const again = await p2pClient(["put", file, ...node]);
  assert.equal(again.code, 0, again.stderr);
  await aLog.waitFor(
    (r) => r.type === "tracker.announce" && r.payloadId === id && r.id > withdrawn.id,
    "a to announce the payload again",
  );
  assert.deepEqual(await holders(), [a.peerId], "listed again");
});
