/**
 * Replication: `put()` stores a payload from a stream, has it announced, and pushes
 * each chunk (PUT_CHUNK) to `replicas` other peers chosen per chunk by rendezvous
 * (highest random weight) hashing, so copies spread evenly and losing one peer loses
 * no chunk. `rendezvous()` is the score both this and the spreading of tracker
 * uploads rank peers by.
 *
 * A push goes only to a peer whose link proved its id and that agreed to hold the
 * payload (an offer: HAVE? with `offer`, see `request_handler.ts`); a replica counts
 * only when such a peer holds it, and is spot-checked at the end.
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
import { connectAs, type KnownDialer, type PeerTable } from "./peer_table.ts";
import type { PutProgress, PutResult } from "../proto/control.ts";
import { assertBitfield, hasBit } from "../proto/bitfield.ts";
import { errorMessage } from "../proto/errors.ts";
import { type Manifest, verifyChunk } from "../proto/manifest.ts";

/** Chunks pushed at once by `replicate()`. */
const PUSH_WORKERS = 4;
/**
 * Chunks fetched back from each replica target to check it holds what it said: a
 * target that kept only half of them passes one check half the time, four checks one
 * time in sixteen. Each costs a chunk's transfer, so not more.
 */
export const SPOT_CHECKS = 4;

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
  table: Pick<PeerTable, "dialable">;
  log: Pick<PeerLog, "record">;
  pool: KnownDialer;
  /** Copies pushed of every chunk `put()` stores. */
  replicas: number;
  /** Has a payload announced (to the tracker, when there is one). */
  announce: (payloadId: string) => void;
  /** Dialing and offering to every target must end within this many ms (default 10 s). */
  offerDeadlineMs?: number;
  /** One push must be answered within this many ms (default 15 s). */
  pushTimeoutMs?: number;
}

/** A peer that agreed to hold a payload: its proven id, its link and what it already holds. */
interface Target {
  readonly peerId: string;
  readonly conn: PeerConnection;
  readonly have: Uint8Array;
  /** Chunk positions it holds after the pushes, as far as it said. */
  readonly holds: Set<number>;
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
    const rep = await this.replicate(payloadId, this.#deps.replicas, onProgress, name);
    return { payloadId, size: manifest.size, chunks, created, ...rep };
  }

  /**
   * Pushes each chunk of a held payload to `replicas` distinct peers, chosen per chunk
   * by rendezvous hashing among the peers that agreed to hold it. Every dialable peer
   * is dialed and offered the payload at once, within one deadline for all (a silent
   * address costs that one wait, then its back-off); a peer counts once its link
   * proved the id the table has for it, and one link counts as one peer whatever ids
   * it claims. A peer that fails a push is passed over for the next in rank. At the
   * end each target is spot-checked: `SPOT_CHECKS` random chunks it reported holding
   * (all of them when it holds fewer) are fetched back, one at a time, and hashed; a
   * target that fails one loses every copy it was counted for, and
   * `underReplicated` counts the chunks left with fewer than `replicas` copies.
   */
  async replicate(
    payloadId: string,
    replicas: number,
    onProgress?: (e: PutProgress) => void,
    name?: string,
  ): Promise<ReplicateResult> {
    const { store, log } = this.#deps;
    const m = store.getManifest(payloadId);
    if (!m || replicas <= 0) return { replicas: {}, underReplicated: 0 };
    const targets = await this.#targets(payloadId, m, name);
    let done = 0;
    const queue = m.chunks.map((_, i) => i);
    const pushTimeoutMs = this.#deps.pushTimeoutMs ?? 15_000;
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        let copies = 0;
        let body: Uint8Array | undefined;
        for (const t of rankByRendezvous(payloadId, i, targets, (t) => t.peerId)) {
          if (copies >= replicas) break;
          if (hasBit(t.have, i)) {
            t.holds.add(i);
            copies++;
            continue;
          }
          try {
            body ??= await store.readChunk(payloadId, i);
            await t.conn.request(
              { type: "PUT_CHUNK", header: { payloadId, index: i }, body },
              { timeoutMs: pushTimeoutMs },
            );
            t.holds.add(i);
            copies++;
            log.record("chunk.pushed", { to: t.peerId, payloadId, index: i });
          } catch (err) {
            log.record("replicate.fail", {
              to: t.peerId,
              payloadId,
              index: i,
              message: errorMessage(err),
            });
          }
        }
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
    await Promise.all(targets.map((t) => this.#spotCheck(payloadId, m, t)));
    const counts: Record<string, number> = {};
    const copies = new Array<number>(m.chunks.length).fill(0);
    for (const t of targets) {
      if (t.holds.size > 0) counts[t.peerId] = t.holds.size;
      for (const i of t.holds) copies[i]++;
    }
    const under = copies.filter((n) => n < replicas).length;
    log.record("replicate.done", { payloadId, targets: counts, underReplicated: under });
    return { replicas: counts, underReplicated: under };
  }

  /**
   * Dials every dialable peer and offers it the payload, all at once, within one
   * deadline: the peers that agreed, one per link and per proven id.
   */
  async #targets(payloadId: string, m: Manifest, name?: string): Promise<Target[]> {
    const { table, pool, log } = this.#deps;
    const deadline = AbortSignal.timeout(this.#deps.offerDeadlineMs ?? 10_000);
    const offer = { size: m.size, chunkSize: m.chunkSize, ...(name ? { name } : {}) };
    const tries = table.dialable().map(async (p): Promise<Target | undefined> => {
      try {
        const conn = await abortable(
          connectAs(
            pool,
            p,
            (found) => log.record("replicate.mismatch", { expected: p.peerId, found }),
          ),
          deadline,
        );
        if (!conn) return undefined;
        const res = await conn.request({ type: "HAVE_REQ", header: { payloadId, offer } }, {
          signal: deadline,
        });
        assertBitfield(res.body, m.chunks.length);
        return { peerId: conn.remote.peerId, conn, have: res.body, holds: new Set() };
      } catch (err) {
        log.record("replicate.fail", { to: p.peerId, payloadId, message: errorMessage(err) });
        return undefined;
      }
    });
    const targets: Target[] = [];
    for (const t of await Promise.all(tries)) {
      // One link is one peer, whatever ids were made up for it.
      if (!t || targets.some((o) => o.conn === t.conn || o.peerId === t.peerId)) continue;
      targets.push(t);
    }
    return targets;
  }

  /**
   * Fetches back `SPOT_CHECKS` random chunks a target said it holds, one at a time;
   * on the first mismatch it holds nothing.
   */
  async #spotCheck(payloadId: string, m: Manifest, t: Target): Promise<void> {
    const held = [...t.holds];
    // A partial Fisher-Yates shuffle: the first SPOT_CHECKS are a random sample.
    const picks = Math.min(SPOT_CHECKS, held.length);
    for (let i = 0; i < picks; i++) {
      const j = i + Math.floor(Math.random() * (held.length - i));
      [held[i], held[j]] = [held[j], held[i]];
    }
    let index = -1;
    try {
      for (index of held.slice(0, picks)) {
        const res = await t.conn.request({ type: "GET_CHUNK", header: { payloadId, index } }, {
          timeoutMs: this.#deps.pushTimeoutMs ?? 15_000,
        });
        await verifyChunk(m, index, res.body);
      }
    } catch (err) {
      this.#deps.log.record("replicate.spot_check_failed", {
        peerId: t.peerId,
        payloadId,
        index,
        discounted: t.holds.size,
        message: errorMessage(err),
      });
      t.holds.clear();
    }
  }
}

/** `p`, or the signal's reason once it aborts (the work behind `p` goes on). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
