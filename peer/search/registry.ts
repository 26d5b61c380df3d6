/**
 * Where the parts of a peer find its search index and its network search, keyed by
 * the peer's chunk store (one store per peer per process).
 *
 * A stopgap: `PeerNode` (node.ts, the composition root) does not build the index yet,
 * so the catalogue, which node.ts builds with the store, the peer table and the pool,
 * registers the network search here (`provideSearch()`), and the request handler
 * (SEARCH_REQ) and the control API (`GET /_p2p/search`) look it up by the store they
 * were given. The index is opened on first use, in `DATA/search/` beside the store's
 * folder, so a peer that is never searched never reads or writes it; it is closed
 * when the peer's signal aborts.
 *
 * @module
 */
import type { SearchAnswer } from "../../proto/search.ts";
import { type IndexedStore, SearchIndex } from "./search_index.ts";

/** A peer's search: its index and a search of the whole network. */
export interface PeerSearch {
  index(): Promise<SearchIndex>;
  network(q: string, limit: number): Promise<SearchAnswer>;
}

const searches = new WeakMap<object, PeerSearch>();

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
  const index = () => {
    if (signal.aborted) return Promise.reject(signal.reason);
    opening ??= SearchIndex.open(indexDirOf(store.dir), store).then((ix) => {
      ix.watch();
      const close = () => ix.close().catch(() => undefined);
      if (signal.aborted) close();
      else signal.addEventListener("abort", close, { once: true });
      return ix;
    });
    return opening;
  };
  const search: PeerSearch = { index, network: (q, limit) => network(index, q, limit) };
  searches.set(store, search);
  return search;
}

/** The search registered for a store, if any. */
export function searchOf(store: object): PeerSearch | undefined {
  return searches.get(store);
}
