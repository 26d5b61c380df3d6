/**
 * The tracker's state in Deno KV: its peers (`peer_store.ts`, `["peer", …]` and
 * `["addr", …]`) and, here, its payloads. Key layout:
 *
 * ```text
 * ["payload", payloadId]      PayloadRow
 * ["manifest", payloadId, p]  page p of the chunk hashes, 1024 × 32 bytes at most
 * ["chunk", sha256, piece]    the bytes of one chunk, in pieces under 64 KiB
 * ["upload", id, index, piece] chunk bytes of an upload under way (see stageChunk())
 * ["have", payloadId, peerId] HaveRow: the chunk positions a peer announced
 * ["activity", id]            ActivityRecord (see activity.ts)
 * ```
 *
 * Chunks are stored by content hash, so two payloads sharing a chunk share its
 * bytes. Anything two writers can race on is changed with `atomic()` and checks.
 *
 * @module
 */
import { fromHex, toHex } from "../proto/ids.ts";
import { chunkLength, type Manifest, sha256Hex } from "../proto/manifest.ts";
import { IntegrityError } from "../proto/errors.ts";
import { staleRecord } from "./identity.ts";
import { mergeTags } from "./tags.ts";
import { ContentionError, MAX_RETRIES, type PeerRow, PeerStore } from "./peer_store.ts";

export {
  addrKey,
  ContentionError,
  type PeerRow,
  type PeerStoreOptions,
  type Registration,
} from "./peer_store.ts";

/** KV values must stay under 64 KiB: chunk bytes are stored in pieces of this size. */
export const PIECE_SIZE = 64_000;
/** Chunk hashes per manifest page (32 KiB). */
const PAGE_HASHES = 1024;
/** Pieces per atomic commit, keeping a commit well under KV's size limit. */
const PIECES_PER_COMMIT = 8;

/** A payload the tracker knows; `stored` means it holds every chunk's bytes. */
export interface PayloadRow {
  payloadId: string;
  size: number;
  chunkSize: number;
  chunks: number;
  name?: string;
  tags?: string[]; // given by its uploads (tags.ts), searched by GET /search
  createdAt: number;
  stored: boolean;
}

/** The chunk positions one peer announced for one payload. */
export interface HaveRow {
  peerId: string;
  bits: Uint8Array;
  count: number;
  updatedAt: number;
  /** When the peer signed this announcement (unix ms). */
  signedAt?: number;
}

/** Typed access to the tracker's KV database. */
export class TrackerStore extends PeerStore {
  /**
   * Loads the peer index into memory (`PeerStore`) and drops the uploads a stop cut
   * off.
   */
  async load(): Promise<void> {
    await this.discardUpload();
    await this.loadPeers();
  }

  /** Stores one chunk's bytes under its hash (idempotent). */
  async putChunk(hash: string, bytes: Uint8Array): Promise<void> {
    await this.#putPieces(["chunk", hash], bytes);
  }

  async #putPieces(prefix: Deno.KvKey, bytes: Uint8Array): Promise<void> {
    for (let off = 0, piece = 0; off < bytes.length || piece === 0;) {
      const op = this.kv.atomic();
      for (let k = 0; k < PIECES_PER_COMMIT && (off < bytes.length || piece === 0); k++) {
        op.set([...prefix, piece++], bytes.slice(off, off + PIECE_SIZE));
        off += PIECE_SIZE;
      }
      await op.commit();
    }
  }

  /**
   * Keeps chunk `index` of upload `uploadId` aside: an upload's bytes reach the chunk
   * keys only once it is accepted whole (`promoteUpload()`), and a refused or broken
   * upload is dropped with `discardUpload()`, so it leaves nothing behind.
   */
  async stageChunk(uploadId: string, index: number, bytes: Uint8Array): Promise<void> {
    await this.#putPieces(["upload", uploadId, index], bytes);
  }

  /** Moves an accepted upload's chunks to their hashes (a chunk already held is kept). */
  async promoteUpload(uploadId: string, chunks: string[]): Promise<void> {
    for (const [index, hash] of chunks.entries()) {
      if ((await this.kv.get(["chunk", hash, 0])).versionstamp !== null) continue;
      let op = this.kv.atomic();
      let n = 0;
      for await (const e of this.kv.list<Uint8Array>({ prefix: ["upload", uploadId, index] })) {
        op.set(["chunk", hash, e.key[3] as number], e.value);
        if (++n % PIECES_PER_COMMIT === 0) {
          await op.commit();
          op = this.kv.atomic();
        }
      }
      await op.commit();
    }
    await this.discardUpload(uploadId);
  }

  /** Drops what an upload kept aside (all uploads when `uploadId` is undefined). */
  async discardUpload(uploadId?: string): Promise<void> {
    const prefix = uploadId === undefined ? ["upload"] : ["upload", uploadId];
    let op = this.kv.atomic();
    let n = 0;
    for await (const e of this.kv.list({ prefix })) {
      op.delete(e.key);
      if (++n % 500 === 0) {
        await op.commit();
        op = this.kv.atomic();
      }
    }
    await op.commit();
  }

  /**
   * The bytes of chunk `index` of a payload, verified against the manifest's hash,
   * or null when the tracker does not hold them.
   */
  async getChunk(manifest: Manifest, index: number): Promise<Uint8Array | null> {
    const hash = manifest.chunks[index];
    const size = chunkLength(manifest.size, index, manifest.chunkSize);
    const out = new Uint8Array(size);
    let off = 0;
    for await (const e of this.kv.list<Uint8Array>({ prefix: ["chunk", hash] })) {
      if (off + e.value.length > size) break;
      out.set(e.value, off);
      off += e.value.length;
    }
    if (off !== size) return null;
    if (await sha256Hex(out) !== hash) {
      throw new IntegrityError(`Stored chunk '${index}' of hash '${hash}' is corrupt`);
    }
    return out;
  }

  /** A payload's row, or null. */
  async getPayload(payloadId: string): Promise<PayloadRow | null> {
    return (await this.kv.get<PayloadRow>(["payload", payloadId])).value;
  }

  /** A payload's manifest (its row must exist). */
  async getManifest(row: PayloadRow): Promise<Manifest> {
    const chunks: string[] = [];
    for await (const e of this.kv.list<Uint8Array>({ prefix: ["manifest", row.payloadId] })) {
      for (let i = 0; i < e.value.length; i += 32) chunks.push(toHex(e.value.subarray(i, i + 32)));
    }
    return { size: row.size, chunkSize: row.chunkSize, chunks };
  }

  /**
   * Saves a payload whose manifest was verified against its id. Its manifest pages
   * are written first, then the row and the activity record in one commit, so a
   * payload is visible only once it is whole. Returns whether it was new; a known one
   * becomes `stored` when this save brings its bytes, and gains its new tags. */
  async savePayload(
    payloadId: string,
    manifest: Manifest,
    meta: { name?: string; tags?: string[]; stored: boolean },
    activityType: string,
  ): Promise<{ row: PayloadRow; created: boolean }> {
    const existing = await this.kv.get<PayloadRow>(["payload", payloadId]);
    if (existing.value === null) {
      for (let p = 0; p * PAGE_HASHES < manifest.chunks.length; p += 8) {
        const op = this.kv.atomic();
        for (let q = p; q < p + 8 && q * PAGE_HASHES < manifest.chunks.length; q++) {
          const hashes = manifest.chunks.slice(q * PAGE_HASHES, (q + 1) * PAGE_HASHES);
          const page = new Uint8Array(hashes.length * 32);
          hashes.forEach((h, i) => page.set(fromHex(h), i * 32));
          op.set(["manifest", payloadId, q], page);
        }
        await op.commit();
      }
    }
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const e = attempt === 0 ? existing : await this.kv.get<PayloadRow>(["payload", payloadId]);
      const created = e.value === null;
      const tags = mergeTags(e.value?.tags, meta.tags);
      if (!created && (e.value!.stored || !meta.stored) && !tags) {
        this.activity.record(activityType, { payloadId, size: e.value!.size, created });
        return { row: e.value!, created };
      }
      const row: PayloadRow = created
        ? {
          payloadId,
          size: manifest.size,
          chunkSize: manifest.chunkSize,
          chunks: manifest.chunks.length,
          ...(meta.name ? { name: meta.name } : {}),
          ...(tags ? { tags } : {}),
          createdAt: this.clock(),
          stored: meta.stored,
        }
        : { ...e.value!, stored: e.value!.stored || meta.stored, ...(tags ? { tags } : {}) };
      const op = this.kv.atomic().check(e).set(e.key, row);
      const rec = this.activity.stage(op, activityType, {
        payloadId,
        size: row.size,
        chunks: row.chunks,
        created,
        ...(row.name ? { name: row.name } : {}),
      });
      if ((await op.commit()).ok) {
        this.activity.committed(rec);
        return { row, created };
      }
    }
    throw new ContentionError(`Cannot save payload '${payloadId}': too many concurrent writes`);
  }

  /** One page of payloads in id order; `cursor` continues, null at the end. */
  async listPayloads(
    limit: number,
    cursor?: string,
  ): Promise<{ rows: PayloadRow[]; cursor: string | null }> {
    const iter = this.kv.list<PayloadRow>({ prefix: ["payload"] }, { limit, cursor });
    const rows: PayloadRow[] = await Array.fromAsync(iter, (e) => e.value);
    return { rows, cursor: rows.length === limit && iter.cursor ? iter.cursor : null };
  }

  /**
   * Records the chunk positions a peer holds. A signed announcement must be later
   * than the one stored (`409 stale_record`), so an old one is never played again.
   */
  async setHave(
    payloadId: string,
    peerId: string,
    bits: Uint8Array,
    count: number,
    signedAt?: number,
  ): Promise<void> {
    const key = ["have", payloadId, peerId];
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const prev = await this.kv.get<HaveRow>(key);
      const last = prev.value?.signedAt;
      if (signedAt !== undefined && last !== undefined && signedAt <= last) {
        throw staleRecord(`announcement of '${peerId}'`, signedAt, last);
      }
      const row: HaveRow = {
        peerId,
        bits,
        count,
        updatedAt: this.clock(),
        ...(signedAt !== undefined ? { signedAt } : {}),
      };
      const op = this.kv.atomic().check(prev).set(key, row);
      const rec = this.activity.stage(op, "payload.have", { payloadId, peerId, count });
      if ((await op.commit()).ok) {
        this.activity.committed(rec);
        return;
      }
    }
    throw new ContentionError(`Cannot record announcement of '${peerId}': too many writes`);
  }

  /** The announced positions of a payload's live holders. */
  async listHaves(payloadId: string): Promise<{ peer: PeerRow; have: HaveRow }[]> {
    const out: { peer: PeerRow; have: HaveRow }[] = [];
    for await (const e of this.kv.list<HaveRow>({ prefix: ["have", payloadId] })) {
      const peer = await this.getPeer(e.value.peerId);
      if (peer) out.push({ peer, have: e.value });
    }
    return out;
  }

  /** Counts for metrics: live peers, payloads, and bytes of the payloads stored here. */
  async stats(): Promise<{ livePeers: number; payloads: number; storedBytes: number }> {
    const livePeers = this.livePeers();
    let payloads = 0;
    let storedBytes = 0;
    for await (const e of this.kv.list<PayloadRow>({ prefix: ["payload"] })) {
      payloads++;
      if (e.value.stored) storedBytes += e.value.size;
    }
    return { livePeers, payloads, storedBytes };
  }
}
