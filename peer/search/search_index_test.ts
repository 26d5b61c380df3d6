import assert from "node:assert/strict";
import { ChunkStore } from "../chunk_store.ts";
import { SearchIndex } from "./search_index.ts";
import { ElasticsearchIndex } from "./elasticsearch.ts";
import { InvalidInputError } from "../../proto/errors.ts";

const DOCS: Record<string, string> = {
  "cats.txt": "The big cat sat on the mat. Cats are curious animals.",
  "dogs.md": "# Dogs\n\nA dog is a loyal friend; the big dog barks at the cat.",
  "recipe.html":
    "<html><head><style>p{color:red}</style></head><body><p>Crème brûlée: a dessert.</p></body></html>",
  "tokyo.txt": "東京タワーは東京の観光名所です。",
  "data.json": '{"conference": "configuration management", "year": 2026}',
  "table.csv": "name,city\nAda,London\nGrace,Arlington\n",
};

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-" });
  const store = await ChunkStore.open(`${dir}/store`);
  const ids: Record<string, string> = {};
  for (const [name, text] of Object.entries(DOCS)) {
    const bytes = new TextEncoder().encode(text);
    ids[name] =
      (await store.importStream(ReadableStream.from([bytes]), { name, pinned: true })).payloadId;
  }
  const binary = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]);
  ids["photo.png"] =
    (await store.importStream(ReadableStream.from([binary]), { name: "holiday photo.png" }))
      .payloadId;
  return { dir, store, ids };
}

async function names(index: SearchIndex, q: string): Promise<string[]> {
  return (await index.search(q)).map((h) => h.name ?? "").sort();
}

Deno.test("SearchIndex.search() answers words, OR, exclusions, phrases, prefixes, typos and fields", async () => {
  const { dir, store, ids } = await setup();
  const index = await SearchIndex.open(`${dir}/search`, store);
  try {
    assert.equal(index.size, 7);
    assert.deepEqual(await names(index, "big cat"), ["cats.txt", "dogs.md"]);
    assert.deepEqual(await names(index, "curious OR loyal"), ["cats.txt", "dogs.md"]);
    assert.deepEqual(await names(index, "big -dog"), ["cats.txt"]);
    assert.deepEqual(await names(index, '"big cat"'), ["cats.txt"]);
    assert.deepEqual(await names(index, '"cat big"'), []);
    assert.deepEqual(await names(index, "confer*"), ["data.json"]);
    assert.deepEqual(await names(index, "curioes"), ["cats.txt"]);
    assert.deepEqual(await names(index, "configuratoin"), ["data.json"]);
    assert.deepEqual(await names(index, "name:dogs"), ["dogs.md"]);
    assert.deepEqual(await names(index, "type:text/csv"), ["table.csv"]);
    assert.deepEqual(await names(index, "type:image"), ["holiday photo.png"]);
    assert.deepEqual(await names(index, "holiday"), ["holiday photo.png"]);
    assert.deepEqual(await names(index, "london type:text"), ["table.csv"]);
    // Accents folded both ways; HTML text without its tags and styles.
    assert.deepEqual(await names(index, "creme BRULEE"), ["recipe.html"]);
    assert.deepEqual(await names(index, "crème"), ["recipe.html"]);
    assert.deepEqual(await names(index, "color"), []);
    // CJK: characters in order.
    assert.deepEqual(await names(index, "東京"), ["tokyo.txt"]);
    assert.deepEqual(await names(index, "京東"), []);
    const [hit] = await index.search("curious");
    assert.equal(hit.payloadId, ids["cats.txt"]);
    assert.equal(hit.type, "text/plain");
    assert.equal(hit.score, 1);
    assert.deepEqual(hit.snippet.filter((p) => p.mark).map((p) => p.text), ["curious"]);
    await assert.rejects(() => index.search('"open'), InvalidInputError);
  } finally {
    await index.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SearchIndex keeps tags across a rebuild, and a rebuilt index answers the same", async () => {
  const { dir, store, ids } = await setup();
  const queries = ["big cat", "tag:pets", "東京", "creme", "type:image", "dog OR json"];
  let before: unknown[];
  {
    const index = await SearchIndex.open(`${dir}/search`, store);
    assert.equal(index.rebuilt, true);
    await index.setMeta(ids["cats.txt"], { tags: ["Pets", "animals"] });
    await index.setMeta(ids["dogs.md"], { tags: ["pets"] });
    assert.deepEqual(await names(index, "tag:pets"), ["cats.txt", "dogs.md"]);
    before = await Promise.all(queries.map((q) => index.search(q)));
    await index.close();
  }
  {
    const index = await SearchIndex.open(`${dir}/search`, store);
    assert.equal(index.rebuilt, false);
    assert.deepEqual(await Promise.all(queries.map((q) => index.search(q))), before);
    await index.close();
  }
  await Deno.remove(`${dir}/search/index.json`);
  {
    const index = await SearchIndex.open(`${dir}/search`, store);
    assert.equal(index.rebuilt, true);
    assert.deepEqual(await Promise.all(queries.map((q) => index.search(q))), before);
    await index.close();
  }
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SearchIndex follows the store: a payload removed is gone, one added is found", async () => {
  const { dir, store, ids } = await setup();
  const index = await SearchIndex.open(`${dir}/search`, store);
  index.watch();
  try {
    await store.remove(ids["cats.txt"]);
    assert.deepEqual(await names(index, "cat"), ["dogs.md"]);
    const bytes = new TextEncoder().encode("A zebra crossing.");
    await store.importStream(ReadableStream.from([bytes]), { name: "zebra.txt" });
    assert.deepEqual(await names(index, "zebra"), ["zebra.txt"]);
  } finally {
    await index.close();
    store.close();
  }
  // A fingerprint that does not match (a payload gone while stopped): rebuilt.
  const again = await ChunkStore.open(`${dir}/store`);
  await again.remove(ids["dogs.md"]);
  const index2 = await SearchIndex.open(`${dir}/search`, again);
  assert.equal(index2.rebuilt, true);
  assert.deepEqual(await names(index2, "dog"), []);
  await index2.close();
  again.close();
  await Deno.remove(dir, { recursive: true });
});

/**
 * A stand-in for an Elasticsearch server on loopback: keeps the documents of `_bulk`
 * requests and answers every `_search` with all of them (so an answer shows that it
 * came from here, not from the embedded index).
 */
function stubElasticsearch() {
  const docs = new Map<string, Record<string, unknown>>();
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    requests.push(`${req.method} ${path}`);
    const body = await req.text();
    if (path === "/_bulk") {
      const lines = body.split("\n").filter((l) => l).map((l) => JSON.parse(l));
      for (let i = 0; i < lines.length; i++) {
        if (lines[i].index) docs.set(lines[i].index._id, lines[++i]);
        else docs.delete(lines[i].delete._id);
      }
      return Response.json({ errors: false, items: [] });
    }
    if (path === "/p2p/_search") {
      const hits = [...docs].map(([id, d]) => ({ _id: id, _score: 1, _source: d }));
      return Response.json({ hits: { max_score: 1, hits } });
    }
    return Response.json({ acknowledged: true });
  });
  return { docs, requests, url: `http://127.0.0.1:${server.addr.port}`, server };
}

Deno.test("SearchIndex with a remote index sends what it holds and drops, and the remote answers", async () => {
  const { dir, store, ids } = await setup();
  const es = stubElasticsearch();
  const remote = new ElasticsearchIndex(es.url);
  const index = await SearchIndex.open(`${dir}/search`, store, undefined, remote);
  index.watch();
  try {
    assert.equal(es.requests[0], "PUT /p2p");
    assert.equal(index.rebuilt, true);
    // Words the embedded index would not match: the answer is the remote's.
    const hits = await index.search("nothing-here-at-all");
    assert.equal(hits.length, 7);
    assert.equal(es.docs.get(ids["cats.txt"])?.name, "cats.txt");
    assert.match(String(es.docs.get(ids["cats.txt"])?.text), /curious animals/);
    await store.remove(ids["cats.txt"]);
    assert.equal((await index.search("x")).length, 6);
    assert.equal(es.docs.has(ids["cats.txt"]), false);
    assert.equal(index.remoteError, undefined);
  } finally {
    await index.close();
    store.close();
    await es.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
