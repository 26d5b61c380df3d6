/**
 * The tracker's search over what it knows of payloads: their names, the tags their
 * uploads gave (`POST /payloads?tag=`), and the content type their name's extension
 * gives (the tracker keeps no text or sniffed types). `GET /payloads/search?q=&limit=`
 * (mounted by `routes_payloads.ts`) and `GET /search` (mounted by `app.ts`): the query
 * language of `proto/search_query.ts`, phrases and fields included (`tag:` matches the
 * tags only, `name:` the name only, a plain word either or the type),
 * answered as `SearchAnswer` with the tracker as the only holder named (`peerId` of
 * 40 zeros, name `tracker`). At most `MAX_SCANNED` payload rows are read per search.
 *
 * @module
 */
import { Hono } from "hono";
import { query } from "../lib/http_api.ts";
import {
  type NetworkHit,
  type SearchAnswer,
  SearchQueryParams,
  typeFromName,
} from "../proto/search.ts";
import {
  parseSearchQuery,
  type SearchQuery,
  type SearchTerm,
  searchTokens,
} from "../proto/search_query.ts";
import type { TrackerDeps, TrackerEnv } from "./deps.ts";
import type { PayloadRow } from "./store.ts";

/** Payload rows read per search, at most. */
export const MAX_SCANNED = 20_000;
const PAGE = 1000;
/** The holder named for hits from the tracker. */
const TRACKER_HOLDER = { peerId: "0".repeat(40), name: "tracker" };

/** The content type a name's extension gives (`application/octet-stream` otherwise). */
export function typeOfName(name: string | undefined): string {
  return typeFromName(name) ?? "application/octet-stream";
}

/** The words of a payload a term may match: its name's and its tags'. */
interface Words {
  name: string[];
  tags: string[];
}

/** Whether `words` holds `t` (a word, a prefix or a phrase). */
function holds(t: SearchTerm, words: string[]): boolean {
  const parts = t.text.split(" ");
  if (t.kind === "phrase") {
    return words.some((_, i) => parts.every((p, j) => words[i + j] === p));
  }
  if (t.kind === "prefix") return words.some((w) => w.startsWith(t.text));
  return words.includes(t.text);
}

/** Whether one term matches a payload's name, tags or type. */
function termMatches(t: SearchTerm, words: Words, type: string): boolean {
  if (t.field === "type") return type.startsWith(t.text);
  if (t.field === "tag") return holds(t, words.tags);
  if (t.field === "name") return holds(t, words.name);
  return holds(t, words.name) || holds(t, words.tags) ||
    (t.kind === "word" && type.split("/").includes(t.text));
}

/**
 * A score in (0, 1] for a payload whose name, tags and type match `q` (the share of
 * its name's and tags' words the query matched, at least 0.1), or 0.
 */
export function scoreName(
  q: SearchQuery,
  name: string | undefined,
  type: string,
  tags: readonly string[] = [],
): number {
  const words = { name: searchTokens(name ?? ""), tags: searchTokens(tags.join(" ")) };
  const ok = q.groups.some((g) => g.every((t) => termMatches(t, words, type) !== t.negate));
  if (!ok) return 0;
  const all = [...words.name, ...words.tags];
  const matched =
    all.filter((w) =>
      q.groups.some((g) => g.some((t) => !t.negate && t.text.split(" ").includes(w)))
    ).length;
  return Math.max(0.1, all.length ? matched / all.length : 0);
}

/** The `GET /` route of a search over the tracker's payload rows. */
export function searchRoutes({ store }: Pick<TrackerDeps, "store">) {
  return new Hono<TrackerEnv>().get("/", async (c) => {
    const { q, limit } = query(c, SearchQueryParams);
    const parsed = parseSearchQuery(q);
    const hits: NetworkHit[] = [];
    let cursor: string | undefined;
    for (let read = 0; read < MAX_SCANNED; read += PAGE) {
      const page: { rows: PayloadRow[]; cursor: string | null } = await store.listPayloads(
        PAGE,
        cursor,
      );
      for (const row of page.rows) {
        const type = typeOfName(row.name);
        const score = scoreName(parsed, row.name, type, row.tags);
        if (score === 0) continue;
        hits.push({
          payloadId: row.payloadId,
          ...(row.name ? { name: row.name } : {}),
          type,
          tags: row.tags ?? [],
          size: row.size,
          score,
          snippet: row.name ? [{ text: row.name }] : [],
          holders: [TRACKER_HOLDER],
        });
      }
      if (!page.cursor) break;
      cursor = page.cursor;
    }
    hits.sort((a, b) => b.score - a.score || a.payloadId.localeCompare(b.payloadId));
    const answer: SearchAnswer = { query: q, hits: hits.slice(0, limit), asked: 0, missing: [] };
    return c.json(answer);
  });
}
