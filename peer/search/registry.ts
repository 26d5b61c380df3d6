/**
 * Where the parts of a peer find its search index and its network search, keyed by
 * the peer's chunk store (one store per peer per process).
 *
 * `PeerNode` (node.ts, the composition root) does not build the index itself: the
 * catalogue, which node.ts builds with the store, the peer table and the pool,
 * registers the network search here (`provideSearch()`), and the request handler
 * (SEARCH_REQ) and the control API (`GET /_p2p/search`) look it up by the store they
 * were given. The index lives in `DATA/search/` beside the store's folder. A peer
 * process opens it at start, in the background (`startSearch()`, called by
 * `peer/server.ts`: loaded from its file, or rebuilt, then caught up with the store);
 * otherwise it is opened on first use. It is closed (and saved) when the peer's
 * signal aborts, and `PeerSearch.closed()` settles once that save is written, which
 * the peer's stop awaits.
 *
 * @module
 */
import type { SearchAnswer } from "../../proto/search.ts";
import { type IndexedStore, type RemoteIndex, SearchIndex } from "./search_index.ts";
import type { SearchBackend } from "./backend.ts";
import { ElasticsearchIndex } from "./elasticsearch.ts";

/** A peer's search: its index and a search of the whole network. */
export interface PeerSearch {
  index(): Promise<SearchIndex>;
  network(q: string, limit: number): Promise<SearchAnswer>;
  /** Settles once the index, if it was opened, is closed and saved. */
  closed(): Promise<void>;
}

const searches = new WeakMap<object, PeerSearch>();
/** The remote index chosen for a store (`startSearch()`), read when its index opens. */
const remotes = new WeakMap<object, RemoteIndex>();

/** The folder of the index of a store in `DATA/store`: `DATA/search`. */
export function indexDirOf(storeDir: string): string {
  const trimmed = storeDir.replace(/[\\/]+$/, "");
  const cut = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return `${cut < 0 ? "." : trimmed.slice(0, cut)}/search`;
}

/**
 * Registers the search of the peer whose store is `store`: its index, opened on first
 * use (and watched, and closed when `signal` aborts), and `network`, given the index.
 */
export function provideSearch(
  store: IndexedStore & { readonly dir: string },
  signal: AbortSignal,
  network: (index: () => Promise<SearchIndex>, q: string, limit: number) => Promise<SearchAnswer>,
): PeerSearch {
  let opening: Promise<SearchIndex> | undefined;
  let closing: Promise<void> | undefined;
  const index = () => {
    if (signal.aborted) return Promise.reject(signal.reason);
    const remote = remotes.get(store);
    opening ??= SearchIndex.open(indexDirOf(store.dir), store, undefined, remote).then((ix) => {
      ix.watch();
      const close = () => closing ??= ix.close().catch(() => undefined);
      if (signal.aborted) close();
      else signal.addEventListener("abort", close, { once: true });
      return ix;
    });
    return opening;
  };
  const closed = async () => {
    await opening?.catch(() => undefined);
    await closing;
  };
  const search: PeerSearch = {
    index,
    network: (q, limit) => network(index, q, limit),
    closed,
  };
  searches.set(store, search);
  return search;
}

/** The search registered for a store, if any. */
export function searchOf(store: object): PeerSearch | undefined {
  return searches.get(store);
}

/** What `startSearch()` logs to. */
export interface SearchLog {
  record(type: string, fields?: Record<string, unknown>): unknown;
}

/**
 * Opens the index of the peer whose store is `store` in the background, without
 * delaying its start: loaded from its file (or rebuilt from the store when missing or
 * stale), then caught up with what the store completed meanwhile. Logs `search.open`
 * (`documents`, `rebuilt`, `ms`) once it is ready, or an `error` record. Returns what
 * the peer's stop awaits: the index closed and saved. Nothing when no search is
 * registered for `store`. With `backend` elasticsearch, the index sends what it holds
 * to that server, which answers the peer's local searches (`search_index.ts`).
 */
export function startSearch(
  store: object,
  log: SearchLog,
  backend: SearchBackend = { kind: "embedded" },
): () => Promise<void> {
  const search = searchOf(store);
  if (!search) return () => Promise.resolve();
  if (backend.kind === "elasticsearch") {
    remotes.set(store, new ElasticsearchIndex(backend.url, backend.index));
  }
  const started = performance.now();
  search.index().then(async (ix) => {
    await ix.sync();
    const ms = Math.round(performance.now() - started);
    const remote = backend.kind === "elasticsearch" ? { backend: backend.url } : {};
    log.record("search.open", { documents: ix.size, rebuilt: ix.rebuilt, ms, ...remote });
  }).catch((err) => {
    // Stopped while opening, or the folder cannot be written: searches say so later.
    log.record("error", { during: "search.open", message: String(err?.message ?? err) });
  });
  return () => search.closed();
}
