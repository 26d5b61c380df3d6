/**
 * The network catalogue: what other peers hold. `networkPayloads()` merges the
 * payloads held here, those each live proven peer lists over the peer link
 * (PAYLOADS?, all asked at once, 1.5 s each; a peer's control API needs its owner's
 * token) and those the tracker lists; `remoteLog()` reads another peer's activity log
 * over the wire (LOG?). Both talk only to a link that proved the peer's id.
 *
 * @module
 */
import type { PeerConnection } from "./connection.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { connectAs, type KnownDialer, type KnownPeer, type PeerTable } from "./peer_table.ts";
import type { TrackerClient } from "./tracker_client.ts";
import type { ActivityRecord } from "../proto/activity.ts";
import type {
  NetworkPayload,
  NetworkPayloadsAnswer,
  PayloadHolder,
  SourceError,
} from "../proto/control.ts";
import { errorMessage, ForbiddenError, NotFoundError, P2pError } from "../proto/errors.ts";
import type { WirePayload } from "../proto/messages.ts";
import { hostPort } from "../lib/net_addr.ts";
import { type PeerSearch, provideSearch } from "./search/registry.ts";
import { searchNetwork } from "./search/federated.ts";
import { askPeer } from "./search/wire.ts";
import type { SearchAnswer } from "../proto/search.ts";

/** Known peers asked at once for their payloads. */
const MAX_PEERS_ASKED = 32;
/** How long each peer gets to list its payloads. */
const LIST_TIMEOUT_MS = 1500;

/** What the catalogue needs of its neighbours. */
export interface CatalogueDeps {
  /** This peer's id and name, for its own holdings. */
  self: { peerId: string; name: string };
  /** With `dir`, `payload`, `exportStream` and `onChunk` (the real store), search too. */
  store:
    & Pick<ChunkStore, "list">
    & Partial<Pick<ChunkStore, "dir" | "payload" | "exportStream" | "onChunk">>;
  table: Pick<PeerTable, "proven" | "get">;
  tracker?: Pick<TrackerClient, "payloads">;
  pool: KnownDialer & { connect(host: string, port: number): Promise<PeerConnection> };
  /** Aborts when the peer stops. */
  signal: AbortSignal;
  /** Lists a peer's payloads (default: PAYLOADS? over a link that proved its id). */
  listPayloads?: (peer: KnownPeer, signal: AbortSignal) => Promise<WirePayload[]>;
}

/** Reads what other peers hold and log. */
export class NetworkCatalogue {
  readonly #deps: CatalogueDeps;
  readonly #search: PeerSearch | undefined;

  constructor(deps: CatalogueDeps) {
    this.#deps = deps;
    const { store } = deps;
    if (store.dir && store.payload && store.exportStream && store.onChunk) {
      // The real store: the registry is keyed by it (see search/registry.ts).
      const full = store as Parameters<typeof provideSearch>[0];
      this.#search = provideSearch(full, deps.signal, (index, q, limit) =>
        searchNetwork(
          {
            self: { peerId: deps.self.peerId, ...(deps.self.name ? { name: deps.self.name } : {}) },
            local: async (q, limit) => (await index()).search(q, limit),
            peers: () => searchPeers(deps.table),
            ask: (peer, q, limit, signal) => {
              if (!deps.table.proven().some((p) => p.peerId === peer.peerId)) {
                throw new P2pError(
                  "backing_off",
                  `Peer '${peer.peerId}' did not answer lately: not dialed again before its back-off ends`,
                );
              }
              return askPeer(deps.pool, peer, q, limit, signal);
            },
            signal: deps.signal,
          },
          q,
          limit,
        ));
    }
  }

  /**
   * Searches this peer's index and every live proven peer's at once (`search/federated.ts`);
   * `P2pError` `unsupported` when this catalogue has no store to index.
   */
  search(q: string, limit: number): Promise<SearchAnswer> {
    if (!this.#search) {
      return Promise.reject(new P2pError("unsupported", "This peer has no search index"));
    }
    return this.#search.network(q, limit);
  }

  /**
   * The payloads known on the network, most held first: those held here, those each
   * live known peer with a control port lists, and those the tracker lists. Sources
   * that do not answer are listed in `errors`.
   */
  async networkPayloads(): Promise<NetworkPayloadsAnswer> {
    const { self, store, table, tracker } = this.#deps;
    const byId = new Map<string, NetworkPayload>();
    const errors: SourceError[] = [];
    const add = (
      p: { payloadId: string; size: number; chunks: number; name?: string },
      holder?: PayloadHolder,
    ) => {
      let e = byId.get(p.payloadId);
      if (!e) {
        e = { payloadId: p.payloadId, size: p.size, chunks: p.chunks, holders: [] };
        byId.set(p.payloadId, e);
      }
      if (p.name && !e.name) e.name = p.name;
      if (holder) e.holders.push(holder);
    };
    for (const p of store.list()) {
      add(p, { peerId: self.peerId, name: self.name, held: p.held, complete: p.complete });
    }
    const list = this.#deps.listPayloads ?? ((peer, signal) => this.#list(peer, signal));
    const peers = table.proven().filter((p) => p.failures === 0).slice(0, MAX_PEERS_ASKED);
    await Promise.all([
      ...peers.map(async (peer) => {
        try {
          const signal = AbortSignal.any([AbortSignal.timeout(LIST_TIMEOUT_MS), this.#deps.signal]);
          for (const p of await list(peer, signal)) {
            const { held, complete } = p;
            add(p, {
              peerId: peer.peerId,
              ...(peer.name ? { name: peer.name } : {}),
              held,
              complete,
            });
          }
        } catch (err) {
          errors.push({ source: peer.peerId, message: errorMessage(err) });
        }
      }),
      (async () => {
        if (!tracker) return;
        try {
          for (const p of (await tracker.payloads()).payloads) add(p);
        } catch (err) {
          errors.push({ source: "tracker", message: errorMessage(err) });
        }
      })(),
    ]);
    const payloads = [...byId.values()].sort((a, b) =>
      b.holders.length - a.holders.length || a.payloadId.localeCompare(b.payloadId)
    );
    return { payloads, errors };
  }

  /**
   * Another peer's activity log, asked over the wire with LOG?. `NotFoundError`
   * `unknown_peer` when the peer is not in the table; the connection's errors when it
   * cannot be reached or does not answer within 5 s.
   */
  async remoteLog(
    peerId: string,
    since?: number,
    limit = 100,
    type?: string,
  ): Promise<ActivityRecord[]> {
    const p = this.#deps.table.get(peerId);
    if (!p) {
      throw new NotFoundError(
        "unknown_peer",
        `Unknown peer '${peerId}': not in this peer's table (see p2p peers)`,
      );
    }
    const c = await this.#deps.pool.connect(p.host, p.ports.chunk);
    if (c.remote.peerId !== peerId) {
      throw new ForbiddenError(
        "peer_mismatch",
        `Peer '${peerId}' is not at ${
          hostPort(p.host, p.ports.chunk)
        }: '${c.remote.peerId}' answers there`,
      );
    }
    const header = { limit, ...(since === undefined ? {} : { since }), ...(type ? { type } : {}) };
    const res = await c.request({ type: "LOG_REQ", header }, { timeoutMs: 5000 });
    return res.header.records;
  }

  /** A peer's payloads, asked with PAYLOADS? over a link that proved its id. */
  async #list(peer: KnownPeer, signal: AbortSignal): Promise<WirePayload[]> {
    const c = await connectAs(this.#deps.pool, peer);
    if (!c) {
      throw new P2pError(
        "unreachable",
        `Peer '${peer.peerId}' cannot be reached at ${hostPort(peer.host, peer.ports.chunk)}`,
      );
    }
    const res = await c.request({ type: "PAYLOADS_REQ", header: {} }, { signal });
    return res.header.payloads;
  }
}

/**
 * The peers a search asks: every proven peer, those in a back-off after failing too
 * (so a peer that went away is named in the answer), live ones first, at most
 * `MAX_PEERS_ASKED`. `proven(now)` with a time past every back-off lists them all.
 */
function searchPeers(table: Pick<PeerTable, "proven">): KnownPeer[] {
  const live = new Set(table.proven().map((p) => p.peerId));
  return table.proven(Number.POSITIVE_INFINITY)
    .sort((x, y) => Number(live.has(y.peerId)) - Number(live.has(x.peerId)))
    .slice(0, MAX_PEERS_ASKED);
}
