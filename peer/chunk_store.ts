/**
 * The peer's verified, content-addressed chunk store on disk.
 *
 * ```text
 * <dir>/manifests/<payloadId>.json   { size, chunkSize, chunks: [hex…], name?, addedAt, pinned? }
 * <dir>/data/<payloadId>             the payload's bytes at their offsets, then one bit per chunk held
 * <dir>/tmp/                         temporaries; emptied by `ChunkStore.open()`
 * ```
 *
 * Each payload's chunks live in one file of its own (`payload_files.ts`); a chunk that
 * two payloads (or two positions of one) share is written to each, and storing it for
 * one holds it for the others. Manifests are renamed into place from `tmp/`. Nothing
 * reaches `manifests/` or `data/` unverified: a manifest must hash to its payloadId and
 * a chunk to its manifest entry. That is why `open()` trusts what a payload file says
 * it holds without hashing it again (hashing GiBs would make start-up slow) and
 * `readChunk()`, which serves other peers, does not re-hash either (they verify).
 * `exportStream()`, which hands bytes to the user, re-hashes a chunk only when this
 * process has not verified it itself (on arrival or import). A chunk found short,
 * missing or corrupt stops being held, so it can be fetched again. A store of the
 * earlier layout (`chunks/<hh>/<sha256>`) is moved into payload files when opened.
 * Files are not fsynced (that would cost more than the network at 1 GiB/s). A chunk is
 * hashed and written on the thread that received it, while it is still in that core's
 * cache (`docs/architecture.md`, "Chunk arrival", says why not on a worker thread).
 *
 * **Linked files** (`linked_files.ts`, `_store_links.ts`): a payload's chunks may live in
 * an owner's file (a local `get -o` destination, a local `put`) instead of its payload file.
 * A payload is `pinned` when the owner put it or got it here (`pin()`); the others are
 * replicas held for other peers. `remove()` drops its manifest and its payload file.
 *
 * One directory belongs to one store in one process; an import that fails part-way
 * leaves nothing. `PayloadFiles` has the payload files and the capacity (`--max-store`,
 * or 10 % of the disk kept free); this module keeps manifests, shared chunks, holdings.
 *
 * @module
 */
import { IntegrityError } from "../proto/errors.ts";
import type { BufferPool } from "../proto/bytes.ts";
import { bitfieldLength, hasBit, setBit } from "../proto/bitfield.ts";
import {
  assertManifestShape,
  chunkLength,
  type Manifest,
  payloadIdOf,
  sha256Hex,
  verifyChunk,
  verifyManifest,
} from "../proto/manifest.ts";
import { migrateChunkFiles, PayloadFiles, type PayloadFilesOptions } from "./payload_files.ts";
import { type LinkedFile, LocalFileSource } from "./linked_files.ts";
import { StoreLinks } from "./_store_links.ts";
import {
  describe,
  manifestFileBytes,
  type ManifestMeta,
  manifestOfStream,
  readManifestDir,
  type StoredPayload,
} from "./_store_manifests.ts";

export { DISK_FREE_SHARE, type DiskSpace, diskSpace } from "./payload_files.ts";
export type { StoredPayload } from "./_store_manifests.ts";

/** Options of `ChunkStore.open()`: the capacity (see `PayloadFiles`), where warnings go. */
export interface ChunkStoreOptions extends Pick<PayloadFilesOptions, "maxBytes" | "disk"> {
  /** Called with a message for every damaged file skipped or removed. */
  warn?: (message: string) => void;
}

interface Entry {
  readonly payloadId: string;
  readonly manifest: Manifest;
  readonly bits: Uint8Array;
  held: number;
  readonly name?: string;
  readonly addedAt: number;
  pinned: boolean;
  /** Insertion order, to break `addedAt` ties in `list()`. */
  readonly seq: number;
  /** The owner's file that holds (some of) its chunks. */
  link?: LinkedFile;
}

/** One position of one payload where a chunk hash appears. */
interface Ref {
  readonly entry: Entry;
  readonly index: number;
  readonly length: number;
}

/**
 * A directory of verified payload manifests and content-addressed chunks, with an
 * in-memory bitfield per payload. `open()` loads it, `addManifest()` and
 * `writeChunk()` add to it (verifying first), `importStream()` adds a whole payload
 * from a byte stream holding about one chunk in memory, `readChunk()` serves chunks
 * and `exportStream()` streams a payload back out, re-verified. Listeners registered
 * with `onChunk()` hear of every chunk position that becomes held.
 */
export class ChunkStore {
  /** The store's directory. */
  readonly dir: string;
  readonly #warn: (message: string) => void;
  /** The payload files, what they hold and the capacity. */
  readonly #files: PayloadFiles;
  readonly #payloads = new Map<string, Entry>();
  /** Chunk hash → every payload position that has it. */
  readonly #refs = new Map<string, Ref[]>();
  /** payloadId → the `addManifest()` under way. */
  readonly #adding = new Map<string, Promise<boolean>>();
  readonly #listeners = new Set<(payloadId: string, index: number) => void>();
  /** Linked downloads under way, checked reads of linked files. */
  readonly #links: StoreLinks;
  /** Chunk hashes this process verified (on arrival or import): not hashed on export. */
  readonly #verified = new Set<string>();
  #seq = 0;
  #closed = false;

  private constructor(dir: string, opts: ChunkStoreOptions) {
    this.dir = dir;
    this.#warn = opts.warn ?? ((m) => console.warn(m));
    const { maxBytes, disk } = opts;
    this.#files = new PayloadFiles(dir, { maxBytes, disk });
    this.#links = new StoreLinks({
      hold: (e, i) => this.#hold(e as Entry, i),
      unhold: (e, i) => this.#unhold(e as Entry, i),
      readFile: (e, i) => this.#readFile(e as Entry, i),
      writeManifest: (e) => this.#writeManifest(e.payloadId, e.manifest, e as Entry),
      stored: (e, i) => this.#files.stored(e.payloadId, i),
      store: async (e, i, bytes) => {
        if (await this.#files.write(e.payloadId, i, bytes)) this.#hold(e as Entry, i);
      },
      current: (e) => this.#payloads.get(e.payloadId) === e,
      warn: (m) => this.#warn(m),
    });
  }

  /**
   * Opens the store in `dir`, creating its folders, emptying `tmp/`, loading every
   * manifest that hashes to the id in its file name (others are removed with a
   * warning; a damaged file never stops the store from opening) and what each payload
   * file holds.
   */
  static async open(dir: string, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const store = new ChunkStore(dir, opts);
    await store.#load();
    return store;
  }

  /** Bytes of the chunks held in payload files. */
  get usedBytes(): number {
    return this.#files.usedBytes;
  }

  /** Bytes of the payloads held in linked files (the owner's; not counted in `usedBytes`). */
  get linkedBytes(): number {
    let n = 0;
    for (const e of this.#payloads.values()) if (e.link) n += e.manifest.size;
    return n;
  }

  /** Whether a download of the payload goes to a linked file (it then needs no room here). */
  linking(payloadId: string): boolean {
    return this.#links.linking(payloadId, this.#payloads.get(payloadId));
  }

  /**
   * Makes `partial` (created fresh and exclusively) the file the payload's chunks go to,
   * preallocated, with what is held copied in (once the manifest is known). 409
   * `downloading` when the payload is being linked already.
   */
  async linkTo(payloadId: string, partial: string): Promise<void> {
    this.#assertOpen("link");
    await this.#links.start(payloadId, partial, this.#payloads.get(payloadId));
  }

  /** Completes a linked download: fills gaps, publishes it as `path`, records it. */
  async finishLink(payloadId: string, path: string, force: boolean): Promise<void> {
    await this.#links.finish(this.#entry(payloadId, "save"), path, force);
  }

  /** Gives up a linked download: its chunks go to the payload file when they fit (resume). */
  async abandonLink(payloadId: string): Promise<void> {
    await this.#links.abandon(payloadId, this.#payloads.get(payloadId));
  }

  /** Most bytes of chunks the store may hold (see `PayloadFiles.capacity()`). */
  capacity = (): number => this.#files.capacity();

  /** Bytes that still fit: `capacity()` less the bytes held and being written, never below 0. */
  room = (): number => this.#files.room();

  /** The payload's manifest, or `undefined` when unknown; only verified manifests are held. */
  getManifest(payloadId: string): Manifest | undefined {
    return this.#payloads.get(payloadId)?.manifest;
  }

  /** What the store holds of a payload, or `undefined` when it is unknown. */
  payload(payloadId: string): StoredPayload | undefined {
    const e = this.#payloads.get(payloadId);
    return e && describe(e);
  }

  /** Every known payload, newest first. */
  list(): StoredPayload[] {
    return [...this.#payloads.values()]
      .sort((a, b) => b.addedAt - a.addedAt || b.seq - a.seq)
      .map(describe);
  }

  /**
   * Adds a manifest: checks its shape (`TypeError`/`RangeError`, empty payloads are
   * refused) and that it hashes to `payloadId` (`IntegrityError`), writes it to disk
   * atomically, then holds the chunks already on disk (left by an earlier run, or
   * copied from another payload that shares them) and tells `onChunk` listeners.
   * Resolves `false` when the payload was already known.
   */
  async addManifest(
    payloadId: string,
    manifest: Manifest,
    meta: { name?: string; pinned?: boolean } = {},
  ): Promise<boolean> {
    this.#assertOpen("add manifest");
    assertManifestShape(payloadId, manifest);
    await verifyManifest(payloadId, manifest);
    for (;;) {
      if (this.#payloads.has(payloadId)) return false;
      const pending = this.#adding.get(payloadId);
      if (!pending) break;
      await pending.catch(() => {});
    }
    const op = this.#addVerified(payloadId, manifest, meta, Date.now(), true)
      .finally(() => this.#adding.delete(payloadId));
    this.#adding.set(payloadId, op);
    return await op;
  }

  /** Whether chunk `index` of the payload is held; `false` for an unknown payload. */
  has(payloadId: string, index: number): boolean {
    const e = this.#payloads.get(payloadId);
    return e !== undefined && Number.isInteger(index) && index >= 0 &&
      index < e.manifest.chunks.length && hasBit(e.bits, index);
  }

  /** A copy of the payload's bitfield (MSB-first); `RangeError` for an unknown payload. */
  have(payloadId: string): Uint8Array {
    return this.#entry(payloadId, "read bitfield").bits.slice();
  }

  /** The chunk indices not held yet, ascending; `RangeError` for an unknown payload. */
  missing(payloadId: string): number[] {
    const e = this.#entry(payloadId, "list missing chunks");
    const out: number[] = [];
    for (let i = 0; i < e.manifest.chunks.length; i++) if (!hasBit(e.bits, i)) out.push(i);
    return out;
  }

  /**
   * Reads a held chunk for serving, without hashing it again (see the module notes).
   * `RangeError` when the payload is unknown or the chunk is not held; `IntegrityError`
   * when its file turns out to be missing or of the wrong size, after which the chunk
   * is no longer held. `pool`: read into one of its buffers, which the caller gives back.
   */
  async readChunk(payloadId: string, index: number, pool?: BufferPool): Promise<Uint8Array> {
    const e = this.#entry(payloadId, "read chunk");
    if (!this.has(payloadId, index)) {
      throw new RangeError(`Cannot read chunk '${index}' of payload '${payloadId}': not held`);
    }
    return await this.#readFile(e, index, pool);
  }

  /**
   * Verifies `bytes` as chunk `index` of the payload (`IntegrityError`, nothing is
   * written) and stores them. Resolves `true` when this call made the chunk held,
   * `false` when it already was (also for the loser of two concurrent writes of the
   * same chunk, so listeners hear of each chunk once). `RangeError` for an unknown
   * payload or a bad index.
   */
  async writeChunk(payloadId: string, index: number, bytes: Uint8Array): Promise<boolean> {
    this.#assertOpen("write chunk");
    const e = this.#entry(payloadId, "write chunk");
    await verifyChunk(e.manifest, index, bytes);
    if (e.link?.writing) {
      if (e.link.has(index)) return false;
      await e.link.write(index, bytes);
      return this.#hold(e, index);
    }
    if (hasBit(e.bits, index)) return false;
    const hash = e.manifest.chunks[index];
    const stored = await this.#files.write(payloadId, index, bytes);
    this.#verified.add(hash);
    const mine = stored && this.#hold(e, index);
    await this.#fill(hash, bytes);
    return mine;
  }

  /**
   * Stores a whole payload read from `source`, holding about one chunk in memory: each
   * chunk is hashed and written under its hash at once, then the manifest is built
   * from the hashes and added, and `onChunk` listeners hear of every chunk. `created`
   * is `false` when the payload was already known. Throws `RangeError` for empty input.
   */
  async importStream(
    source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
    meta: { name?: string; pinned?: boolean } = {},
  ): Promise<{ payloadId: string; manifest: Manifest; created: boolean }> {
    this.#assertOpen("import");
    const local = source instanceof LocalFileSource ? source : undefined;
    // Written where the payload's file will be, once its id is known.
    const imp = local ? undefined : await this.#files.startImport();
    try {
      const manifest = await manifestOfStream(source, (chunk, hash) => {
        imp?.write(chunk);
        this.#verified.add(hash);
      });
      const payloadId = await payloadIdOf(manifest);
      if (local) await local.assertUnchanged(manifest.size);
      const created = await this.addManifest(payloadId, manifest, meta);
      if (!created && meta.pinned) await this.pin(payloadId);
      // Already known: the chunks just stored may fill positions it lacked.
      const e = this.#payloads.get(payloadId)!;
      if (imp) { for (const i of await this.#files.adopt(payloadId, imp)) this.#hold(e, i); }
      if (local && !e.link?.writing) {
        this.#links.linkWhole(e, local.record);
        await this.#writeManifest(payloadId, e.manifest, e);
      }
      for (const hash of new Set(manifest.chunks)) await this.#fill(hash);
      return { payloadId, manifest: e.manifest, created };
    } finally {
      await imp?.abort();
    }
  }

  /**
   * The payload's bytes in order as a stream, reading one chunk at a time and hashing
   * those this process has not verified (see the module notes). The stream errors with `IntegrityError` when a chunk is not held
   * or its file does not match the manifest (such a file is removed and the chunk no
   * longer held). Throws `RangeError` at once for an unknown payload.
   */
  exportStream(payloadId: string): ReadableStream<Uint8Array> {
    const e = this.#entry(payloadId, "export");
    const n = e.manifest.chunks.length;
    let index = 0;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const i = index++;
        if (!hasBit(e.bits, i)) {
          throw new IntegrityError(`Cannot export payload '${payloadId}': chunk '${i}' is missing`);
        }
        const hash = e.manifest.chunks[i];
        // A linked file's chunks are hashed as they are read; a payload file's once.
        const checked = this.#verified.has(hash) || this.#fromLink(e, i);
        const bytes = await this.#readFile(e, i);
        const actual = checked ? hash : await sha256Hex(bytes);
        if (actual === hash) this.#verified.add(hash);
        else {
          await this.#forget(e, i);
          throw new IntegrityError(
            `Cannot export payload '${payloadId}': chunk '${i}' on disk hashes to '${actual}', ` +
              `expected '${e.manifest.chunks[i]}'; it is no longer held`,
          );
        }
        controller.enqueue(bytes);
        if (index === n) controller.close();
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Marks a payload as the owner's (put or got here), on disk too; `RangeError` for an
   * unknown payload. Does nothing when it is pinned already.
   */
  async pin(payloadId: string): Promise<void> {
    this.#assertOpen("pin");
    const e = this.#entry(payloadId, "pin");
    if (e.pinned) return;
    e.pinned = true;
    await this.#writeManifest(e.payloadId, e.manifest, e);
  }

  /**
   * Removes a payload: its manifest and its file. Resolves with the bytes of the
   * chunks its file held. `RangeError` for an unknown payload. The caller checks that
   * no download of it runs.
   */
  async remove(payloadId: string): Promise<number> {
    this.#assertOpen("remove");
    const e = this.#entry(payloadId, "remove");
    this.#payloads.delete(payloadId);
    await e.link?.close();
    await Deno.remove(`${this.dir}/manifests/${payloadId}.json`).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    for (const hash of new Set(e.manifest.chunks)) {
      const refs = (this.#refs.get(hash) ?? []).filter((r) => r.entry !== e);
      if (refs.length > 0) {
        this.#refs.set(hash, refs);
        continue;
      }
      this.#refs.delete(hash);
      this.#verified.delete(hash);
    }
    return await this.#files.remove(payloadId);
  }

  /**
   * Calls `listener` after every chunk position that becomes held: by `writeChunk()`,
   * by `importStream()` once its manifest is added, and by `addManifest()` for chunks
   * already on disk. A listener that throws is logged and ignored. Returns a function
   * that unsubscribes.
   */
  onChunk(listener: (payloadId: string, index: number) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Closes the store: later `addManifest()`, `writeChunk()` and `importStream()` calls
   * throw and listeners are dropped. Reads keep working. Idempotent; files are opened
   * and closed within a call.
   */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
  }

  #assertOpen(what: string): void {
    if (this.#closed) throw new Error(`Cannot ${what}: the chunk store is closed`);
  }

  #entry(payloadId: string, what: string): Entry {
    const e = this.#payloads.get(payloadId);
    if (!e) throw new RangeError(`Cannot ${what}: payload '${payloadId}' is not known`);
    return e;
  }

  /**
   * Writes the chunk `hash` to every position that has it and does not hold it yet
   * (other payloads, or twins in one), and holds them. The bytes are `bytes` (verified)
   * or read from a payload file that holds them; best effort: a position that does not
   * fit stays missing.
   */
  async #fill(hash: string, bytes?: Uint8Array): Promise<void> {
    const refs = this.#refs.get(hash) ?? [];
    const todo = refs.filter((r) =>
      !hasBit(r.entry.bits, r.index) && this.#payloads.get(r.entry.payloadId) === r.entry
    );
    const from = bytes || todo.length === 0
      ? undefined
      : refs.find((r) => this.#files.stored(r.entry.payloadId, r.index));
    bytes ??= from && await this.#readFile(from.entry, from.index).catch(() => undefined);
    for (const r of todo) {
      if (bytes?.length !== r.length) continue;
      const ok = await this.#files.write(r.entry.payloadId, r.index, bytes).catch(() => false);
      if (ok) this.#hold(r.entry, r.index);
    }
  }

  /** Un-holds position `index` (unless its linked file has it) and forgets it in the file. */
  async #forget(e: Entry, index: number): Promise<void> {
    if (!e.link?.has(index)) this.#unhold(e, index);
    this.#verified.delete(e.manifest.chunks[index]);
    await this.#files.drop(e.payloadId, index);
  }

  /** Marks position `index` held (when it was not) and tells listeners; whether it was not. */
  #hold(e: Entry, index: number): boolean {
    if (hasBit(e.bits, index)) return false;
    setBit(e.bits, index, true);
    e.held++;
    this.#emit(e.payloadId, index);
    return true;
  }

  /** Un-holds position `index`. */
  #unhold(e: Entry, index: number): void {
    if (!hasBit(e.bits, index)) return;
    setBit(e.bits, index, false);
    e.held--;
  }

  /** Whether chunk `index` is read from the payload's linked file (its payload file lacks it). */
  #fromLink(e: Entry, index: number): boolean {
    return e.link?.has(index) === true && !this.#files.stored(e.payloadId, index);
  }

  /** Reads chunk `index` of a payload: its payload file checking only the length, or the linked file. */
  async #readFile(e: Entry, index: number, pool?: BufferPool): Promise<Uint8Array> {
    const want = chunkLength(e.manifest.size, index, e.manifest.chunkSize);
    if (this.#fromLink(e, index)) return await this.#links.read(e, index, want);
    let bytes: Uint8Array;
    try {
      bytes = this.#files.read(e.payloadId, index, want, pool);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      await this.#forget(e, index);
      throw new IntegrityError(
        `Chunk '${index}' of payload '${e.payloadId}' vanished from disk; it is no longer held`,
        { cause: err },
      );
    }
    if (bytes.length !== want) {
      pool?.release(bytes);
      await this.#forget(e, index);
      throw new IntegrityError(
        `Chunk '${index}' of payload '${e.payloadId}' has '${bytes.length}' bytes on disk, ` +
          `expected '${want}'; it is no longer held`,
      );
    }
    return bytes;
  }

  #emit(payloadId: string, index: number): void {
    for (const listener of this.#listeners) {
      try {
        listener(payloadId, index);
      } catch (err) {
        this.#warn(`onChunk listener failed for chunk '${index}' of '${payloadId}': ${err}`);
      }
    }
  }

  /**
   * Registers a verified manifest: persists it when `persist`, reads which chunks its
   * payload file holds, holds those and tells listeners, then copies in the chunks
   * other payloads hold.
   */
  async #addVerified(
    payloadId: string,
    m: Manifest,
    meta: { name?: string; pinned?: boolean; linked?: ManifestMeta["linked"] },
    addedAt: number,
    persist: boolean,
  ): Promise<boolean> {
    const { name } = meta;
    const pinned = meta.pinned ?? false;
    const manifest: Manifest = Object.freeze({
      size: m.size,
      chunkSize: m.chunkSize,
      chunks: Object.freeze([...m.chunks]) as string[],
    });
    if (persist) await this.#writeManifest(payloadId, manifest, { name, addedAt, pinned });
    const { held, damaged } = await this.#files.open(payloadId, manifest);
    if (damaged) {
      this.#warn(
        `Chunk store: the file of payload '${payloadId}' had the wrong size and was removed`,
      );
    }
    const entry: Entry = {
      payloadId,
      manifest,
      bits: new Uint8Array(bitfieldLength(manifest.chunks.length)),
      held: 0,
      addedAt,
      pinned,
      seq: ++this.#seq,
      ...(name === undefined ? {} : { name }),
    };
    this.#payloads.set(payloadId, entry);
    manifest.chunks.forEach((hash, index) => {
      const ref = { entry, index, length: chunkLength(manifest.size, index, manifest.chunkSize) };
      const refs = this.#refs.get(hash);
      if (refs) refs.push(ref);
      else this.#refs.set(hash, [ref]);
    });
    for (const i of held) this.#hold(entry, i);
    for (const hash of new Set(manifest.chunks)) await this.#fill(hash);
    if (meta.linked) await this.#links.relink(entry, meta.linked);
    await this.#links.attach(entry);
    return true;
  }

  /** Writes a manifest file atomically, with its name, time, pin and published linked file. */
  async #writeManifest(
    payloadId: string,
    manifest: Manifest,
    meta: Omit<ManifestMeta, "linked"> & { link?: LinkedFile },
  ): Promise<void> {
    const linked = meta.link?.record;
    await this.#files.writeAtomic(
      `${this.dir}/manifests/${payloadId}.json`,
      manifestFileBytes(manifest, { ...meta, ...(linked ? { linked } : {}) }),
    );
  }

  async #load(): Promise<void> {
    await Deno.mkdir(`${this.dir}/manifests`, { recursive: true });
    await this.#files.prepare();
    const found = await readManifestDir(`${this.dir}/manifests`, this.#warn);
    await migrateChunkFiles(this.#files, found, this.#warn);
    for (const p of found) {
      await this.#addVerified(p.payloadId, p.manifest, p, p.addedAt, false);
    }
    const swept = await this.#files.sweep();
    if (swept) this.#warn(`Chunk store: removed ${swept} payload files without a manifest`);
  }
}
