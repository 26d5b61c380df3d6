/**
 * The search query language, parsed without I/O, and the tokenizer that the index
 * and the query share (so a word is cut and folded the same way on both sides).
 *
 * - `rust wasm`: both words (AND by default); `rust OR go`: either side of `OR`
 *   (`a b OR c` is `(a AND b) OR c`: OR splits the query into alternatives).
 * - `-draft`: leaves out what matches `draft` (in its alternative).
 * - `"exact words"`: a phrase: its words are searched, then the hits are kept only when
 *   their text (or name) holds the words in that order (a post-filter).
 * - `conf*`: a prefix. Words of 4 letters or more also match with typos
 *   (fuzzy: one edit for 4 to 7 letters, two from 8), ranked below exact matches.
 * - `name:report`, `tag:music`, `type:text` (a prefix of the MIME type: `type:text/csv`).
 *
 * Case and accents do not count (`Éte` finds `ete`); Chinese, Japanese and Korean text is
 * cut into single characters, and a CJK word is searched as a phrase. A query is 1 to
 * `MAX_QUERY_BYTES` bytes of UTF-8; an empty one, a longer one, one with an odd number of
 * `"`, or one with only exclusions is an `InvalidInputError` (HTTP 400) that says why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSearchQuery } from "./search_query.ts";
 *
 * const q = parseSearchQuery('tag:notes "big cat" OR dog* -cow');
 * assert.equal(q.groups.length, 2);
 * assert.deepEqual(q.groups[1].map((t) => [t.kind, t.text, t.negate]), [
 *   ["prefix", "dog", false],
 *   ["word", "cow", true],
 * ]);
 * ```
 *
 * @module
 */
import { z } from "zod";
import { InvalidInputError } from "./errors.ts";

/** Longest query: 1 KiB of UTF-8. */
export const MAX_QUERY_BYTES = 1024;
/** Most terms in one query (all alternatives together). */
export const MAX_QUERY_TERMS = 64;

/** The fields a term may be limited to. */
export const SearchField = z.enum(["name", "tag", "type"]);
/** A field a term may be limited to. */
export type SearchField = z.infer<typeof SearchField>;

/** One term of a query: a word, a prefix (`word*`) or a phrase (`"a b"`). */
export const SearchTerm = z.object({
  kind: z.enum(["word", "prefix", "phrase"]),
  /** The term as folded by `foldTerm` (phrases: their words joined by one space). */
  text: z.string().min(1).max(MAX_QUERY_BYTES),
  /** Only this field (else: text, name, tags and type). */
  field: SearchField.optional(),
  /** `-term`: what matches it is left out. */
  negate: z.boolean(),
});
/** One term of a query. */
export type SearchTerm = z.infer<typeof SearchTerm>;

/**
 * A parsed query: alternatives (`OR`), each a list of terms that must all match (those
 * with `negate` must not). Every alternative has at least one term without `negate`.
 */
export const SearchQuery = z.object({
  groups: z.array(
    z.array(SearchTerm).min(1).refine((g) => g.some((t) => !t.negate), {
      message: "an alternative needs at least one term that is not excluded",
    }),
  ).min(1),
});
/** A parsed query. */
export type SearchQuery = z.infer<typeof SearchQuery>;

/** One CJK character (Han, kana, Hangul): each is a word of its own. */
export const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
const CJK_G = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/gu;
/** A run of letters, digits and marks: a word before CJK characters are split off. */
export const WORD = /[\p{L}\p{N}\p{M}_]+/gu;

/** A term in the index's form: lower case, accents dropped (NFD without marks). */
export function foldTerm(term: string): string {
  return term.normalize("NFD").replace(/\p{M}+/gu, "").toLowerCase();
}

/**
 * The words of a text, folded: runs of letters and digits; a CJK character is a word
 * of its own. What the index stores and what a query looks up.
 */
export function searchTokens(text: string): string[] {
  const out: string[] = [];
  for (const m of foldTerm(text).matchAll(WORD)) {
    const w = m[0];
    if (!CJK.test(w)) {
      out.push(w);
      continue;
    }
    // Split CJK characters off, one word each; keep the runs between them whole.
    let rest = "";
    for (const ch of w) {
      if (CJK.test(ch)) {
        if (rest) out.push(rest);
        rest = "";
        out.push(ch);
      } else rest += ch;
    }
    if (rest) out.push(rest);
  }
  return out;
}

/** Whether a (folded) word holds CJK characters, so is searched as a phrase. */
export function hasCjk(word: string): boolean {
  CJK_G.lastIndex = 0;
  return CJK_G.test(word);
}

/** Throws the 400 of a query that cannot be read. */
function bad(code: string, message: string): never {
  throw new InvalidInputError(code, message);
}

/**
 * Parses a query of the language above into alternatives of terms. Throws
 * `InvalidInputError` (`empty_query`, `query_too_long`, `unbalanced_quotes`,
 * `too_many_terms`, `only_exclusions`) with a one-line message.
 */
export function parseSearchQuery(input: string): SearchQuery {
  if (typeof input !== "string" || input.trim() === "") {
    bad("empty_query", "Cannot search: the query is empty");
  }
  const bytes = new TextEncoder().encode(input).length;
  if (bytes > MAX_QUERY_BYTES) {
    bad(
      "query_too_long",
      `Cannot search: the query has '${bytes}' bytes, more than ${MAX_QUERY_BYTES}`,
    );
  }
  if ((input.match(/"/g)?.length ?? 0) % 2 !== 0) {
    bad("unbalanced_quotes", "Cannot search: a '\"' opens a phrase that is never closed");
  }
  const groups: SearchTerm[][] = [[]];
  let count = 0;
  // -? field: ? ( "phrase" | word )
  const re = /(-)?(?:(name|tag|type):)?(?:"([^"]*)"|([^\s"]+))/gy;
  let i = 0;
  while (i < input.length) {
    if (/\s/.test(input[i])) {
      i++;
      continue;
    }
    re.lastIndex = i;
    const m = re.exec(input);
    if (!m) bad("bad_query", `Cannot search: cannot read the query at '${input.slice(i, i + 20)}'`);
    i = re.lastIndex;
    const [, neg, field, phrase, word] = m;
    if (word === "OR" && !neg && !field) {
      groups.push([]);
      continue;
    }
    for (const t of termsOf(phrase, word, field as SearchField | undefined, neg === "-")) {
      if (++count > MAX_QUERY_TERMS) {
        bad("too_many_terms", `Cannot search: more than ${MAX_QUERY_TERMS} terms`);
      }
      groups[groups.length - 1].push(t);
    }
  }
  const kept = groups.filter((g) => g.length > 0);
  if (kept.length === 0) bad("empty_query", "Cannot search: the query has no words");
  if (kept.some((g) => g.every((t) => t.negate))) {
    bad("only_exclusions", "Cannot search: each alternative needs a word that is not excluded");
  }
  return SearchQuery.parse({ groups: kept });
}

/** The terms of one token of the query (none when it holds no word). */
function termsOf(
  phrase: string | undefined,
  word: string | undefined,
  field: SearchField | undefined,
  negate: boolean,
): SearchTerm[] {
  const f = field ? { field } : {};
  if (field === "type") {
    const text = foldTerm((phrase ?? word ?? "").trim());
    return text ? [{ kind: "prefix", text, ...f, negate }] : [];
  }
  if (phrase !== undefined) {
    const words = searchTokens(phrase);
    if (words.length === 0) return [];
    return [{ kind: words.length > 1 ? "phrase" : "word", text: words.join(" "), ...f, negate }];
  }
  const raw = word ?? "";
  const prefix = raw.endsWith("*");
  const words = searchTokens(raw);
  if (words.length === 0) return [];
  // `e-mail`, `東京`: more than one word in one token is a phrase.
  if (words.length > 1) return [{ kind: "phrase", text: words.join(" "), ...f, negate }];
  return [{ kind: prefix ? "prefix" : "word", text: words[0], ...f, negate }];
}

/** The words a query looks for (not excluded), to mark in snippets. */
export function queryWords(q: SearchQuery): string[] {
  const out = new Set<string>();
  for (const g of q.groups) {
    for (const t of g) {
      if (!t.negate && t.field !== "type") { for (const w of t.text.split(" ")) out.add(w); }
    }
  }
  return [...out];
}
