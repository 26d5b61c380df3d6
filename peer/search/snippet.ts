/**
 * Snippets and phrases over a document's text, in the words of `searchTokens()`.
 *
 * @module
 */
import { CJK, foldTerm, WORD } from "../../proto/search_query.ts";
import type { Snippet } from "../../proto/search.ts";

/** Characters of text around the first match in a snippet. */
const CONTEXT = 80;

/** Whether `phrase` appears in `tokens` as consecutive words. */
export function phraseIn(tokens: string[], phrase: string[]): boolean {
  if (phrase.length === 0) return true;
  outer: for (let i = 0; i + phrase.length <= tokens.length; i++) {
    for (let j = 0; j < phrase.length; j++) if (tokens[i + j] !== phrase[j]) continue outer;
    return true;
  }
  return false;
}

/** Whether a folded word matches one of the query's words (as a word or a prefix of it). */
function matches(word: string, words: string[]): boolean {
  return words.some((w) => word === w || (w.length >= 3 && word.startsWith(w)));
}

/**
 * A snippet of `text`: about `CONTEXT` characters either side of the first word the
 * query matched (the start when none), every matched word marked.
 */
export function snippetOf(text: string, words: string[]): Snippet {
  let first = -1;
  for (const m of text.matchAll(WORD)) {
    if (matchesToken(m[0], words)) {
      first = m.index;
      break;
    }
  }
  const start = first < 0 ? 0 : Math.max(0, first - CONTEXT);
  let end = Math.min(text.length, (first < 0 ? 0 : first) + CONTEXT * 2);
  while (end < text.length && /[\p{L}\p{N}]/u.test(text[end])) end++;
  let s = start;
  // Start at a word's start, not inside one.
  while (s > 0 && s < first && /[\p{L}\p{N}]/u.test(text[s - 1])) s++;
  const window = text.slice(s, end).replace(/\s+/g, " ");
  const parts: Snippet = [];
  let at = 0;
  const push = (t: string, mark?: boolean) => {
    if (!t || parts.length >= 63) return;
    const last = parts.at(-1);
    if (!mark && last && !last.mark) last.text += t;
    else parts.push(mark ? { text: t, mark } : { text: t });
  };
  if (s > 0) push("… ");
  for (const m of window.matchAll(WORD)) {
    for (const [piece, offset] of pieces(m[0])) {
      if (!matches(foldTerm(piece), words)) continue;
      push(window.slice(at, m.index + offset));
      push(piece, true);
      at = m.index + offset + piece.length;
    }
  }
  push(window.slice(at));
  if (end < text.length) push(" …");
  for (const p of parts) p.text = p.text.slice(0, 400);
  return parts;
}

function matchesToken(token: string, words: string[]): boolean {
  return pieces(token).some(([p]) => matches(foldTerm(p), words));
}

/** A token, or its CJK characters and the runs between them, with their offsets. */
function pieces(token: string): [string, number][] {
  if (!CJK.test(token)) return [[token, 0]];
  const out: [string, number][] = [];
  let run = "";
  let runAt = 0;
  let i = 0;
  for (const ch of token) {
    if (CJK.test(ch)) {
      if (run) out.push([run, runAt]);
      run = "";
      out.push([ch, i]);
    } else {
      if (!run) runAt = i;
      run += ch;
    }
    i += ch.length;
  }
  if (run) out.push([run, runAt]);
  return out;
}
