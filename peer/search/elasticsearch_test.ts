import assert from "node:assert/strict";
import {
  bulkBody,
  ElasticsearchIndex,
  hitsOf,
  mappingBody,
  searchBody,
  snippetOfHighlight,
} from "./elasticsearch.ts";
import { parseSearchQuery } from "../../proto/search_query.ts";

const ID = "a".repeat(64);
const DOC = {
  payloadId: ID,
  name: "cats.txt",
  type: "text/plain",
  tags: ["pets"],
  size: 3,
  text: "cat",
};

Deno.test("bulkBody() is the documented _bulk NDJSON: an action line, then the source, each ending in a newline", () => {
  const body = bulkBody("p2p", [DOC], ["b".repeat(64)]);
  assert.ok(body.endsWith("\n"));
  const lines = body.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines, [
    { index: { _index: "p2p", _id: ID } },
    { name: "cats.txt", type: "text/plain", tags: ["pets"], size: 3, text: "cat" },
    { delete: { _index: "p2p", _id: "b".repeat(64) } },
  ]);
  assert.deepEqual(
    Object.keys((mappingBody().mappings as { properties: object }).properties).sort(),
    [
      "name",
      "size",
      "tags",
      "text",
      "type",
    ],
  );
});

Deno.test("searchBody() turns alternatives into bool should of must/must_not with multi_match, term and prefix", () => {
  const body = searchBody(
    parseSearchQuery('big "red cat" conf* -dog tag:pets type:text OR name:report'),
    5,
  );
  assert.equal(body.size, 5);
  const fields = ["name^2", "tags^2", "text"];
  assert.deepEqual(body.query, {
    bool: {
      minimum_should_match: 1,
      should: [
        {
          bool: {
            must: [
              { multi_match: { query: "big", fields, fuzziness: "AUTO" } },
              { multi_match: { query: "red cat", type: "phrase", fields } },
              { multi_match: { query: "conf", type: "phrase_prefix", fields } },
              { term: { tags: "pets" } },
              { prefix: { type: "text" } },
            ],
            must_not: [{ multi_match: { query: "dog", fields, fuzziness: "AUTO" } }],
          },
        },
        {
          bool: {
            must: [{ multi_match: { query: "report", fields: ["name"], fuzziness: "AUTO" } }],
            must_not: [],
          },
        },
      ],
    },
  });
  assert.deepEqual((body.highlight as { pre_tags: string[] }).pre_tags, ["<em>"]);
});

Deno.test("hitsOf() reads a _search answer: scores over max_score, highlights as marked snippets", () => {
  const hits = hitsOf({
    hits: {
      max_score: 4,
      hits: [
        { _id: ID, _score: 4, _source: DOC, highlight: { text: ["the <em>cat</em> sat"] } },
        { _id: "c".repeat(64), _score: 1, _source: { type: "image/png", tags: [], size: 9 } },
      ],
    },
  });
  assert.deepEqual(hits.map((h) => h.score), [1, 0.25]);
  assert.deepEqual(hits[0].snippet, [{ text: "the " }, { text: "cat", mark: true }, {
    text: " sat",
  }]);
  assert.deepEqual(snippetOfHighlight("<em>a</em>"), [{ text: "a", mark: true }]);
  assert.throws(() => hitsOf({ error: "x" }), /no hits.hits/);
});

Deno.test("ElasticsearchIndex sends its bodies to the documented paths", async () => {
  const sent: { url: string; method?: string; type?: string; body: string }[] = [];
  const fake = ((url: string | URL | Request, init?: RequestInit) => {
    sent.push({
      url: String(url),
      method: init?.method,
      type: (init?.headers as Record<string, string>)["content-type"],
      body: String(init?.body),
    });
    return Promise.resolve(new Response(JSON.stringify({ hits: { max_score: 1, hits: [] } })));
  }) as typeof fetch;
  const es = new ElasticsearchIndex("http://198.51.100.7:9200/", "p2p", fake);
  await es.create();
  await es.bulk([DOC]);
  assert.deepEqual(await es.search(parseSearchQuery("cat"), 3), []);
  assert.deepEqual(sent.map((s) => [s.method, s.url, s.type]), [
    ["PUT", "http://198.51.100.7:9200/p2p", "application/json"],
    ["POST", "http://198.51.100.7:9200/_bulk", "application/x-ndjson"],
    ["POST", "http://198.51.100.7:9200/p2p/_search", "application/json"],
  ]);
  const failing = new ElasticsearchIndex(
    "http://198.51.100.7:9200",
    "p2p",
    (() => Promise.resolve(new Response("nope", { status: 500 }))) as typeof fetch,
  );
  await assert.rejects(() => failing.create(), /answered 500 to PUT \/p2p: nope/);
});
