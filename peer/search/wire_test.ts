import assert from "node:assert/strict";
import { ChunkStore } from "../chunk_store.ts";
import { createRequestHandler } from "../request_handler.ts";
import type { PeerConnection } from "../connection.ts";
import { fakeLog, memoryTable, peerIdOf } from "../_fakes.ts";
import { indexDirOf, provideSearch, searchOf } from "./registry.ts";
import { answerSearch } from "./wire.ts";
import { SearchHeader } from "../../proto/search.ts";
import { InvalidInputError } from "../../proto/errors.ts";

Deno.test("indexDirOf() puts the index beside the store's folder", () => {
  assert.equal(indexDirOf("/data/p2p/store"), "/data/p2p/search");
  assert.equal(indexDirOf("/data/p2p/store/"), "/data/p2p/search");
  assert.equal(indexDirOf("store"), "./search");
  assert.equal(indexDirOf("/store"), "/search");
});

Deno.test("the request handler answers SEARCH_REQ from the index registered for its store", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-wire-" });
  const store = await ChunkStore.open(`${dir}/store`);
  await using table = await memoryTable();
  const abort = new AbortController();
  try {
    const text = (i: number) => `Report ${i}: ${"harbour ".repeat(40)}${"x".repeat(300)} harbour`;
    for (let i = 0; i < 50; i++) {
      const bytes = new TextEncoder().encode(text(i));
      await store.importStream(ReadableStream.from([bytes]), { name: `r${i}.txt` });
    }
    const log = fakeLog();
    const handler = createRequestHandler({ store, table, log, signal: abort.signal });
    const conn = { remote: { peerId: peerIdOf("asker") } } as PeerConnection;
    const ask = (q: string) =>
      handler({
        type: "SEARCH_REQ",
        requestId: 1,
        header: { q, limit: 50 },
        body: new Uint8Array(),
      }, conn);
    // No search registered for this store yet: unsupported.
    await assert.rejects(() => Promise.resolve(ask("harbour")), /no search index/);
    provideSearch(store, abort.signal, () => Promise.reject(new Error("not used")));
    assert.ok(searchOf(store));
    const answer = await ask("harbour");
    assert.equal(answer?.type, "SEARCH");
    const hits = SearchHeader.parse(answer?.header).hits;
    assert.ok(hits.length > 0 && hits.length <= 50);
    assert.ok(new TextEncoder().encode(JSON.stringify(answer?.header)).length <= 60_000);
    await assert.rejects(() => Promise.resolve(ask('"open')), InvalidInputError);
    const index = await searchOf(store)!.index();
    const few = await answerSearch(index, { q: "report", limit: 3 });
    assert.equal(few.header.hits.length, 3);
  } finally {
    // The index closes (and saves) when the signal aborts; wait for that write.
    const index = await searchOf(store)?.index().catch(() => undefined);
    abort.abort();
    await index?.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
