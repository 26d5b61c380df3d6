/**
 * A peer's full-text index of what it holds (MiniSearch): the text of every complete
 * text payload (`extract.ts`: at most 1 MiB of it) and the name, type and tags of every
 * complete payload, binary ones included.
 *
 * **Kept up to date.** `watch()` listens to the store's `onChunk` and indexes a payload
 * once its last chunk is held; `sync()` (run before every search, and at open) adds
 * what is complete but not indexed and drops what the store no longer holds, so a
 * payload removed is gone from the answers of the next search (the store has no
 * removal event).
 *
 * **Saved.** `DATA/search/index.json` (`{ version, fingerprint, index }`), written to a
 * temporary and renamed, at most once a second after a change and at `close()`. The
 * fingerprint is the SHA-256 of the sorted ids of the payloads indexed and of the
 * metadata file; at open a file of another version, unreadable, or whose fingerprint is
 * not that of the store and metadata now is dropped and the index rebuilt from the store.
 * Tags and given types live in `DATA/search/meta.json` (`metadata.ts`), so a rebuilt
 * index gives the same answers.
 *
 * **Elsewhere** (`--search-backend elasticsearch`): given a `RemoteIndex`, the index
 * still follows the store as above, always rebuilt at open, and sends every document
 * it adds or drops to the remote one (bulk requests of at most `PUSH_BATCH`, at most
 * that many waiting), which then answers `search()`. A failed push is kept in
 * `remoteError`; the remote's own errors reach the searcher.
 *
 * **Queries** (`search_query.ts`): each alternative is one MiniSearch query (its terms
 * ANDed; words of 4+ letters match with one typo, of 8+ with two, prefixes as prefixes,
 * `name:`/`tag:` limited to their field, name and tags boosted 2x), `type:` a filter on
 * the stored type, exclusions a second query whose hits are left out, phrases a filter
 * on the text's words in order. Alternatives are merged keeping each document's best
 * score; scores are divided by the best one (see `proto/search.ts`).
 *
 * @module
 */
import MiniSearch, { type Query, type SearchResult } from "minisearch";
import { hasCjk, parseSearchQuery, queryWords, searchTokens } from "../../proto/search_query.ts";
import type { SearchQuery, SearchTerm } from "../../proto/search_query.ts";
import type { LocalHit, PayloadMeta } from "../../proto/search.ts";
import { MAX_SEARCH_LIMIT } from "../../proto/search.ts";
import { sha256Hex } from "../../proto/manifest.ts";
import type { ChunkStore } from "../chunk_store.ts";
import type { EsDocument } from "./elasticsearch.ts";
import { readHead, sniffType, textOf } from "./extract.ts";
import { MetadataFile } from "./metadata.ts";
import { phraseIn, snippetOf } from "./snippet.ts";

/** Version of the saved index: a file of another version is rebuilt. */
export const INDEX_VERSION = 1;
/** Candidates checked against phrases (their text read again) per search. */
const MAX_PHRASE_CHECKS = 200;
/** Characters of payload text kept for snippets and phrases (8 to 16 MiB of memory). */
const TEXT_CACHE_BYTES = 8 * 1024 * 1024;
/** Payloads read at once while the index catches up with the store. */
const SYNC_CONCURRENCY = 4;
/** Delay between a change and the save it causes. */
const SAVE_DELAY_MS = 1000;

/** Documents sent to a remote index per request, and waiting at most. */
const PUSH_BATCH = 200;

/** An index elsewhere that answers instead (`ElasticsearchIndex`). */
export interface RemoteIndex {
  create(): Promise<unknown>;
  bulk(docs: EsDocument[], removed: string[]): Promise<unknown>;
  search(q: SearchQuery, limit: number): Promise<LocalHit[]>;
}

/** What the index needs of the store. */
export type IndexedStore = Pick<ChunkStore, "list" | "payload" | "exportStream" | "onChunk">;

interface Doc {
  id: string;
  text: string;
  name: string;
  tags: string;
  type: string;
  size: number;
}

const OPTIONS = {
  fields: ["text", "name", "tags", "type"],
  storeFields: ["name", "type", "tags", "size"],
  tokenize: searchTokens,
  processTerm: (t: string) => t,
  searchOptions: { tokenize: searchTokens, processTerm: (t: string) => t },
};

/** Reads the first bytes of a payload (default: `readHead` of the store's stream). */
export type ReadHead = (payloadId: string) => Promise<Uint8Array>;

/** A peer's full-text index over its store. */
export class SearchIndex {
  readonly dir: string;
  readonly #store: IndexedStore;
  readonly #meta: MetadataFile;
  readonly #readHead: ReadHead;
  #ms: MiniSearch<Doc>;
  #saveTimer: ReturnType<typeof setTimeout> | undefined;
  #saving: Promise<void> = Promise.resolve();
  #unwatch: (() => void) | undefined;
  /** Indexing under way, by payloadId. */
  readonly #pending = new Map<string, Promise<void>>();
  #closed = false;
  /** Texts read for snippets, least recently used first. */
  readonly #texts = new Map<string, string>();
  #textBytes = 0;
  /** Whether the index was rebuilt at open (no file, another version, another fingerprint). */
  rebuilt = false;
  readonly #remote: RemoteIndex | undefined;
  /** Documents (null: removals) waiting to be sent to the remote index, by payloadId. */
  readonly #toPush = new Map<string, EsDocument | null>();
  #pushing: Promise<void> = Promise.resolve();
  /** The last failure to send documents to the remote index. */
  remoteError: string | undefined;

  private constructor(
    dir: string,
    store: IndexedStore,
    meta: MetadataFile,
    read?: ReadHead,
    remote?: RemoteIndex,
  ) {
    this.#remote = remote;
    this.dir = dir;
    this.#store = store;
    this.#meta = meta;
    this.#readHead = read ?? ((id) => readHead(store.exportStream(id)));
    this.#ms = new MiniSearch<Doc>(OPTIONS);
  }

  /**
   * Opens the index saved in `dir` (made when missing), or rebuilds it from the store
   * when it is missing, of another version or does not match the store. With a
   * `remote`, its index is created (an existing one is kept) and everything sent again.
   */
  static async open(
    dir: string,
    store: IndexedStore,
    read?: ReadHead,
    remote?: RemoteIndex,
  ): Promise<SearchIndex> {
    await Deno.mkdir(dir, { recursive: true });
    const meta = await MetadataFile.open(`${dir}/meta.json`);
    // An index that exists already is an error answer here, and kept.
    await remote?.create().catch(() => undefined);
    const index = new SearchIndex(dir, store, meta, read, remote);
    await index.#load();
    return index;
  }

  /** Payloads indexed. */
  get size(): number {
    return this.#ms.documentCount;
  }

  /** The metadata of a payload: its stored name, its given type and tags. */
  meta(payloadId: string): PayloadMeta {
    return { ...this.#meta.get(payloadId) };
  }

  /** Sets the tags and type of a payload (kept in `meta.json`) and indexes it again. */
  async setMeta(payloadId: string, meta: PayloadMeta): Promise<void> {
    await this.#meta.set(payloadId, meta);
    this.#forget(payloadId);
    if (this.#ms.has(payloadId)) this.#ms.discard(payloadId);
    await this.add(payloadId);
  }

  /** Indexes payloads as they complete (`store.onChunk`). Idempotent. */
  watch(): void {
    this.#unwatch ??= this.#store.onChunk((payloadId) => {
      if (this.#store.payload(payloadId)?.complete && !this.#ms.has(payloadId)) {
        this.add(payloadId).catch(() => undefined);
      }
    });
  }

  /** Indexes a complete payload (nothing when it is indexed, unknown or incomplete). */
  add(payloadId: string): Promise<void> {
    const running = this.#pending.get(payloadId);
    if (running) return running;
    const p = this.#add(payloadId).finally(() => this.#pending.delete(payloadId));
    this.#pending.set(payloadId, p);
    return p;
  }

  async #add(payloadId: string): Promise<void> {
    const stored = this.#store.payload(payloadId);
    if (!stored?.complete || this.#ms.has(payloadId) || this.#closed) return;
    const given = this.#meta.get(payloadId);
    const head = await this.#readHead(payloadId);
    const name = given.name ?? stored.name ?? "";
    const type = given.type ?? sniffType(name, head.subarray(0, 4096));
    const doc: Doc = {
      id: payloadId,
      text: textOf(type, head),
      name,
      tags: (given.tags ?? []).join(" "),
      type,
      size: stored.size,
    };
    if (this.#closed || this.#ms.has(payloadId) || !this.#store.payload(payloadId)) return;
    this.#ms.add(doc);
    this.#changed();
    if (this.#remote) {
      const { id, tags, ...rest } = doc;
      await this.#push(id, { ...rest, payloadId: id, tags: tags ? tags.split(" ") : [] });
    }
  }

  /** Queues a document (null: a removal) for the remote index; waits when many are. */
  async #push(payloadId: string, doc: EsDocument | null): Promise<void> {
    const remote = this.#remote;
    if (!remote) return;
    if (this.#toPush.size >= PUSH_BATCH) await this.#pushing;
    this.#toPush.set(payloadId, doc);
    this.#pushing = this.#pushing.then(async () => {
      const batch = [...this.#toPush].slice(0, PUSH_BATCH);
      if (batch.length === 0) return;
      for (const [id] of batch) this.#toPush.delete(id);
      const docs = batch.flatMap(([, d]) => d ? [d] : []);
      const removed = batch.flatMap(([id, d]) => d ? [] : [id]);
      try {
        await remote.bulk(docs, removed);
        this.remoteError = undefined;
      } catch (err) {
        this.remoteError = err instanceof Error ? err.message : String(err);
      }
    });
    await Promise.resolve();
  }

  /** Drops a payload from the index. */
  remove(payloadId: string): void {
    this.#forget(payloadId);
    if (!this.#ms.has(payloadId)) return;
    this.#ms.discard(payloadId);
    this.#changed();
    this.#push(payloadId, null).catch(() => undefined);
  }

  #forget(payloadId: string): void {
    const t = this.#texts.get(payloadId);
    if (t === undefined) return;
    this.#texts.delete(payloadId);
    this.#textBytes -= t.length;
  }

  /** Adds what is complete in the store and not indexed; drops what it no longer holds. */
  async sync(): Promise<void> {
    const complete = new Set(this.#store.list().filter((p) => p.complete).map((p) => p.payloadId));
    for (const id of this.#ids()) if (!complete.has(id)) this.remove(id);
    // A few at a time: each reads up to 1 MiB of its payload.
    const todo = [...complete].filter((id) => !this.#ms.has(id));
    const next = async () => {
      for (let id = todo.pop(); id !== undefined; id = todo.pop()) await this.add(id);
    };
    await Promise.all(Array.from({ length: SYNC_CONCURRENCY }, next));
  }

  /**
   * The hits of `q` (a query string, parsed here: `InvalidInputError` for a bad one),
   * best first, at most `limit`; scores divided by the best.
   */
  async search(q: string | SearchQuery, limit = MAX_SEARCH_LIMIT): Promise<LocalHit[]> {
    const query = typeof q === "string" ? parseSearchQuery(q) : q;
    await this.sync();
    if (this.#remote) {
      await this.#pushing;
      return await this.#remote.search(query, limit);
    }
    const best = new Map<string, SearchResult>();
    for (const group of query.groups) {
      for (const r of await this.#group(group)) {
        const had = best.get(r.id);
        if (!had || had.score < r.score) best.set(r.id, r);
      }
    }
    const ranked = [...best.values()].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
      .slice(0, limit);
    const top = ranked[0]?.score ?? 1;
    const words = queryWords(query);
    return await Promise.all(ranked.map(async (r) => {
      const text = await this.#text(r.id, String(r.type));
      const name = String(r.name ?? "");
      return {
        payloadId: r.id,
        ...(name ? { name } : {}),
        type: String(r.type),
        tags: String(r.tags ?? "").split(" ").filter((t) => t),
        size: Number(r.size),
        score: Math.max(Number.MIN_VALUE, Math.min(1, r.score / top)),
        snippet: snippetOf(text || name, words),
      };
    }));
  }

  /** The documents of one alternative: all its terms, none of its exclusions. */
  async #group(group: SearchTerm[]): Promise<SearchResult[]> {
    const types = group.filter((t) => t.field === "type");
    const filter = (r: SearchResult) =>
      types.every((t) => String(r.type).toLowerCase().startsWith(t.text) !== t.negate);
    const pos = group.filter((t) => !t.negate && t.field !== "type");
    const neg = group.filter((t) => t.negate && t.field !== "type");
    let hits = pos.length > 0
      ? this.#ms.search({ combineWith: "AND", queries: pos.map(termQuery) }, { filter })
      : this.#ms.search(MiniSearch.wildcard, { filter });
    if (neg.length > 0) {
      const out = new Set(
        this.#ms.search({ combineWith: "OR", queries: neg.map(termQuery) }).map((r) => r.id),
      );
      hits = hits.filter((r) => !out.has(r.id));
    }
    const phrases = group.filter((t) => t.kind === "phrase" || hasCjk(t.text));
    if (phrases.length === 0) return hits;
    const kept: SearchResult[] = [];
    for (const r of hits.slice(0, MAX_PHRASE_CHECKS)) {
      const tokens = searchTokens(`${await this.#text(r.id, String(r.type))} ${r.name ?? ""}`);
      if (phrases.every((t) => phraseIn(tokens, t.text.split(" ")) !== t.negate)) kept.push(r);
    }
    return kept;
  }

  /**
   * The text of a payload for snippets and phrases: read from the store again (the
   * index keeps no text), the last ones kept up to `TEXT_CACHE_BYTES`.
   */
  async #text(payloadId: string, type: string): Promise<string> {
    const cached = this.#texts.get(payloadId);
    if (cached !== undefined) {
      this.#texts.delete(payloadId);
      this.#texts.set(payloadId, cached);
      return cached;
    }
    const text = textOf(type, await this.#readHead(payloadId).catch(() => new Uint8Array()));
    this.#texts.set(payloadId, text);
    this.#textBytes += text.length;
    for (const [id, t] of this.#texts) {
      if (this.#textBytes <= TEXT_CACHE_BYTES) break;
      this.#texts.delete(id);
      this.#textBytes -= t.length;
    }
    return text;
  }

  #ids(): string[] {
    // MiniSearch keeps no public list of ids; the wildcard search lists them all.
    return this.#ms.search(MiniSearch.wildcard).map((r) => r.id);
  }

  async #fingerprint(ids: string[]): Promise<string> {
    const text = JSON.stringify([[...ids].sort(), this.#meta.version]);
    return await sha256Hex(new TextEncoder().encode(text));
  }

  async #load(): Promise<void> {
    const path = `${this.dir}/index.json`;
    const complete = this.#store.list().filter((p) => p.complete).map((p) => p.payloadId);
    // With a remote index, every document is read and sent again.
    if (!this.#remote) {
      try {
        const saved = JSON.parse(await Deno.readTextFile(path));
        if (
          saved?.version === INDEX_VERSION &&
          saved.fingerprint === await this.#fingerprint(complete)
        ) {
          this.#ms = MiniSearch.loadJS<Doc>(saved.index, OPTIONS);
          return;
        }
      } catch {
        // Missing or unreadable: rebuilt below.
      }
    }
    this.rebuilt = true;
    this.#ms = new MiniSearch<Doc>(OPTIONS);
    await this.sync();
    await this.save();
  }

  #changed(): void {
    if (this.#closed || this.#saveTimer !== undefined) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      this.save().catch(() => undefined);
    }, SAVE_DELAY_MS);
  }

  /** Writes the index to `index.json` atomically (a temporary renamed). */
  save(): Promise<void> {
    this.#saving = this.#saving.then(async () => {
      const fingerprint = await this.#fingerprint(this.#ids());
      const text = JSON.stringify({ version: INDEX_VERSION, fingerprint, index: this.#ms });
      const tmp = `${this.dir}/index.json.${crypto.randomUUID()}.tmp`;
      await Deno.writeTextFile(tmp, text);
      await Deno.rename(tmp, `${this.dir}/index.json`);
    });
    return this.#saving;
  }

  /** Stops watching, waits for indexing under way and saves. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#saving;
    this.#unwatch?.();
    await Promise.allSettled(this.#pending.values());
    this.#closed = true;
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    await this.#pushing;
    await this.save();
  }
}

/** The MiniSearch query of one term. */
function termQuery(t: SearchTerm): Query {
  const fields = t.field === "name" ? ["name"] : t.field === "tag" ? ["tags"] : undefined;
  const typos = t.text.length >= 8 ? 2 : t.text.length >= 4 ? 1 : 0;
  const fuzzy = t.kind === "word" && t.field !== "tag" && typos > 0 ? typos : false;
  return {
    queries: [t.text],
    combineWith: "AND",
    prefix: t.kind === "prefix",
    fuzzy,
    ...(fields ? { fields } : {}),
    boost: { name: 2, tags: 2 },
  };
}
