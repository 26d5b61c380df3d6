/**
 * The contract of search: payload metadata (name, content type, tags), one peer's
 * hits (what SEARCH answers over the link), and the merged answer of a search across
 * the network (`GET /_p2p/search`, `p2p search`, the web app). The query language is
 * `search_query.ts`.
 *
 * **Scores.** Each peer ranks with its own index (BM25 over its own documents), so raw
 * scores are not comparable across peers. Every peer divides its scores by its best
 * score for the query before answering, so each is in (0, 1]; the merged hit takes the
 * best score any holder gave it, and ties go to the hit with more holders. A document
 * that is the best match on a small peer and a middling one on a large peer keeps its
 * best rank: on a LAN the same document is usually the same on every holder, so this
 * errs towards showing it.
 *
 * **Metadata from several peers.** Name, type and tags are not covered by the
 * payloadId. The merged hit takes the name and type of the first holder that gives one
 * (this peer first, then peers in the order they answered) and the union of all the
 * holders' tags (at most `MAX_TAGS`).
 *
 * @module
 */
import { z } from "zod";
import { PayloadId, PeerId } from "./ids.ts";
import { MAX_QUERY_BYTES } from "./search_query.ts";

/** Most tags one payload carries. */
export const MAX_TAGS = 32;
/** Most hits one search returns (and one peer sends over the link). */
export const MAX_SEARCH_LIMIT = 50;
/** Hits returned when no limit is given. */
export const DEFAULT_SEARCH_LIMIT = 20;
/** How long a search waits for other peers, by default: 2 s. */
export const SEARCH_DEADLINE_MS = 2000;

/** A tag: 1 to 64 characters, no spaces or commas (`music`, `2026-report`). */
export const Tag = z.string().min(1).max(64).regex(
  /^[^\s,"]+$/u,
  "a tag has no spaces, commas or quotes",
);
/** A content type (`text/plain`, `application/json`), without parameters. */
export const ContentType = z.string().max(127).regex(
  /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/i,
  "a content type looks like 'text/plain'",
);

/** What a payload is, besides its bytes: given by its owner, not covered by its id. */
export const PayloadMeta = z.object({
  name: z.string().min(1).max(255).optional(),
  type: ContentType.optional(),
  tags: z.array(Tag).max(MAX_TAGS).optional(),
});
/** What a payload is, besides its bytes. */
export type PayloadMeta = z.infer<typeof PayloadMeta>;

/** One piece of a snippet; `mark` when it is a word the query matched. */
export const SnippetPart = z.object({
  text: z.string().max(400),
  mark: z.boolean().optional(),
});
/** A snippet: a few words of the text around a match, the matched words marked. */
export const Snippet = z.array(SnippetPart).max(64);
/** A snippet. */
export type Snippet = z.infer<typeof Snippet>;

/** One hit of one peer's index; `score` is in (0, 1], 1 for its best hit. */
export const LocalHit = z.object({
  payloadId: PayloadId,
  name: z.string().max(255).optional(),
  type: ContentType,
  tags: z.array(Tag).max(MAX_TAGS),
  size: z.number().int().nonnegative(),
  score: z.number().gt(0).max(1),
  snippet: Snippet,
});
/** One hit of one peer's index. */
export type LocalHit = z.infer<typeof LocalHit>;

/** SEARCH_REQ (19): search the receiver's index; `q` in the language of `search_query.ts`. */
export const SearchReqHeader = z.looseObject({
  q: z.string().min(1).max(MAX_QUERY_BYTES),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).optional(),
});
/** SEARCH_REQ header. */
export type SearchReqHeader = z.infer<typeof SearchReqHeader>;

/** SEARCH (20): the receiver's hits, best first. */
export const SearchHeader = z.looseObject({ hits: z.array(LocalHit).max(MAX_SEARCH_LIMIT) });
/** SEARCH header. */
export type SearchHeader = z.infer<typeof SearchHeader>;

/** A peer that holds a hit. */
export const SearchHolder = z.object({
  peerId: PeerId,
  name: z.string().max(64).optional(),
});
/** A peer that holds a hit. */
export type SearchHolder = z.infer<typeof SearchHolder>;

/** One merged hit: one per payloadId, with every peer that holds it. */
export const NetworkHit = LocalHit.extend({ holders: z.array(SearchHolder).min(1) });
/** One merged hit. */
export type NetworkHit = z.infer<typeof NetworkHit>;

/** A peer that was asked and did not answer in time (or answered an error). */
export const MissingPeer = z.object({
  peerId: PeerId,
  name: z.string().max(64).optional(),
  message: z.string(),
});
/** A peer that did not answer. */
export type MissingPeer = z.infer<typeof MissingPeer>;

/** `GET /_p2p/search`: the merged hits, best first, and the peers that did not answer. */
export const SearchAnswer = z.object({
  query: z.string(),
  hits: z.array(NetworkHit),
  /** Peers asked besides this one. */
  asked: z.number().int().nonnegative(),
  missing: z.array(MissingPeer),
});
/** The answer of a search across the network. */
export type SearchAnswer = z.infer<typeof SearchAnswer>;

/** `GET /_p2p/search?q=&limit=` (and the tracker's `GET /search?q=&limit=`). */
export const SearchQueryParams = z.object({
  q: z.string().max(MAX_QUERY_BYTES * 4),
  limit: z.coerce.number().int().min(1).max(MAX_SEARCH_LIMIT).default(DEFAULT_SEARCH_LIMIT),
});
/** The query of a search request. */
export type SearchQueryParams = z.infer<typeof SearchQueryParams>;

/** Content types by file name extension. */
const BY_EXTENSION: Record<string, string> = {
  txt: "text/plain",
  text: "text/plain",
  log: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  json: "application/json",
  ndjson: "application/x-ndjson",
  csv: "text/csv",
  tsv: "text/tab-separated-values",
  html: "text/html",
  htm: "text/html",
  xml: "application/xml",
  pdf: "application/pdf",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  zip: "application/zip",
  gz: "application/gzip",
  mp3: "audio/mpeg",
  mp4: "video/mp4",
};

/** The content type a name's extension gives (`notes.MD`: `text/markdown`), if known. */
export function typeFromName(name: string | undefined): string | undefined {
  const ext = name?.match(/\.([A-Za-z0-9]{1,10})$/)?.[1]?.toLowerCase();
  return ext ? BY_EXTENSION[ext] : undefined;
}
