/**
 * Replication: `put()` stores a payload from a stream, has it announced, and pushes
 * each chunk (PUT_CHUNK) to `replicas` other live peers chosen per chunk by
 * rendezvous (highest random weight) hashing, so copies spread evenly and losing one
 * peer loses no chunk. `rendezvous()` is the score both this and the spreading of
 * tracker uploads rank peers by.
 *
 * ```ts
 * import { rankByRendezvous, rendezvous } from "./replication.ts";
 *
 * const id = "ab".repeat(32);
 * console.assert(rendezvous(id, 0, "p1") === rendezvous(id, 0, "p1"));
 * const ranked = rankByRendezvous(id, 0, ["p1", "p2", "p3"], (p) => p);
 * console.assert(ranked.length === 3);
 * ```
 *
 * @module
 */
import type { PeerConnection } from "./connection.ts";
import type { ChunkStore } from "./chunk_store.ts";
import type { PeerLog } from "./activity.ts";
import type { KnownPeer, PeerTable } from "./peer_table.ts";
import type { PutProgress, PutResult } from "../proto/control.ts";

/** Chunks pushed at once by `replicate()`. */
const PUSH_WORKERS = 4;

/** What `replicate()` did. */
export type ReplicateResult = Pick<PutResult, "replicas" | "underReplicated">;

/** Rendezvous (highest random weight) score of a peer for one chunk: FNV-1a, 32 bits. */
export function rendezvous(payloadId: string, index: number, peerId: string): number {
  let h = 0x811c9dc5;
  const s = `${payloadId}:${index}:${peerId}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche so nearby inputs spread.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** `items` ranked by the rendezvous score of their peer id for one chunk, highest first. */
export function rankByRendezvous<T>(
  payloadId: string,
  index: number,
  items: readonly T[],
  peerIdOf: (item: T) => string,
): T[] {
  return [...items].sort((a, b) =>
    rendezvous(payloadId, index, peerIdOf(b)) - rendezvous(payloadId, index, peerIdOf(a))
  );
}

/** What replication needs of its neighbours. */
export interface ReplicationDeps {
  store: Pick<ChunkStore, "importStream" | "getManifest" | "readChunk">;
  table: Pick<PeerTable, "list">;
  log: Pick<PeerLog, "record">;
  pool: { connectKnown(p: KnownPeer): Promise<PeerConnection | undefined> };
  /** Copies pushed of every chunk `put()` stores. */
  replicas: number;
  /** Has a payload announced (to the tracker, when there is one). */
  announce: (payloadId: string) => void;
}

/** Stores payloads and pushes their chunks to other peers. */
export class Replication {
  readonly #deps: ReplicationDeps;

  constructor(deps: ReplicationDeps) {
    this.#deps = deps;
  }

  /** Stores a payload from a stream, announces it and pushes each chunk to `replicas` peers. */
  async put(
    source: ReadableStream<Uint8Array>,
    name?: string,
    onProgress?: (e: PutProgress) => void,
  ): Promise<PutResult> {
    const { store, log } = this.#deps;
    const { payloadId, manifest, created } = await store.importStream(source, { name });
    const chunks = manifest.chunks.length;
    log.record("payload.put", { payloadId, size: manifest.size, chunks, name });
    onProgress?.({ type: "stored", payloadId, size: manifest.size, chunks });
    this.#deps.announce(payloadId);
    const rep = await this.replicate(payloadId, this.#deps.replicas, onProgress);
    return { payloadId, size: manifest.size, chunks, created, ...rep };
  }

  /**
   * Pushes each chunk of a held payload to `replicas` other live peers (the known
   * peers that can be reached now), chosen per chunk by rendezvous hashing; a peer
   * that fails a push is passed over for the next in rank.
   */
  async replicate(
    payloadId: string,
    replicas: number,
    onProgress?: (e: PutProgress) => void,
  ): Promise<ReplicateResult> {
    const { store, table, pool, log } = this.#deps;
    const counts: Record<string, number> = {};
    const m = store.getManifest(payloadId);
    if (!m || replicas <= 0) return { replicas: counts, underReplicated: 0 };
    const live: { peer: KnownPeer; conn: PeerConnection }[] = [];
    for (const p of table.list()) {
      const conn = await pool.connectKnown(p);
      if (conn) live.push({ peer: p, conn });
    }
    let under = 0;
    let done = 0;
    const queue = m.chunks.map((_, i) => i);
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        let copies = 0;
        const body = await store.readChunk(payloadId, i);
        for (const target of rankByRendezvous(payloadId, i, live, (t) => t.peer.peerId)) {
          if (copies >= replicas) break;
          const to = target.peer.peerId;
          try {
            await target.conn.request({
              type: "PUT_CHUNK",
              header: { payloadId, index: i },
              body,
            }, { timeoutMs: 15_000 });
            copies++;
            counts[to] = (counts[to] ?? 0) + 1;
            log.record("chunk.pushed", { to, payloadId, index: i });
          } catch (err) {
            log.record("replicate.fail", { to, payloadId, index: i, message: String(err) });
          }
        }
        if (copies < replicas) under++;
        onProgress?.({
          type: "replicated",
          index: i,
          copies,
          done: ++done,
          chunks: m.chunks.length,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PUSH_WORKERS, queue.length) }, worker));
    log.record("replicate.done", { payloadId, targets: counts, underReplicated: under });
    return { replicas: counts, underReplicated: under };
  }
}
