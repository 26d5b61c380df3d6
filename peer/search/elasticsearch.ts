/**
 * An Elasticsearch / OpenSearch backend for a peer's index, through their documented
 * REST API: `PUT /{index}` with a mapping, `POST /_bulk` (NDJSON of `index` and
 * `delete` actions), `POST /{index}/_search` with a `bool` query of `multi_match`,
 * `term` and `prefix` clauses and `highlight`. The request bodies are built by pure
 * functions here and checked by the unit tests against the documented shapes; it has
 * NOT been run against a live server (none can be installed on these machines).
 * `p2p peer --search-backend elasticsearch --search-url URL` selects it
 * (`backend.ts`, `registry.ts`): the embedded index (`search_index.ts`, the default)
 * then sends it every document it adds or drops, and it answers the peer's searches.
 *
 * Hits are turned into `LocalHit`s like the embedded index's: scores divided by the
 * best (`max_score`), the highlight of `text` (else `name`) as the snippet, its
 * `<em>` marks as marked parts.
 *
 * @module
 */
import type { LocalHit, Snippet } from "../../proto/search.ts";
import type { SearchQuery, SearchTerm } from "../../proto/search_query.ts";
import { P2pError } from "../../proto/errors.ts";

/** One document as indexed in Elasticsearch (`_id` is the payloadId). */
export interface EsDocument {
  payloadId: string;
  name?: string;
  type: string;
  tags: string[];
  size: number;
  text: string;
}

/** `PUT /{index}`: the mapping (tags and type as keywords, text and name analysed). */
export function mappingBody(): Record<string, unknown> {
  return {
    mappings: {
      properties: {
        name: { type: "text" },
        text: { type: "text" },
        tags: { type: "keyword" },
        type: { type: "keyword" },
        size: { type: "long" },
      },
    },
  };
}

/** `POST /_bulk`: one `index` action per document, one `delete` per removed id (NDJSON, ends with a newline). */
export function bulkBody(index: string, docs: EsDocument[], removed: string[] = []): string {
  const lines: string[] = [];
  for (const d of docs) {
    lines.push(JSON.stringify({ index: { _index: index, _id: d.payloadId } }));
    const { payloadId: _id, ...source } = d;
    lines.push(JSON.stringify(source));
  }
  for (const id of removed) lines.push(JSON.stringify({ delete: { _index: index, _id: id } }));
  return lines.map((l) => l + "\n").join("");
}

/** The clause of one term. */
function clause(t: SearchTerm): Record<string, unknown> {
  if (t.field === "type") return { prefix: { type: t.text } };
  if (t.field === "tag") {
    return t.kind === "prefix" ? { prefix: { tags: t.text } } : { term: { tags: t.text } };
  }
  const fields = t.field === "name" ? ["name"] : ["name^2", "tags^2", "text"];
  if (t.kind === "phrase") return { multi_match: { query: t.text, type: "phrase", fields } };
  if (t.kind === "prefix") {
    return { multi_match: { query: t.text, type: "phrase_prefix", fields } };
  }
  return { multi_match: { query: t.text, fields, fuzziness: "AUTO" } };
}

/**
 * `POST /{index}/_search`: each alternative a `bool` of `must` and `must_not`
 * clauses, at least one alternative matching, the best `limit` with highlights.
 */
export function searchBody(q: SearchQuery, limit: number): Record<string, unknown> {
  return {
    size: limit,
    query: {
      bool: {
        should: q.groups.map((g) => ({
          bool: {
            must: g.filter((t) => !t.negate).map(clause),
            must_not: g.filter((t) => t.negate).map(clause),
          },
        })),
        minimum_should_match: 1,
      },
    },
    highlight: {
      fields: { text: { fragment_size: 160, number_of_fragments: 1 }, name: {} },
      pre_tags: ["<em>"],
      post_tags: ["</em>"],
    },
  };
}

/** A highlighted fragment as snippet parts. */
export function snippetOfHighlight(fragment: string): Snippet {
  const parts: Snippet = [];
  for (const [i, piece] of fragment.split(/<\/?em>/).entries()) {
    if (piece) {
      parts.push(i % 2 ? { text: piece.slice(0, 400), mark: true } : { text: piece.slice(0, 400) });
    }
    if (parts.length >= 64) break;
  }
  return parts;
}

/** The `LocalHit`s of a `_search` answer (its `hits.hits`), scores divided by the best. */
export function hitsOf(answer: unknown): LocalHit[] {
  const hits = (answer as { hits?: { max_score?: number; hits?: unknown[] } })?.hits;
  if (!hits || !Array.isArray(hits.hits)) {
    throw new P2pError("bad_backend_answer", "The search backend's answer has no hits.hits");
  }
  const best = hits.max_score || 1;
  return hits.hits.map((raw) => {
    const h = raw as {
      _id: string;
      _score?: number;
      _source?: Partial<EsDocument>;
      highlight?: Record<string, string[]>;
    };
    const s = h._source ?? {};
    const fragment = h.highlight?.text?.[0] ?? h.highlight?.name?.[0] ?? s.name ?? "";
    return {
      payloadId: h._id,
      ...(s.name ? { name: s.name } : {}),
      type: s.type ?? "application/octet-stream",
      tags: s.tags ?? [],
      size: s.size ?? 0,
      score: Math.max(Number.MIN_VALUE, Math.min(1, (h._score ?? 0) / best)),
      snippet: snippetOfHighlight(fragment),
    };
  });
}

/** A small client of one Elasticsearch/OpenSearch index. */
export class ElasticsearchIndex {
  readonly #url: string;
  readonly #index: string;
  readonly #fetch: typeof fetch;

  constructor(url: string, index = "p2p", fetcher: typeof fetch = fetch) {
    this.#url = url.replace(/\/$/, "");
    this.#index = index;
    this.#fetch = fetcher;
  }

  async #call(path: string, method: string, body: string, type = "application/json") {
    const res = await this.#fetch(`${this.#url}${path}`, {
      method,
      headers: { "content-type": type },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) {
      throw new P2pError(
        "backend_error",
        `The search backend answered ${res.status} to ${method} ${path}: ${text.slice(0, 200)}`,
      );
    }
    return text ? JSON.parse(text) : {};
  }

  /** Creates the index with its mapping. */
  create(): Promise<unknown> {
    return this.#call(`/${this.#index}`, "PUT", JSON.stringify(mappingBody()));
  }

  /** Indexes `docs` and removes `removed` in one bulk request. */
  bulk(docs: EsDocument[], removed: string[] = []): Promise<unknown> {
    return this.#call(
      "/_bulk",
      "POST",
      bulkBody(this.#index, docs, removed),
      "application/x-ndjson",
    );
  }

  /** The hits of a parsed query. */
  async search(q: SearchQuery, limit: number): Promise<LocalHit[]> {
    return hitsOf(
      await this.#call(`/${this.#index}/_search`, "POST", JSON.stringify(searchBody(q, limit))),
    );
  }
}
