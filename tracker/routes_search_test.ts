import assert from "node:assert/strict";
import { testTracker } from "./_test_setup.ts";
import { SearchAnswer } from "../proto/search.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { parseSearchQuery } from "../proto/search_query.ts";
import { scoreName, typeOfName } from "./routes_search.ts";

Deno.test("scoreName() matches words, prefixes, phrases, exclusions and type: against a name", () => {
  const s = (q: string, name: string) => scoreName(parseSearchQuery(q), name, typeOfName(name));
  assert.equal(s("budget", "Budget 2026.csv"), 1 / 3);
  assert.ok(s("budg*", "Budget 2026.csv") > 0);
  assert.ok(s('"budget 2026"', "Budget 2026.csv") > 0);
  assert.equal(s('"2026 budget"', "Budget 2026.csv"), 0);
  assert.equal(s("budget -2026", "Budget 2026.csv"), 0);
  assert.ok(s("type:text/csv", "Budget 2026.csv") > 0);
  assert.equal(s("tag:money", "Budget 2026.csv"), 0);
  assert.equal(s("tag:budget", "Budget 2026.csv"), 0);
  assert.ok(s("nothing OR budget", "Budget 2026.csv") > 0);
});

Deno.test("GET /payloads/search finds uploaded payloads by name and refuses bad queries", async () => {
  await using t = await testTracker();
  for (const [name, text] of [["minutes.md", "x"], ["budget.csv", "a,b"], ["photo.png", "p"]]) {
    const res = await t.request(`/payloads?name=${name}`, { method: "POST", body: text });
    assert.equal(res.status, 201, await res.clone().text());
    await res.body?.cancel();
  }
  const res = await t.request("/payloads/search?q=budget%20OR%20type:text/markdown");
  assert.equal(res.status, 200);
  const answer = SearchAnswer.parse(await res.json());
  assert.deepEqual(answer.hits.map((h) => h.name).sort(), ["budget.csv", "minutes.md"]);
  assert.deepEqual(answer.hits[0].holders.map((h) => h.name), ["tracker"]);
  for (const [q, code] of [["", "empty_query"], ["%22open", "unbalanced_quotes"]]) {
    const bad = await t.request(`/payloads/search?q=${q}`);
    assert.equal(bad.status, 400);
    assert.equal(ErrorBody.parse(await bad.json()).error.code, code);
  }
  const limit = await t.request("/payloads/search?q=budget&limit=0");
  assert.equal(limit.status, 400);
  await limit.body?.cancel();
});

Deno.test("scoreName() matches tag: and plain words against tags, name: only the name", () => {
  const s = (q: string, name: string, tags: string[]) =>
    scoreName(parseSearchQuery(q), name, typeOfName(name), tags);
  const tags = ["money", "q3-report"];
  assert.ok(s("tag:money", "Budget.csv", tags) > 0);
  assert.ok(s("tag:mon*", "Budget.csv", tags) > 0);
  assert.equal(s("tag:budget", "Budget.csv", tags), 0);
  assert.ok(s("money", "Budget.csv", tags) > 0);
  assert.equal(s("name:money", "Budget.csv", tags), 0);
  assert.equal(s("budget -tag:money", "Budget.csv", tags), 0);
  assert.ok(s("budget tag:money", "Budget.csv", tags) > s("budget", "Budget.csv", []) / 2);
});

Deno.test("GET /search finds payloads by the tags their uploads gave", async () => {
  await using t = await testTracker();
  for (
    const [path, text] of [["/payloads?name=a.md&tag=music&tag=jazz", "a"], [
      "/payloads?name=b.md&tag=music",
      "b",
    ], ["/payloads?name=jazz.txt", "c"]]
  ) {
    const res = await t.request(path, { method: "POST", body: text });
    assert.equal(res.status, 201, await res.clone().text());
    await res.body?.cancel();
  }
  const names = async (q: string) => {
    const res = await t.request(`/search?q=${encodeURIComponent(q)}`);
    assert.equal(res.status, 200);
    return SearchAnswer.parse(await res.json()).hits.map((h) => h.name).sort();
  };
  assert.deepEqual(await names("tag:music"), ["a.md", "b.md"]);
  assert.deepEqual(await names("tag:jazz"), ["a.md"]);
  assert.deepEqual(await names("jazz"), ["a.md", "jazz.txt"]);
  assert.deepEqual(await names("music -tag:jazz"), ["b.md"]);
  const res = await t.request("/search?q=tag:jazz");
  assert.deepEqual(SearchAnswer.parse(await res.json()).hits[0].tags, ["music", "jazz"]);
});
