/**
 * The chunk store's files on disk and the room they may take: `ChunkFiles` owns
 * `<dir>/chunks/<hh>/<sha256 hex>` (one file per distinct chunk) and `<dir>/tmp/`, and
 * knows nothing of payloads or manifests, which `ChunkStore` keeps.
 *
 * Every file is written to a unique temporary in `tmp/` and renamed into place, so a
 * reader never sees half a file; a chunk's file is written once even when several
 * calls race to write it. The size of each chunk file known to be in place is kept in
 * memory, and its bytes are what the capacity counts.
 *
 * **Capacity.** The files take at most `maxBytes` (`--max-store`); without it, 10 %
 * of the disk is kept free (`DISK_FREE_SHARE`), reading the disk's size and free space
 * with node:fs `statfs` (Deno has no `statfs` of its own) at most once every 2 s. A
 * write that would go over is refused with `TooLargeError` `store_full` (413) before
 * anything is written; `room()` says how much more fits, which is what a peer checks
 * before it agrees to hold a payload another peer offers. The bytes counted are those
 * of the chunk files known to be in place (found by `stat()`, or written by this
 * process) and of those being written.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { TooLargeError } from "../proto/errors.ts";
import type { BufferPool } from "../proto/bytes.ts";

/** Share of its disk the store leaves free when it has no `maxBytes`: 10 %. */
export const DISK_FREE_SHARE = 0.1;
/** How long a reading of the disk's free space is used before it is read again. */
const DISK_READ_MS = 2000;
/** How many chunk files `stat()` looks at together. */
const STAT_BATCH = 64;

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

/** Options of `new ChunkFiles()`: the capacity, and how the disk is read. */
export interface ChunkFilesOptions {
  /** Most bytes of chunk files held; default: what keeps `DISK_FREE_SHARE` of the disk free. */
  maxBytes?: number;
  /** Reads the disk's size and free space (default: node:fs `statfs` of the store's directory). */
  disk?: (dir: string) => DiskSpace;
  /** The clock that times disk readings, in ms (default: `Date.now`). */
  now?: () => number;
}

/**
 * The content-addressed chunk files of a store directory and their capacity.
 * `prepare()` readies the directory, `stat()` learns which chunk files are already in
 * place, `store()` writes one (refusing with `store_full` when it would not fit),
 * `read()` reads one back, `remove()` deletes one, and `writeAtomic()` writes any other
 * file of the store through `tmp/`. `size()`, `usedBytes`, `capacity()` and `room()`
 * report what is held and what still fits.
 *
 * @example Store a chunk under a limit of 4 bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChunkFiles } from "./chunk_files.ts";
 * import { TooLargeError } from "../proto/errors.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const files = new ChunkFiles(dir, { maxBytes: 4 });
 * await files.prepare();
 * await files.store("ab".repeat(32), new Uint8Array([1, 2, 3]));
 * assert.equal(files.size("ab".repeat(32)), 3);
 * assert.equal(files.room(), 1);
 * await assert.rejects(files.store("cd".repeat(32), new Uint8Array(2)), TooLargeError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ChunkFiles {
  /** The store's directory. */
  readonly dir: string;
  readonly #maxBytes: number | undefined;
  readonly #disk: (dir: string) => DiskSpace;
  readonly #now: () => number;
  /** The last reading of the disk, and the bytes held (or being written) then. */
  #diskRead: { at: number; space: DiskSpace; used: number } | undefined;
  /** Bytes of the chunk files in `#onDisk`. */
  #used = 0;
  /** Bytes of the chunk files being written now (counted against the capacity too). */
  #writing = 0;
  /** Chunk hash → byte size of its file, for the files known to be in place. */
  readonly #onDisk = new Map<string, number>();
  /** Chunk hash → the write or removal of its file under way. */
  readonly #busy = new Map<string, Promise<void>>();
  readonly #prefixes = new Set<string>();
  #tmpSeq = 0;

  /** Files in `dir`; `RangeError` when `maxBytes` is given and not a number >= 0. */
  constructor(dir: string, opts: ChunkFilesOptions = {}) {
    if (opts.maxBytes !== undefined && !(opts.maxBytes >= 0)) {
      throw new RangeError(`Cannot open chunk store: maxBytes '${opts.maxBytes}' is not >= 0`);
    }
    this.dir = dir;
    this.#maxBytes = opts.maxBytes;
    this.#disk = opts.disk ?? diskSpace;
    this.#now = opts.now ?? Date.now;
  }

  /** Creates `chunks/` and `tmp/`, empties `tmp/` and notes the `chunks/` subfolders. */
  async prepare(): Promise<void> {
    for (const sub of ["chunks", "tmp"]) {
      await Deno.mkdir(`${this.dir}/${sub}`, { recursive: true });
    }
    for await (const stale of Deno.readDir(`${this.dir}/tmp`)) {
      await Deno.remove(`${this.dir}/tmp/${stale.name}`, { recursive: true });
    }
    for await (const d of Deno.readDir(`${this.dir}/chunks`)) {
      if (d.isDirectory) this.#prefixes.add(d.name);
    }
  }

  /** Bytes of the chunk files held. */
  get usedBytes(): number {
    return this.#used;
  }

  /**
   * Most bytes of chunk files the store may hold: `maxBytes`, or else the bytes held
   * plus the disk's free space beyond `DISK_FREE_SHARE` of its size.
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

  /** The byte size of the chunk's file when it is known to be in place, else `undefined`. */
  size(hash: string): number | undefined {
    return this.#onDisk.get(hash);
  }

  /**
   * Puts a verified chunk's file in place, once even when several calls race; does
   * nothing when a file of that size is in place already. `TooLargeError` `store_full`
   * when it would not fit, before anything is written.
   */
  async store(hash: string, bytes: Uint8Array): Promise<void> {
    for (;;) {
      if (this.#onDisk.get(hash) === bytes.length) return;
      const busy = this.#busy.get(hash);
      if (!busy) break;
      await busy.catch(() => {});
    }
    const capacity = this.capacity();
    if (this.#used + this.#writing + bytes.length > capacity) {
      throw new TooLargeError(
        "store_full",
        `Cannot store a chunk of '${bytes.length}' bytes: the store holds '${this.#used}' of at most '${capacity}' bytes`,
      );
    }
    this.#writing += bytes.length;
    const op = (async () => {
      const prefix = hash.slice(0, 2);
      if (!this.#prefixes.has(prefix)) {
        await Deno.mkdir(`${this.dir}/chunks/${prefix}`, { recursive: true });
        this.#prefixes.add(prefix);
      }
      await this.writeAtomic(this.#chunkPath(hash), bytes);
      this.#setOnDisk(hash, bytes.length);
    })().finally(() => {
      this.#writing -= bytes.length;
      this.#busy.delete(hash);
    });
    this.#busy.set(hash, op);
    await op;
  }

  /**
   * Forgets the chunk's file at once (it no longer counts, `size()` is `undefined`),
   * then removes it, unless a fresh copy is being written over it.
   */
  async remove(hash: string): Promise<void> {
    this.#used -= this.#onDisk.get(hash) ?? 0;
    this.#onDisk.delete(hash);
    if (this.#busy.has(hash)) return;
    const op = Deno.remove(this.#chunkPath(hash)).catch(() => {})
      .finally(() => this.#busy.delete(hash));
    this.#busy.set(hash, op);
    await op;
  }

  /**
   * Reads the chunk's file, expecting `want` bytes: the result is shorter or longer
   * (by one byte) when the file is; `Deno.errors.NotFound` when it is missing.
   */
  async read(hash: string, want: number, pool?: BufferPool): Promise<Uint8Array> {
    return await readExact(this.#chunkPath(hash), want, pool);
  }

  /** Records the size of each of `hashes`' files that exists (not re-hashed). */
  async stat(hashes: Iterable<string>): Promise<void> {
    const todo = [...new Set(hashes)].filter((h) => !this.#onDisk.has(h) && !this.#busy.has(h));
    for (let i = 0; i < todo.length; i += STAT_BATCH) {
      await Promise.all(
        todo.slice(i, i + STAT_BATCH).map(async (hash) => {
          try {
            const st = await Deno.stat(this.#chunkPath(hash));
            if (st.isFile && !this.#busy.has(hash)) this.#setOnDisk(hash, st.size);
          } catch (err) {
            if (!(err instanceof Deno.errors.NotFound)) throw err;
          }
        }),
      );
    }
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

  #chunkPath(hash: string): string {
    return `${this.dir}/chunks/${hash.slice(0, 2)}/${hash}`;
  }

  /** Records the size of a chunk file in place, keeping `#used` in step. */
  #setOnDisk(hash: string, size: number): void {
    this.#used += size - (this.#onDisk.get(hash) ?? 0);
    this.#onDisk.set(hash, size);
  }
}

/**
 * Reads a file into a buffer of the expected length (plus one byte, to notice a
 * longer file): one of `pool`'s when it is given and large enough, else a fresh one.
 * A `Uint8Array` made here is accounted by V8, unlike the buffers of `Deno.readFile`,
 * so streaming many chunks keeps memory flat. A pooled buffer is given back here on
 * failure; on success the caller gives it back (`pool.release()`) once done.
 */
async function readExact(path: string, want: number, pool?: BufferPool): Promise<Uint8Array> {
  using file = await Deno.open(path);
  const buf = pool && want + 1 <= pool.size ? pool.take(want + 1) : new Uint8Array(want + 1);
  let fill = 0;
  try {
    while (fill < buf.length) {
      const n = await file.read(buf.subarray(fill));
      if (n === null) break;
      fill += n;
    }
  } catch (err) {
    pool?.release(buf);
    throw err;
  }
  return fill === want ? buf.subarray(0, want) : buf.subarray(0, fill);
}
