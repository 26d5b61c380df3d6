/**
 * The chunk store's bytes on disk and the room they may take: `PayloadFiles` owns
 * `<dir>/data/<payloadId>` (one file per payload) and `<dir>/tmp/`, and knows nothing
 * of hashes, which `ChunkStore` checks before anything is written here.
 *
 * ```text
 * data/<payloadId>   the payload's bytes, chunk i at offset i × chunkSize (sparse until
 *                    written), then a trailer: one bit per chunk written (MSB-first)
 * ```
 *
 * **Why one file per payload.** A BitTorrent client's download is the file, and so is
 * this store's. One file per chunk cost a file creation, a rename and a directory
 * entry per MiB; on ext4, after files were deleted, creating new ones scans the
 * recently freed inodes (`__ext4_new_inode` → `recently_deleted`), which took 30–60 %
 * of a downloader's CPU in a 1 GiB download measured with `perf` on this machine. A
 * payload file is created once; a chunk is one positional write, then its trailer byte.
 *
 * **What a crash can leave.** Files are not fsynced (see `chunk_store.ts`). A chunk's
 * bit is written after its bytes, on the same handle; two writes racing on one trailer
 * byte may leave a bit unset on disk (that chunk is fetched again), never a bit set for
 * bytes that were not written by this process. Whatever the trailer claims after a
 * crash is checked like any chunk found at start-up: by size, and hashed on export.
 *
 * **Capacity.** The payload files take at most `maxBytes` (`--max-store`); without
 * it, 10 % of the disk is kept free (`DISK_FREE_SHARE`), reading the disk's size and
 * free space with node:fs `statfs` (Deno has no `statfs` of its own) at most once
 * every 2 s. A write that would go over is refused with `TooLargeError` `store_full`
 * (413) before anything is written; `room()` says how much more fits. The bytes counted
 * are those of the chunks held and of those being written (files are sparse).
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { TooLargeError } from "../proto/errors.ts";
import type { BufferPool } from "../proto/bytes.ts";
import { bitfieldLength, hasBit, setBit } from "../proto/bitfield.ts";
import { chunkLength, type Manifest } from "../proto/manifest.ts";
import { readAtSync, writeAtSync, writeInPieces } from "../lib/file_io.ts";

/** Share of its disk the store leaves free when it has no `maxBytes`: 10 %. */
export const DISK_FREE_SHARE = 0.1;
/** How long a reading of the disk's free space is used before it is read again. */
const DISK_READ_MS = 2000;

/** The size and free space of a disk, in bytes. */
export interface DiskSpace {
  total: number;
  available: number;
}

/** The disk that holds `dir`, by node:fs `statfs`. */
export function diskSpace(dir: string): DiskSpace {
  const s = statfsSync(dir);
  return { total: s.blocks * s.bsize, available: s.bavail * s.bsize };
}

/** Options of `new PayloadFiles()`: the capacity, and how the disk is read. */
export interface PayloadFilesOptions {
  /** Most bytes of chunks held; default: what keeps `DISK_FREE_SHARE` of the disk free. */
  maxBytes?: number;
  /** Reads the disk's size and free space (default: node:fs `statfs` of the store's directory). */
  disk?: (dir: string) => DiskSpace;
  /** The clock that times disk readings, in ms (default: `Date.now`). */
  now?: () => number;
}

/** One payload's file: its shape, which chunks it holds, and the writes under way. */
interface Slot {
  readonly id: string;
  readonly size: number;
  readonly chunkSize: number;
  readonly count: number;
  readonly bits: Uint8Array;
  bytes: number;
  /** The creation of the file (once). */
  ready?: Promise<void>;
  /** Chunk index → its write under way. */
  readonly busy: Map<number, Promise<boolean>>;
  /** An import being moved in: writes wait for it. */
  adopting?: Promise<unknown>;
  removed: boolean;
}

/**
 * The payload files of a store directory and their capacity. `prepare()` readies the
 * directory; `open()` registers a payload and reads which chunks its file holds;
 * `write()` puts one chunk in place (once, even when calls race; `store_full` when it
 * would not fit), `read()` reads one back, `drop()` forgets one found bad, `remove()`
 * deletes a payload's file; `startImport()` and `adopt()` take a whole payload written
 * before its id was known; `writeAtomic()` writes any other file of the store through
 * `tmp/`. `usedBytes`, `capacity()` and `room()` report what is held and what fits.
 *
 * @example Store a chunk of a 2-chunk payload under a limit of 4 bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { PayloadFiles } from "./payload_files.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const files = new PayloadFiles(dir, { maxBytes: 4 });
 * await files.prepare();
 * await files.open("p1", { size: 5, chunkSize: 3, chunks: ["a", "b"] });
 * assert.equal(await files.write("p1", 0, new Uint8Array([1, 2, 3])), true);
 * assert.equal(files.stored("p1", 0), true);
 * assert.equal(files.room(), 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PayloadFiles {
  /** The store's directory. */
  readonly dir: string;
  readonly #maxBytes: number | undefined;
  readonly #disk: (dir: string) => DiskSpace;
  readonly #now: () => number;
  /** The last reading of the disk, and the bytes held (or being written) then. */
  #diskRead: { at: number; space: DiskSpace; used: number } | undefined;
  /** Bytes of the chunks held. */
  #used = 0;
  /** Bytes being written now (counted against the capacity too). */
  #writing = 0;
  readonly #slots = new Map<string, Slot>();
  #tmpSeq = 0;

  /** Files in `dir`; `RangeError` when `maxBytes` is given and not a number >= 0. */
  constructor(dir: string, opts: PayloadFilesOptions = {}) {
    if (opts.maxBytes !== undefined && !(opts.maxBytes >= 0)) {
      throw new RangeError(`Cannot open chunk store: maxBytes '${opts.maxBytes}' is not >= 0`);
    }
    this.dir = dir;
    this.#maxBytes = opts.maxBytes;
    this.#disk = opts.disk ?? diskSpace;
    this.#now = opts.now ?? Date.now;
  }

  /** Creates `data/` and `tmp/` and empties `tmp/`. */
  async prepare(): Promise<void> {
    for (const sub of ["data", "tmp"]) {
      await Deno.mkdir(`${this.dir}/${sub}`, { recursive: true });
    }
    for await (const stale of Deno.readDir(`${this.dir}/tmp`)) {
      await Deno.remove(`${this.dir}/tmp/${stale.name}`, { recursive: true });
    }
  }

  /** Bytes of the chunks held. */
  get usedBytes(): number {
    return this.#used;
  }

  /**
   * Most bytes of chunks the store may hold: `maxBytes`, or else the bytes held plus
   * the disk's free space beyond `DISK_FREE_SHARE` of its size.
   */
  capacity(): number {
    if (this.#maxBytes !== undefined) return this.#maxBytes;
    const now = this.#now();
    if (!this.#diskRead || now - this.#diskRead.at >= DISK_READ_MS) {
      this.#diskRead = { at: now, space: this.#disk(this.dir), used: this.#used + this.#writing };
    }
    const { space: { total, available }, used } = this.#diskRead;
    return used + Math.max(0, available - Math.ceil(total * DISK_FREE_SHARE));
  }

  /** Bytes that still fit: `capacity()` less the bytes held and being written, never below 0. */
  room(): number {
    return Math.max(0, this.capacity() - this.#used - this.#writing);
  }

  /** The path of a payload's file. */
  path(payloadId: string): string {
    return `${this.dir}/data/${payloadId}`;
  }

  /**
   * Registers a payload and reads which chunks its file holds: a file whose size is not
   * the payload's plus its trailer is removed (returned in `damaged`). Resolves with the
   * indices held. Opening a payload open already changes nothing.
   */
  async open(payloadId: string, m: Manifest): Promise<{ held: number[]; damaged: boolean }> {
    if (this.#slots.has(payloadId)) {
      return { held: this.#heldOf(this.#slots.get(payloadId)!), damaged: false };
    }
    const count = m.chunks.length;
    const slot: Slot = {
      id: payloadId,
      size: m.size,
      chunkSize: m.chunkSize,
      count,
      bits: new Uint8Array(bitfieldLength(count)),
      bytes: 0,
      busy: new Map(),
      removed: false,
    };
    this.#slots.set(payloadId, slot);
    let damaged = false;
    try {
      using file = await Deno.open(this.path(payloadId));
      const st = await file.stat();
      if (st.size !== m.size + slot.bits.length) damaged = true;
      else {
        readAtSync(file, m.size, slot.bits);
        slot.ready = Promise.resolve();
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (damaged) await Deno.remove(this.path(payloadId)).catch(() => {});
    // Bits past the last chunk mean nothing.
    const spare = slot.bits.length * 8 - count;
    if (spare > 0) slot.bits[slot.bits.length - 1] &= 0xff << spare;
    const held = this.#heldOf(slot);
    for (const i of held) slot.bytes += chunkLength(m.size, i, m.chunkSize);
    this.#used += slot.bytes;
    return { held, damaged };
  }

  /** Whether chunk `index` of the payload is in its file. */
  stored(payloadId: string, index: number): boolean {
    const s = this.#slots.get(payloadId);
    return s !== undefined && hasBit(s.bits, index);
  }

  /** Bytes of the payload's chunks in its file (0 when unknown). */
  bytesOf(payloadId: string): number {
    return this.#slots.get(payloadId)?.bytes ?? 0;
  }

  /**
   * Writes verified `bytes` as chunk `index` and marks it held, once even when several
   * calls race; resolves `false` when it was held already (or the payload was removed
   * meanwhile). `TooLargeError` `store_full` when it would not fit, before anything is
   * written; `RangeError` for a payload not opened.
   */
  async write(payloadId: string, index: number, bytes: Uint8Array): Promise<boolean> {
    const s = this.#slot(payloadId);
    for (;;) {
      if (hasBit(s.bits, index) || s.removed) return false;
      const busy = s.busy.get(index) ?? s.adopting;
      if (!busy) break;
      await busy.catch(() => {});
    }
    this.#reserve(bytes.length);
    // Once the file exists, the write is synchronous (`lib/file_io.ts`): writes to one
    // file never overlap, so they do not contend for its inode lock.
    const op = (async () => {
      await (s.ready ??= this.#create(s).catch((err) => {
        s.ready = undefined;
        throw err;
      }));
      const path = this.path(payloadId);
      using file = Deno.openSync(path, { write: true });
      writeAtSync(file, index * s.chunkSize, bytes);
      if (s.removed) return false;
      setBit(s.bits, index, true);
      s.bytes += bytes.length;
      this.#used += bytes.length;
      writeTrailerByte(file, s, index);
      return true;
    })().finally(() => {
      this.#writing -= bytes.length;
      s.busy.delete(index);
    });
    s.busy.set(index, op);
    return await op;
  }

  /**
   * Reads chunk `index` (`want` bytes; fewer when the file is shorter):
   * `Deno.errors.NotFound` when the file is missing. `pool`: read into one of its
   * buffers when large enough; the caller gives it back (`pool.release()`).
   * Synchronous, like the read itself (`lib/file_io.ts`).
   */
  read(payloadId: string, index: number, want: number, pool?: BufferPool): Uint8Array {
    const s = this.#slot(payloadId);
    using file = Deno.openSync(this.path(payloadId));
    const buf = pool && want <= pool.size ? pool.take(want) : new Uint8Array(want);
    try {
      return buf.subarray(0, readAtSync(file, index * s.chunkSize, buf.subarray(0, want)));
    } catch (err) {
      pool?.release(buf);
      throw err;
    }
  }

  /** Forgets chunk `index` (found missing or bad): no longer held nor counted. */
  async drop(payloadId: string, index: number): Promise<void> {
    const s = this.#slots.get(payloadId);
    if (!s || !hasBit(s.bits, index)) return;
    const length = chunkLength(s.size, index, s.chunkSize);
    setBit(s.bits, index, false);
    s.bytes -= length;
    this.#used -= length;
    try {
      using file = await Deno.open(this.path(payloadId), { write: true });
      writeTrailerByte(file, s, index);
    } catch { /* the file is gone or unwritable: nothing is held from it anyway */ }
  }

  /** Deletes the payload's file once the writes under way end; resolves with the bytes it held. */
  async remove(payloadId: string): Promise<number> {
    const s = this.#slots.get(payloadId);
    if (!s) return 0;
    this.#slots.delete(payloadId);
    s.removed = true;
    this.#used -= s.bytes;
    await Promise.allSettled([...s.busy.values(), s.adopting]);
    await Deno.remove(this.path(payloadId)).catch(() => {});
    return s.bytes;
  }

  /**
   * A file in `tmp/` for a payload written before its id is known (an import): chunks
   * are appended with `write()`, counted against the capacity as they are; `adopt()`
   * moves it in, `abort()` deletes it.
   */
  async startImport(): Promise<ImportFile> {
    const path = `${this.dir}/tmp/import-${Deno.pid}-${++this.#tmpSeq}-${crypto.randomUUID()}`;
    const file = await Deno.open(path, { write: true, read: true, createNew: true });
    return new ImportFile(path, file, {
      reserve: (n) => this.#reserve(n),
      release: (n) => void (this.#writing -= n),
    });
  }

  /**
   * Makes an import the payload's file (opened with `open()`, same size): moved in
   * whole when the payload holds nothing yet, else the chunks it lacks are copied.
   * Resolves with the indices newly held. The import is closed and gone afterwards.
   */
  async adopt(payloadId: string, imp: ImportFile): Promise<number[]> {
    const s = this.#slot(payloadId);
    const before = new Set(this.#heldOf(s));
    try {
      if (imp.size !== s.size) {
        throw new RangeError(
          `Cannot adopt an import of '${imp.size}' bytes into a payload of '${s.size}'`,
        );
      }
      if (s.bytes === 0 && s.busy.size === 0 && !s.adopting && !s.removed) {
        const move = (async () => {
          const bits = new Uint8Array(s.bits.length).fill(0xff);
          const spare = bits.length * 8 - s.count;
          if (spare > 0) bits[bits.length - 1] &= 0xff << spare;
          imp.finish(bits);
          await Deno.rename(imp.path, this.path(payloadId));
          s.bits.set(bits);
          s.bytes = s.size;
          this.#used += s.size;
          s.ready = Promise.resolve();
        })();
        s.adopting = move;
        try {
          await move;
        } finally {
          s.adopting = undefined;
        }
      } else {
        imp.unreserve();
        for (let i = 0; i < s.count; i++) {
          if (hasBit(s.bits, i)) continue;
          await this.write(
            payloadId,
            i,
            imp.read(i * s.chunkSize, chunkLength(s.size, i, s.chunkSize)),
          );
        }
      }
    } finally {
      await imp.abort();
    }
    return this.#heldOf(s).filter((i) => !before.has(i));
  }

  /** Deletes the files of payloads not opened (their manifest is gone); how many. */
  async sweep(): Promise<number> {
    let n = 0;
    for await (const f of Deno.readDir(`${this.dir}/data`)) {
      if (this.#slots.has(f.name)) continue;
      await Deno.remove(`${this.dir}/data/${f.name}`, { recursive: true }).catch(() => {});
      n++;
    }
    return n;
  }

  /** Writes `bytes` to a fresh temporary in `tmp/` and renames it to `path`. */
  async writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${this.dir}/tmp/${Deno.pid}-${++this.#tmpSeq}-${crypto.randomUUID()}`;
    try {
      await Deno.writeFile(tmp, bytes, { createNew: true });
      await Deno.rename(tmp, path);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
  }

  /** Counts `n` bytes as being written; `store_full` when they would not fit. */
  #reserve(n: number): void {
    const capacity = this.capacity();
    if (this.#used + this.#writing + n > capacity) {
      throw new TooLargeError(
        "store_full",
        `Cannot store a chunk of '${n}' bytes: the store holds '${this.#used}' of at most '${capacity}' bytes`,
      );
    }
    this.#writing += n;
  }

  #slot(payloadId: string): Slot {
    const s = this.#slots.get(payloadId);
    if (!s) throw new RangeError(`Cannot use the file of payload '${payloadId}': not opened`);
    return s;
  }

  #heldOf(s: Slot): number[] {
    const out: number[] = [];
    for (let i = 0; i < s.count; i++) if (hasBit(s.bits, i)) out.push(i);
    return out;
  }

  /** Creates the payload's file: sparse, the payload's size plus an empty trailer. */
  async #create(s: Slot): Promise<void> {
    using file = await Deno.open(this.path(s.id), { write: true, create: true });
    await file.truncate(s.size + s.bits.length);
  }
}

/**
 * Moves a store of the earlier layout (`chunks/<hh>/<sha256>`, one file per chunk) into
 * payload files: each chunk's file of the right length is copied to every position that
 * has it, then `chunks/` is removed (kept, with a warning, when a copy failed).
 * Nothing to do without `chunks/`.
 */
export async function migrateChunkFiles(
  files: PayloadFiles,
  payloads: { payloadId: string; manifest: Manifest }[],
  warn: (message: string) => void,
): Promise<void> {
  const legacy = `${files.dir}/chunks`;
  if (!(await Deno.stat(legacy).catch(() => undefined))?.isDirectory) return;
  let moved = 0;
  let failed = 0;
  for (const { payloadId, manifest: m } of payloads) {
    await files.open(payloadId, m);
    for (let i = 0; i < m.chunks.length; i++) {
      if (files.stored(payloadId, i)) continue;
      const hash = m.chunks[i];
      const bytes = await Deno.readFile(`${legacy}/${hash.slice(0, 2)}/${hash}`)
        .catch(() => undefined);
      if (bytes?.length !== chunkLength(m.size, i, m.chunkSize)) continue;
      try {
        if (await files.write(payloadId, i, bytes)) moved++;
      } catch {
        failed++;
      }
    }
  }
  if (failed === 0) await Deno.remove(legacy, { recursive: true });
  warn(
    `Chunk store: moved ${moved} chunks from one file per chunk to one file per payload` +
      (failed ? `; ${failed} did not fit and stay in '${legacy}'` : ""),
  );
}

/** An import's file in `tmp/` (see `PayloadFiles.startImport()`). */
export class ImportFile {
  readonly path: string;
  #file: Deno.FsFile | undefined;
  #size = 0;
  #reserved = 0;
  readonly #budget: { reserve(n: number): void; release(n: number): void };

  constructor(
    path: string,
    file: Deno.FsFile,
    budget: { reserve(n: number): void; release(n: number): void },
  ) {
    this.path = path;
    this.#file = file;
    this.#budget = budget;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Appends a chunk; `store_full` when it would not fit. */
  write(bytes: Uint8Array): void {
    this.#budget.reserve(bytes.length);
    this.#reserved += bytes.length;
    writeInPieces(this.#open(), bytes);
    this.#size += bytes.length;
  }

  /** Reads `length` bytes at `offset` of what was written. */
  read(offset: number, length: number): Uint8Array {
    const buf = new Uint8Array(length);
    if (readAtSync(this.#open(), offset, buf) !== length) {
      throw new Error(`Import '${this.path}' is short`);
    }
    return buf;
  }

  /** Gives back the room its chunks took (they are about to be copied, counted again). */
  unreserve(): void {
    this.#budget.release(this.#reserved);
    this.#reserved = 0;
  }

  /** Appends the trailer and closes the file. */
  finish(trailer: Uint8Array): void {
    const file = this.#open();
    writeAtSync(file, this.#size, trailer);
    file.close();
    this.#file = undefined;
  }

  /** Closes and deletes the file (when still there), and gives back its room. */
  async abort(): Promise<void> {
    this.#file?.close();
    this.#file = undefined;
    this.#budget.release(this.#reserved);
    this.#reserved = 0;
    await Deno.remove(this.path).catch(() => {});
  }

  #open(): Deno.FsFile {
    if (!this.#file) throw new Error(`Import '${this.path}' is closed`);
    return this.#file;
  }
}

/** Writes the trailer byte that holds chunk `index`'s bit, as `s.bits` has it now. */
function writeTrailerByte(
  file: Deno.FsFile,
  s: { size: number; bits: Uint8Array },
  index: number,
): void {
  writeAtSync(file, s.size + (index >> 3), s.bits.subarray(index >> 3, (index >> 3) + 1));
}
