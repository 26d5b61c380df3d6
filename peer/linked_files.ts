/**
 * Linked files: a payload whose chunks live in one of the owner's own files instead of
 * the store's payload files, so that `p2p get -o FILE` and `p2p put FILE` on the peer's
 * machine leave each byte on disk once.
 *
 * **Why linking, not a copy.** The store's copy could be made with a reflink or
 * `copy_file_range` on the same file system, but on ext4 (this machine's, and the
 * common Linux default) there is no reflink and `copy_file_range` copies the bytes in
 * the kernel: they are written twice all the same. A linked file costs no second
 * write on any file system. What it costs instead: the file is the owner's and may
 * change, so every chunk read from it is checked (the file's size and mtime against
 * those recorded when it was linked, then the chunk's SHA-256), and a file that
 * changed or vanished stops being served (`LinkChangedError`).
 *
 * A download links to `FILE.p2p-partial`, created fresh and exclusively
 * (`createDestination()`: never through an existing file or a symlink at that name),
 * preallocated to the payload's size, and written at each chunk's offset as it is
 * verified (`LinkedFile.write()`, one positional write per chunk, in order of
 * arrival). Once complete it is published under its name (`publishDestination()`:
 * hard-linked, which fails rather than replace a file that appeared meanwhile, or
 * renamed over it with `force`) and only then recorded in the payload's manifest
 * (path, size, mtime): a crash before that leaves no linked record, so nothing half
 * written is ever held after a restart.
 *
 * The bytes of linked files are not the store's: they do not count against
 * `--max-store` (`ChunkStore.usedBytes`), and a download into a linked file needs no
 * room in the store. `ChunkStore.linkedBytes` reports them apart.
 *
 * @module
 */
import { IntegrityError, InvalidInputError, P2pError } from "../proto/errors.ts";
import { sha256Hex } from "../proto/manifest.ts";
import { hasBit, setBit } from "../proto/bitfield.ts";
import { readAtSync, writeAtSync } from "../lib/file_io.ts";

/** Suffix of the file a download is written to before it gets its name. */
export const PARTIAL_SUFFIX = ".p2p-partial";

/** What is recorded of a linked file: where, and what it looked like when linked. */
export interface LinkRecord {
  path: string;
  size: number;
  mtimeMs: number;
}

/** A linked file changed, vanished or holds a bad chunk: it is served no more. Code `integrity`. */
export class LinkChangedError extends IntegrityError {}

/** A destination that cannot be used (exists, is a folder, a symlink, not absolute). Status 409/400. */
export class DestinationRefusedError extends P2pError {
  constructor(code: string, message: string, status: 400 | 409 = 409) {
    super(code, message, { status });
  }
}

/** The kind of what is at `path` (not following a symlink), or undefined. */
export async function lstatKind(
  path: string,
): Promise<"dir" | "file" | "symlink" | "other" | undefined> {
  try {
    const info = await Deno.lstat(path);
    return info.isDirectory ? "dir" : info.isSymlink ? "symlink" : info.isFile ? "file" : "other";
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Checks a destination named by another process: an absolute, normalised path (no
 * `.`/`..` parts) whose folder exists, that is not a folder, and that is not there
 * already unless `force` (a symlink there counts as there). `DestinationRefusedError`
 * otherwise, with the same words as the client's own rules (`cli/destination.ts`).
 */
export async function checkDestination(path: string, force: boolean): Promise<void> {
  if (!path.startsWith("/") || path.split("/").some((p) => p === "." || p === "..")) {
    throw new DestinationRefusedError(
      "bad_path",
      `The destination '${path}' is not an absolute path`,
      400,
    );
  }
  const folder = path.slice(0, path.lastIndexOf("/")) || "/";
  if ((await Deno.stat(folder).catch(() => undefined))?.isDirectory !== true) {
    throw new DestinationRefusedError("no_folder", `The folder '${folder}' does not exist`);
  }
  const kind = await lstatKind(path);
  if (kind === "dir") throw new DestinationRefusedError("exists", `'${path}' is a folder`);
  if (kind !== undefined && !force) {
    throw new DestinationRefusedError(
      "exists",
      `'${path}' exists; add --force to replace it, or choose another -o`,
    );
  }
}

/**
 * Creates `path` fresh and exclusively (`createNew`, mode 644); a file or symlink
 * already at that name (a stale partial file) is removed first, never written
 * through. A folder there is refused.
 */
export async function createFresh(path: string): Promise<Deno.FsFile> {
  const open = () => Deno.open(path, { read: true, write: true, createNew: true, mode: 0o644 });
  try {
    return await open();
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  if (await lstatKind(path) === "dir") {
    throw new DestinationRefusedError("exists", `'${path}' is a folder; remove it first`);
  }
  // Removing a symlink removes the link, not its target.
  await Deno.remove(path);
  return await open();
}

/**
 * Gives `partial` its final name: without `force`, never over a file that appeared
 * meanwhile (`DestinationRefusedError` `exists`, naming the path as `shown`).
 */
export async function publishDestination(
  partial: string,
  path: string,
  force: boolean,
  shown = path,
): Promise<void> {
  if (force) return await Deno.rename(partial, path);
  try {
    await Deno.link(partial, path);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new DestinationRefusedError(
        "exists",
        `'${shown}' appeared meanwhile; add --force to replace it, or choose another -o`,
      );
    }
    // No hard links on this file system: rename, after one more check.
    if (await lstatKind(path) !== undefined) {
      throw new DestinationRefusedError("exists", `'${shown}' appeared meanwhile; add --force`);
    }
    return await Deno.rename(partial, path);
  }
  await Deno.remove(partial);
}

/**
 * One payload's linked file: which chunk positions it holds (`has()`), positional
 * writes while it is being filled (`write()`, serialised on one handle), and checked
 * reads (`read()`).
 */
export class LinkedFile {
  /** Where the file is now (its partial name while it is filled). */
  path: string;
  /** While this file is filled: the published linked file it does not replace. */
  previous?: LinkedFile;
  /** Positions held in the file (MSB-first bitfield). */
  readonly bits: Uint8Array;
  readonly #chunkSize: number;
  /** The size and mtime it had when linked; `undefined` while this process fills it. */
  #record: LinkRecord | undefined;
  /** The open handle while the file is filled. */
  #file: Deno.FsFile | undefined;
  /** The writes so far, one after the other. */
  #queue: Promise<void> = Promise.resolve();

  constructor(
    path: string,
    bits: Uint8Array,
    chunkSize: number,
    opts: { record?: LinkRecord; file?: Deno.FsFile },
  ) {
    this.path = path;
    this.bits = bits;
    this.#chunkSize = chunkSize;
    this.#record = opts.record;
    this.#file = opts.file;
  }

  /** What is recorded in the manifest, once the file is published. */
  get record(): LinkRecord | undefined {
    return this.#record;
  }

  /** Whether this process is still filling the file. */
  get writing(): boolean {
    return this.#file !== undefined;
  }

  /** Whether position `index` is in the file. */
  has(index: number): boolean {
    return hasBit(this.bits, index);
  }

  /** Marks position `index` held or not. */
  set(index: number, held: boolean): void {
    setBit(this.bits, index, held);
  }

  /** Writes verified `bytes` at chunk `index`'s offset and marks it held. */
  write(index: number, bytes: Uint8Array): Promise<void> {
    const file = this.#file;
    if (!file) return Promise.reject(new Error(`Cannot write '${this.path}': it is closed`));
    const offset = index * this.#chunkSize;
    const op = this.#queue.then(() => {
      writeAtSync(file, offset, bytes);
      this.set(index, true);
    });
    this.#queue = op.catch(() => undefined);
    return op;
  }

  /** Waits for the writes under way, then closes the handle. */
  async close(): Promise<void> {
    await this.#queue;
    this.#file?.close();
    this.#file = undefined;
  }

  /** Records the file's size and mtime as it is now (after it is published as `path`). */
  async seal(path: string): Promise<LinkRecord> {
    await this.close();
    const st = await Deno.stat(path);
    this.path = path;
    this.#record = { path, size: st.size, mtimeMs: st.mtime?.getTime() ?? 0 };
    return this.#record;
  }

  /**
   * Reads chunk `index` (`length` bytes) and checks it: the file must still have the
   * size and mtime recorded (`LinkChangedError` with `whole: true` when not: nothing of
   * it may be served) and the bytes must hash to `hash` (`LinkChangedError`: that
   * position is no longer held).
   */
  async read(index: number, length: number, hash: string): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    let fill = 0;
    try {
      using file = Deno.openSync(this.path);
      const st = file.statSync();
      const rec = this.#record;
      if (rec && (st.size !== rec.size || (st.mtime?.getTime() ?? 0) !== rec.mtimeMs)) {
        throw changed(this.path, "changed since it was linked");
      }
      fill = readAtSync(file, index * this.#chunkSize, buf);
    } catch (err) {
      if (err instanceof LinkChangedError) throw err;
      throw changed(this.path, `cannot be read (${(err as Error).message})`, err);
    }
    if (fill !== length) throw changed(this.path, "is shorter than when it was linked");
    if (await sha256Hex(buf) !== hash) {
      this.set(index, false);
      throw new LinkChangedError(
        `Chunk '${index}' in the linked file '${this.path}' does not match its hash; it is ` +
          "no longer served from there",
      );
    }
    return buf;
  }
}

/** A `LinkChangedError` that un-links the whole file. */
function changed(path: string, what: string, cause?: unknown): LinkChangedError {
  const err = new LinkChangedError(
    `The linked file '${path}' ${what}; its chunks are no longer served from it`,
    cause === undefined ? undefined : { cause },
  );
  (err as LinkChangedError & { whole: boolean }).whole = true;
  return err;
}

/** Whether a `LinkChangedError` concerns the whole file (it changed or vanished). */
export function wholeFileChanged(err: unknown): boolean {
  return err instanceof LinkChangedError && (err as { whole?: boolean }).whole === true;
}

/**
 * A local file as the input of `ChunkStore.importStream()`: its bytes as a stream
 * (read in 4 MiB reads), and its path and stat, so that the store links the payload to
 * the file instead of writing a payload file. `InvalidInputError` for a path that is not
 * absolute or not a regular file (a symlink is followed: the owner names the file).
 */
export class LocalFileSource extends ReadableStream<Uint8Array> {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;

  private constructor(file: Deno.FsFile, path: string, st: Deno.FileInfo) {
    const READ = 4 * 1024 * 1024;
    super({
      pull: async (controller) => {
        const buf = new Uint8Array(READ);
        let fill = 0;
        while (fill < READ) {
          const n = await file.read(buf.subarray(fill));
          if (n === null) break;
          fill += n;
        }
        if (fill > 0) controller.enqueue(buf.subarray(0, fill));
        if (fill < READ) {
          file.close();
          controller.close();
        }
      },
      cancel: () => file.close(),
    }, { highWaterMark: 1 });
    this.path = path;
    this.size = st.size;
    this.mtimeMs = st.mtime?.getTime() ?? 0;
  }

  /** The file as linked: its path, size and mtime when opened. */
  get record(): LinkRecord {
    return { path: this.path, size: this.size, mtimeMs: this.mtimeMs };
  }

  /**
   * `IntegrityError` when the file changed while it was read: `read` bytes instead of
   * its size, or another size or mtime now.
   */
  async assertUnchanged(read: number): Promise<void> {
    const st = await Deno.stat(this.path).catch(() => undefined);
    if (
      read !== this.size || st?.size !== this.size || (st.mtime?.getTime() ?? 0) !== this.mtimeMs
    ) {
      throw new IntegrityError(`'${this.path}' changed while it was read; put it again`);
    }
  }

  /** Opens `path` for a put by its owner. */
  static async open(path: string): Promise<LocalFileSource> {
    if (!path.startsWith("/")) {
      throw new InvalidInputError("bad_path", `The file '${path}' is not an absolute path`);
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (err) {
      throw new InvalidInputError(
        "bad_path",
        `Cannot read '${path}': ${err instanceof Deno.errors.NotFound ? "no such file" : err}`,
      );
    }
    const st = await file.stat();
    if (!st.isFile || st.size === 0) {
      file.close();
      throw new InvalidInputError(
        "bad_path",
        `'${path}' is ${st.isFile ? "empty" : "not a regular file"}; put takes a file`,
      );
    }
    return new LocalFileSource(file, path, st);
  }
}
