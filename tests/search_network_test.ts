/**
 * Search across five peer processes on 127.0.0.2-.6, each holding different documents
 * and three of them one same document; one killed before the query.
 * The query goes from one peer to the others over their links (SEARCH_REQ, SEARCH).
 */
import assert from "node:assert/strict";
import { followLog, p2pClient, peerAddress, type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { SearchAnswer } from "../proto/search.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function put(peer: PeerProcess, name: string, text: string): Promise<string> {
  const r = await p2pClient(
    ["put", "-", "--name", name, "--node", peer.http, "--token", peer.token],
    enc(text),
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n")[0];
}

async function search(peer: PeerProcess, q: string): Promise<SearchAnswer> {
  const res = await fetch(`${peer.http}/_p2p/search?${new URLSearchParams({ q })}`, {
    headers: peer.auth,
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return SearchAnswer.parse(body);
}

Deno.test({
  name: "search across five peers: one hit per document with its holders, a killed peer named",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "p2p-search-net-" });
    try {
      await using stack = new AsyncDisposableStack();
      const others: PeerProcess[] = [];
      for (const [i, name] of ["bravo", "charlie", "delta", "echo"].entries()) {
        others.push(stack.use(
          await spawnPeer({ dataDir: `${dir}/${name}`, host: `127.0.0.${i + 3}`, name }),
        ));
      }
      const [b, c, d, e] = others;
      await put(b, "bravo.txt", "Bravo writes about lighthouses and the sea.");
      await put(c, "charlie.md", "# Charlie\nNotes on mountain lighthouses.");
      await put(d, "delta.csv", "city,lighthouse\nBrest,yes\n");
      await put(e, "echo.txt", "Echo keeps the only copy of the zeppelin manual.");
      const shared = "The shared handbook of the network, kept by three peers.";
      const ids = await Promise.all([b, c, d].map((p) => put(p, "handbook.txt", shared)));
      assert.equal(new Set(ids).size, 1);
      const a = stack.use(
        await spawnPeer({
          dataDir: `${dir}/alpha`,
          host: "127.0.0.2",
          name: "alpha",
          seeds: others.map(peerAddress),
        }),
      );
      await put(a, "alpha.txt", "Alpha has a lighthouse keeper's diary.");
      await using log = await followLog(a);
      for (const p of others) {
        await log.waitFor(
          (r) => r.type === "exchange" && r.with === p.peerId,
          `${p.peerId} proven`,
        );
      }
      await e.kill();

      const all = await search(a, "lighthouse*");
      assert.equal(all.asked, 4);
      assert.deepEqual(all.hits.map((h) => h.name).sort(), [
        "alpha.txt",
        "bravo.txt",
        "charlie.md",
        "delta.csv",
      ]);
      assert.deepEqual(all.missing.map((m) => m.peerId), [e.peerId]);
      assert.ok(all.missing[0].message.length > 0);

      const hand = await search(a, "handbook");
      assert.equal(hand.hits.length, 1);
      assert.equal(hand.hits[0].payloadId, ids[0]);
      assert.deepEqual(hand.hits[0].holders.map((h) => h.name).sort(), [
        "bravo",
        "charlie",
        "delta",
      ]);
      assert.deepEqual(hand.hits[0].snippet.filter((p) => p.mark).map((p) => p.text), ["handbook"]);

      const gone = await search(a, "zeppelin");
      assert.deepEqual(gone.hits, []);
      assert.deepEqual(gone.missing.map((m) => m.name), ["echo"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
