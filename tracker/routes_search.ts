/**
 * The tracker's search over what it knows of payloads: their names, and the content
 * type their name's extension gives (the tracker keeps no text, tags or sniffed
 * types). `GET /payloads/search?q=&limit=` (mounted by `routes_payloads.ts`) and `GET
 * /search` (mounted by `app.ts`): the query language of
 * `proto/search_query.ts`, phrases and fields included (`tag:` matches nothing here),
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

/** Whether one term matches a name's words (and its type). */
function termMatches(t: SearchTerm, words: string[], type: string): boolean {
  if (t.field === "type") return type.startsWith(t.text);
  if (t.field === "tag") return false;
  const parts = t.text.split(" ");
  if (t.kind === "phrase") {
    return words.some((_, i) => parts.every((p, j) => words[i + j] === p));
  }
  if (t.kind === "prefix") return words.some((w) => w.startsWith(t.text));
  return words.includes(t.text) || (t.field === undefined && type.split("/").includes(t.text));
}

/**
 * A score in (0, 1] for a payload whose name and type match `q` (the share of its
 * name's words the query matched, at least 0.1), or 0.
 */
export function scoreName(q: SearchQuery, name: string | undefined, type: string): number {
  const words = searchTokens(name ?? "");
  const ok = q.groups.some((g) => g.every((t) => termMatches(t, words, type) !== t.negate));
  if (!ok) return 0;
  const matched =
    words.filter((w) =>
      q.groups.some((g) => g.some((t) => !t.negate && t.text.split(" ").includes(w)))
    ).length;
  return Math.max(0.1, words.length ? matched / words.length : 0);
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
        const score = scoreName(parsed, row.name, type);
        if (score === 0) continue;
        hits.push({
          payloadId: row.payloadId,
          ...(row.name ? { name: row.name } : {}),
          type,
          tags: [],
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
