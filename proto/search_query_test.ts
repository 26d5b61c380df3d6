import assert from "node:assert/strict";
import { InvalidInputError } from "./errors.ts";
import {
  MAX_QUERY_BYTES,
  parseSearchQuery,
  queryWords,
  type SearchTerm,
  searchTokens,
} from "./search_query.ts";

const terms = (q: string) =>
  parseSearchQuery(q).groups.map((g) =>
    g.map((t: SearchTerm) =>
      `${t.negate ? "-" : ""}${t.field ? t.field + ":" : ""}${t.kind}(${t.text})`
    )
  );

Deno.test("parseSearchQuery() reads words, OR, exclusions, phrases, prefixes and fields", () => {
  assert.deepEqual(terms("Rust  wasm"), [["word(rust)", "word(wasm)"]]);
  assert.deepEqual(terms("a b OR c"), [["word(a)", "word(b)"], ["word(c)"]]);
  assert.deepEqual(terms('"Big  Cat" -dog'), [["phrase(big cat)", "-word(dog)"]]);
  assert.deepEqual(terms("conf*"), [["prefix(conf)"]]);
  assert.deepEqual(terms('name:report tag:"Music" type:text/csv'), [[
    "name:word(report)",
    "tag:word(music)",
    "type:prefix(text/csv)",
  ]]);
  assert.deepEqual(terms("-name:draft notes"), [["-name:word(draft)", "word(notes)"]]);
  // `or` in lower case is a word; a lone `-` or `*` holds none.
  assert.deepEqual(terms("cats or dogs - *"), [["word(cats)", "word(or)", "word(dogs)"]]);
});

Deno.test("parseSearchQuery() folds case and accents, and searches CJK words as phrases", () => {
  assert.deepEqual(terms("Éléphant"), [["word(elephant)"]]);
  assert.deepEqual(terms("東京"), [["phrase(東 京)"]]);
  assert.deepEqual(terms("e-mail"), [["phrase(e mail)"]]);
  assert.deepEqual(searchTokens("Crème brûlée 東京タワー x2"), [
    "creme",
    "brulee",
    "東",
    "京",
    "タ",
    "ワ",
    "ー",
    "x2",
  ]);
});

Deno.test("parseSearchQuery() refuses bad queries with InvalidInputError and a code", () => {
  const cases: [string, string][] = [
    ["", "empty_query"],
    ["   ", "empty_query"],
    ["x".repeat(MAX_QUERY_BYTES + 1), "query_too_long"],
    ["é".repeat(MAX_QUERY_BYTES / 2 + 1), "query_too_long"],
    ['"open phrase', "unbalanced_quotes"],
    ["-alone", "only_exclusions"],
    ["a OR -b", "only_exclusions"],
    ["OR", "empty_query"],
    [Array.from({ length: 65 }, (_, i) => `w${i}`).join(" "), "too_many_terms"],
  ];
  for (const [q, code] of cases) {
    assert.throws(() => parseSearchQuery(q), (e: unknown) => {
      assert.ok(e instanceof InvalidInputError, q);
      assert.equal(e.code, code, q);
      assert.equal(e.status, 400);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("queryWords() lists the words to mark, not excluded ones nor types", () => {
  assert.deepEqual(queryWords(parseSearchQuery('"big cat" -dog type:text OR fish*')), [
    "big",
    "cat",
    "fish",
  ]);
});
