/**
 * The search index's life in a peer process: opened at start in the background
 * (`search.open` in the activity log), saved when the peer stops on SIGTERM, and
 * loaded, not rebuilt, at the next start.
 */
import assert from "node:assert/strict";
import { followLog, p2pClient, spawnPeer } from "./_peer_process.ts";
import { stopGracefully } from "./_tracker_process.ts";
import { SearchAnswer } from "../proto/search.ts";

Deno.test("a peer opens its index at start, saves it at SIGTERM and loads it at restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-life-" });
  try {
    const dataDir = `${dir}/a`;
    // The activity log is kept across restarts: a start's record comes after `since`.
    const opened = async (peer: Awaited<ReturnType<typeof spawnPeer>>, since = 0) => {
      await using log = await followLog(peer, { type: "search" });
      return await log.waitFor((r) => r.type === "search.open" && r.id > since, "the index");
    };
    let first;
    {
      await using peer = await spawnPeer({ dataDir, host: "127.0.0.2" });
      // Opened at start, before any search: an empty store, no file yet.
      first = await opened(peer);
      assert.equal(first.rebuilt, true);
      assert.equal(first.documents, 0);
      const put = await p2pClient(
        ["put", "-", "--name", "minutes.md", "--node", peer.http, "--token", peer.token],
        new TextEncoder().encode("# Minutes\nThe aquarium budget was approved."),
      );
      assert.equal(put.code, 0, put.stderr);
      // Stopped at once: the index of the payload just put is saved by the stop.
      const status = await stopGracefully(peer);
      assert.equal(status.code, 0);
    }
    const saved = JSON.parse(await Deno.readTextFile(`${dataDir}/search/index.json`));
    assert.equal(saved.index.documentCount, 1);

    await using again = await spawnPeer({ dataDir, host: "127.0.0.2" });
    const second = await opened(again, first.id);
    assert.equal(second.rebuilt, false, "the saved index was loaded");
    assert.equal(second.documents, 1);
    const res = await fetch(`${again.http}/_p2p/search?q=aquarium`, { headers: again.auth });
    assert.equal(res.status, 200);
    const answer = SearchAnswer.parse(await res.json());
    assert.deepEqual(answer.hits.map((h) => h.name), ["minutes.md"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
