import assert from "node:assert/strict";
import { ChunkStore } from "../chunk_store.ts";
import { indexDirOf, provideSearch, searchOf, startSearch } from "./registry.ts";

Deno.test("startSearch() opens the index in the background, and closed() waits for the save at stop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-registry-" });
  const store = await ChunkStore.open(`${dir}/store`);
  const abort = new AbortController();
  try {
    const search = provideSearch(store, abort.signal, () => Promise.reject(new Error("unused")));
    assert.equal(searchOf(store), search);
    const opened = Promise.withResolvers<Record<string, unknown>>();
    const log = {
      record: (type: string, fields?: Record<string, unknown>) =>
        type === "search.open" ? opened.resolve(fields ?? {}) : opened.reject(fields),
    };
    const closed = startSearch(store, log);
    assert.deepEqual({ ...await opened.promise, ms: 0 }, { documents: 0, rebuilt: true, ms: 0 });
    const text = new TextEncoder().encode("A note about lighthouses.");
    const { payloadId } = await store.importStream(ReadableStream.from([text]), {
      name: "note.txt",
    });
    // The stop: no search has run, the save timer has not fired; the close saves.
    abort.abort(new Error("stopping"));
    await closed();
    const saved = JSON.parse(await Deno.readTextFile(`${indexDirOf(store.dir)}/index.json`));
    assert.deepEqual(Object.values(saved.index.documentIds), [payloadId]);
  } finally {
    abort.abort();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startSearch() of a store with no search registered does nothing", async () => {
  const closed = startSearch({}, { record: () => assert.fail("nothing to log") });
  await closed();
});
