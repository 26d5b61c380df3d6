/**
 * The tracker's state in Deno KV. Key layout:
 *
 * ```text
 * ["peer", peerId]            PeerRow (expiresAt checked on every read)
 * ["addr", "host:port"]       peerId: the index that keeps (host, port) unique
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
import type { ActivityLog } from "./activity.ts";
import { fromHex, randomPeerId, toHex } from "../proto/ids.ts";
import { chunkLength, type Manifest, sha256Hex } from "../proto/manifest.ts";
import type { PeerPorts, RegisterPeerRequest } from "../proto/tracker.ts";
import { ForbiddenError, IntegrityError, P2pError } from "../proto/errors.ts";
import { staleRecord } from "./identity.ts";
import { hostPort } from "../lib/net_addr.ts";
import { mergeTags } from "./tags.ts";

/** KV values must stay under 64 KiB: chunk bytes are stored in pieces of this size. */
export const PIECE_SIZE = 64_000;
/** Chunk hashes per manifest page (32 KiB). */
const PAGE_HASHES = 1024;
/** Pieces per atomic commit, keeping a commit well under KV's size limit. */
const PIECES_PER_COMMIT = 8;
const MAX_RETRIES = 32;

/** A registered peer; times are ms since the epoch. */
export interface PeerRow {
  peerId: string;
  host: string;
  port: number;
  name?: string;
  ports?: PeerPorts;
  publicKey?: string;
  version?: string;
  /** The record as the peer signed it (rows of older trackers have none). */
  record?: RegisterPeerRequest;
  registeredAt: number;
  lastSeen: number;
  expiresAt: number;
}

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

/** A KV entry as read, or absent (`versionstamp` null): what an atomic check needs. */
type Entry<T> = { key: Deno.KvKey; value: T | null; versionstamp: string | null };

/** Raised when a write lost its race too many times in a row: `503 busy`, try again. */
export class ContentionError extends P2pError {
  constructor(message: string) {
    super("busy", message, { status: 503 });
  }
}

/** What `registerPeer()` is asked to store. */
export interface Registration {
  host: string;
  port: number;
  peerId?: string;
  name?: string;
  ports?: PeerPorts;
  publicKey?: string;
  version?: string;
  /** The signed record (its signature already checked); its `signedAt` must be the newest. */
  record?: RegisterPeerRequest;
  /**
   * Whether this registration may take the address over from another live peer: only
   * a caller at that host may (a peer restarted there with a new identity), so a
   * stranger cannot push a peer out of the list by claiming its address.
   */
  mayEvict?: boolean;
}

/** Typed access to the tracker's KV database. */
export class TrackerStore {
  readonly kv: Deno.Kv;
  readonly #clock: () => number;
  readonly #activity: ActivityLog;
  readonly #locks = new KeyedLock();
  /** The peer index, with the versionstamps last read or written. */
  readonly #peers = new Map<string, Deno.KvEntry<PeerRow>>();
  #peersVersion = 0;
  readonly #addrs = new Map<string, Deno.KvEntry<string>>();

  constructor(kv: Deno.Kv, activity: ActivityLog, clock: () => number = Date.now) {
    this.kv = kv;
    this.#activity = activity;
    this.#clock = clock;
  }

  /**
   * Loads the peer index into memory. Reads are served from it; every write still
   * checks the KV versionstamps it read, so a change made behind this process's back
   * fails the commit, reloads the keys and retries. Uploads a stop cut off are dropped.
   */
  async load(): Promise<void> {
    await this.discardUpload();
    this.#peers.clear();
    this.#peersVersion++;
    this.#addrs.clear();
    for await (const e of this.kv.list<PeerRow>({ prefix: ["peer"] })) {
      this.#peers.set(e.key[1] as string, e);
      this.#peersVersion++;
    }
    for await (const e of this.kv.list<string>({ prefix: ["addr"] })) {
      this.#addrs.set(e.key[1] as string, e);
    }
  }

  #live(row: PeerRow | null): row is PeerRow {
    return row !== null && row.expiresAt > this.#clock();
  }

  /** The cached entry, or on a miss what KV holds now (another writer may have added it). */
  async #peerEntry(peerId: string): Promise<Entry<PeerRow>> {
    const hit = this.#peers.get(peerId);
    if (hit) return hit;
    const e = await this.kv.get<PeerRow>(["peer", peerId]);
    if (e.versionstamp !== null) {
      this.#peers.set(peerId, e as Deno.KvEntry<PeerRow>);
      this.#peersVersion++;
    }
    return e;
  }

  /** The cached entry, or on a miss what KV holds now. */
  async #addrEntry(addr: string): Promise<Entry<string>> {
    const hit = this.#addrs.get(addr);
    if (hit) return hit;
    const e = await this.kv.get<string>(["addr", addr]);
    if (e.versionstamp !== null) this.#addrs.set(addr, e as Deno.KvEntry<string>);
    return e;
  }

  /** Re-reads index keys from KV after a commit lost to another writer. */
  async #reload(keys: Deno.KvKey[]): Promise<void> {
    this.#peersVersion++;
    for (let i = 0; i < keys.length; i += 10) {
      for (const e of await this.kv.getMany<unknown[]>(keys.slice(i, i + 10))) {
        const [kind, id] = e.key as [string, string];
        const cache = (kind === "peer" ? this.#peers : this.#addrs) as Map<string, Entry<unknown>>;
        if (e.versionstamp === null) cache.delete(id);
        else cache.set(id, e);
      }
    }
  }

  /**
   * Registers a peer or refreshes it. A (host, port) pair maps to one peerId only:
   * registering it again, however many callers race, refreshes the same entry.
   * A registration that names another peerId for a taken address takes it over when
   * `mayEvict`, and is refused (`403 address_taken`) otherwise. A signed record must be
   * later than the one stored (`409 stale_record`) and carry the same key (`403`).
   */
  registerPeer(reg: Registration, ttlMs: number): Promise<{ row: PeerRow; created: boolean }> {
    const addr = addrKey(reg.host, reg.port);
    // Registrations of one address queue up in this process, so racing callers do not
    // spin on failed commits; the atomic checks keep the rule across processes too.
    return this.#locks.run(addr, () => this.#register(addr, reg, ttlMs));
  }

  async #register(
    addr: string,
    reg: Registration,
    ttlMs: number,
  ): Promise<{ row: PeerRow; created: boolean }> {
    const expireIn = ttlMs * 2 + 60_000;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const now = this.#clock();
      const addrEntry = await this.#addrEntry(addr);
      const holder = addrEntry.value === null ? null : await this.#peerEntry(addrEntry.value);
      const holderLive = holder !== null && this.#live(holder.value);
      const peerId = reg.peerId ?? (holderLive ? holder.value!.peerId : randomPeerId());
      const target = await this.#peerEntry(peerId);
      const op = this.kv.atomic().check(addrEntry).check(target);
      const touched: Deno.KvKey[] = [addrEntry.key, target.key];
      if (holder) touched.push(holder.key);
      const prev = this.#live(target.value) ? target.value : null;
      const stored = target.value;
      if (stored?.publicKey !== undefined && reg.publicKey !== stored.publicKey) {
        throw new ForbiddenError(
          "key_mismatch",
          `Cannot register peer '${peerId}': it registered with another public key`,
        );
      }
      if (reg.record && stored?.record && reg.record.signedAt <= stored.record.signedAt) {
        throw staleRecord(
          `registration of '${peerId}'`,
          reg.record.signedAt,
          stored.record.signedAt,
        );
      }
      // The address belonged to another live peer: that entry goes.
      const evicted = holderLive && holder.value!.peerId !== peerId ? holder : null;
      if (evicted && reg.mayEvict === false) {
        throw new ForbiddenError(
          "address_taken",
          `Cannot register peer '${peerId}' at '${addr}': another live peer holds that ` +
            "address; only a caller at that host may take it over",
        );
      }
      if (evicted) {
        op.check(evicted).delete(evicted.key);
        touched.push(evicted.key);
      }
      // This peer moved from another address: its old index entry goes.
      let vacated: Entry<string> | null = null;
      if (prev && addrKey(prev.host, prev.port) !== addr) {
        const old = await this.#addrEntry(addrKey(prev.host, prev.port));
        if (old.value === peerId) {
          op.check(old).delete(old.key);
          vacated = old;
          touched.push(old.key);
        }
      }
      const row: PeerRow = {
        peerId,
        host: reg.host,
        port: reg.port,
        ...(reg.name !== undefined ? { name: reg.name } : {}),
        ...(reg.ports !== undefined ? { ports: reg.ports } : {}),
        ...(reg.publicKey !== undefined ? { publicKey: reg.publicKey } : {}),
        ...(reg.version !== undefined ? { version: reg.version } : {}),
        ...(reg.record !== undefined ? { record: reg.record } : {}),
        registeredAt: prev?.registeredAt ?? now,
        lastSeen: now,
        expiresAt: now + ttlMs,
      };
      const created = prev === null || addrKey(prev.host, prev.port) !== addr;
      op.set(target.key, row, { expireIn }).set(addrEntry.key, peerId, { expireIn });
      const rec = this.#activity.stage(op, created ? "peer.register" : "peer.heartbeat", {
        peerId,
        host: reg.host,
        port: reg.port,
        ...(reg.name ? { name: reg.name } : {}),
      });
      const res = await op.commit();
      if (res.ok) {
        this.#activity.committed(rec);
        this.#peersVersion++;
        if (evicted) this.#peers.delete(evicted.value!.peerId);
        if (vacated) this.#addrs.delete(vacated.key[1] as string);
        this.#peers.set(peerId, { key: target.key, value: row, versionstamp: res.versionstamp });
        this.#addrs.set(addr, {
          key: addrEntry.key,
          value: peerId,
          versionstamp: res.versionstamp,
        });
        return { row, created };
      }
      await this.#reload(touched);
    }
    throw new ContentionError(`Cannot register peer '${addr}': too many concurrent writes`);
  }

  /**
   * Changes whenever the peer index does: with `now()` and the listed rows' `expiresAt`,
   * what tells a cached listing from a stale one.
   */
  get peersVersion(): number {
    return this.#peersVersion;
  }

  /** The store's clock (ms since the epoch). */
  now(): number {
    return this.#clock();
  }

  /** A live peer by id, or null. */
  getPeer(peerId: string): Promise<PeerRow | null> {
    const row = this.#peers.get(peerId)?.value ?? null;
    return Promise.resolve(this.#live(row) ? row : null);
  }

  /** Every live peer, oldest registration first. */
  listPeers(): Promise<PeerRow[]> {
    const out: PeerRow[] = [];
    for (const e of this.#peers.values()) if (this.#live(e.value)) out.push(e.value);
    return Promise.resolve(out.sort((a, b) => a.registeredAt - b.registeredAt));
  }

  /**
   * Removes a live peer; false when there is none with that id. `allow` sees the row
   * first and may throw to refuse (a removal must be signed later than the record).
   */
  async removePeer(
    peerId: string,
    reason: "peer.remove" | "peer.expire",
    allow?: (row: PeerRow) => void,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const e = await this.#peerEntry(peerId);
      if (e.value === null) return false;
      if (reason === "peer.remove" && !this.#live(e.value)) return false;
      if (reason === "peer.expire" && this.#live(e.value)) return false;
      allow?.(e.value);
      const op = this.kv.atomic().check(e).delete(e.key);
      const addr = await this.#addrEntry(addrKey(e.value.host, e.value.port));
      const ownsAddr = addr.value === peerId;
      if (ownsAddr) op.check(addr).delete(addr.key);
      const rec = this.#activity.stage(op, reason, {
        peerId,
        host: e.value.host,
        port: e.value.port,
      });
      if ((await op.commit()).ok) {
        this.#activity.committed(rec);
        this.#peers.delete(peerId);
        this.#peersVersion++;
        if (ownsAddr) this.#addrs.delete(addr.key[1] as string);
        return true;
      }
      await this.#reload([e.key, addr.key]);
    }
    throw new ContentionError(`Cannot remove peer '${peerId}': too many concurrent writes`);
  }

  /** Removes every peer whose time ran out, with a `peer.expire` record each; returns how many. */
  async expirePeers(): Promise<number> {
    const now = this.#clock();
    let n = 0;
    const expired = [...this.#peers.values()].filter((e) => e.value.expiresAt <= now);
    for (const e of expired) {
      if (await this.removePeer(e.value.peerId, "peer.expire")) n++;
    }
    return n;
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
        this.#activity.record(activityType, { payloadId, size: e.value!.size, created });
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
          createdAt: this.#clock(),
          stored: meta.stored,
        }
        : { ...e.value!, stored: e.value!.stored || meta.stored, ...(tags ? { tags } : {}) };
      const op = this.kv.atomic().check(e).set(e.key, row);
      const rec = this.#activity.stage(op, activityType, {
        payloadId,
        size: row.size,
        chunks: row.chunks,
        created,
        ...(row.name ? { name: row.name } : {}),
      });
      if ((await op.commit()).ok) {
        this.#activity.committed(rec);
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
        updatedAt: this.#clock(),
        ...(signedAt !== undefined ? { signedAt } : {}),
      };
      const op = this.kv.atomic().check(prev).set(key, row);
      const rec = this.#activity.stage(op, "payload.have", { payloadId, peerId, count });
      if ((await op.commit()).ok) {
        this.#activity.committed(rec);
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
    const livePeers = (await this.listPeers()).length;
    let payloads = 0;
    let storedBytes = 0;
    for await (const e of this.kv.list<PayloadRow>({ prefix: ["payload"] })) {
      payloads++;
      if (e.value.stored) storedBytes += e.value.size;
    }
    return { livePeers, payloads, storedBytes };
  }
}

/** The unique-address key of a (host, port) pair. */
export function addrKey(host: string, port: number): string {
  return hostPort(host, port);
}

/** Runs async functions one at a time per key. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
