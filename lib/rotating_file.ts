/**
 * An append-only file that rotates by size, for the JSON-lines activity logs of the
 * peer and the tracker: past `maxBytes`, `NAME.jsonl` becomes `NAME.1.jsonl`, the
 * older ones shift to `NAME.2.jsonl` … `NAME.<keepFiles>.jsonl`, and the oldest goes.
 *
 * @module
 */

/** Options of `RotatingFile.open()`. */
export interface RotatingFileOptions {
  /** Rotate once the file reaches this many bytes (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files kept besides the current one (default 3). */
  keepFiles?: number;
}

/** The path of rotated file `i` (1 = the newest) of `path`. */
export function rotatedPath(path: string, i: number): string {
  return `${path.replace(/\.jsonl$/, "")}.${i}.jsonl`;
}

/** An append-only file at `path` that rotates by size. */
export class RotatingFile {
  readonly path: string;
  readonly maxBytes: number;
  readonly keepFiles: number;
  #file: Deno.FsFile | undefined;
  #size: number;

  private constructor(path: string, file: Deno.FsFile, size: number, opts: RotatingFileOptions) {
    this.path = path;
    this.#file = file;
    this.#size = size;
    this.maxBytes = opts.maxBytes ?? 10 * 1024 * 1024;
    this.keepFiles = opts.keepFiles ?? 3;
  }

  /**
   * Opens (or creates) `path` for appending. Throws `RangeError` for a `maxBytes` or
   * `keepFiles` that is not a positive integer, and the errors of `Deno.open`.
   */
  static async open(path: string, opts: RotatingFileOptions = {}): Promise<RotatingFile> {
    for (const [name, v] of [["maxBytes", opts.maxBytes], ["keepFiles", opts.keepFiles]]) {
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1)) {
        throw new RangeError(`Log file ${name} '${v}' must be a positive integer`);
      }
    }
    const file = await Deno.open(path, { create: true, append: true });
    return new RotatingFile(path, file, (await file.stat()).size, opts);
  }

  /** Bytes in the current file. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends `bytes` whole, then rotates when the file has reached `maxBytes`, so
   * records are never split across files. Throws the file system's errors (and
   * `Deno.errors.BadResource` after `close()`).
   */
  appendSync(bytes: Uint8Array): void {
    if (!this.#file) throw new Deno.errors.BadResource(`Log file '${this.path}' is closed`);
    let off = 0;
    while (off < bytes.length) off += this.#file.writeSync(bytes.subarray(off));
    this.#size += bytes.length;
    if (this.#size >= this.maxBytes) this.#rotate();
  }

  #rotate(): void {
    this.#file?.close();
    try {
      for (let i = this.keepFiles; i >= 1; i--) {
        const from = i === 1 ? this.path : rotatedPath(this.path, i - 1);
        try {
          Deno.renameSync(from, rotatedPath(this.path, i));
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
    } finally {
      // After a failed rename, appending goes on in whatever file is at `path`.
      this.#file = Deno.openSync(this.path, { create: true, append: true });
      this.#size = this.#file.statSync().size;
    }
  }

  /** Closes the file; later appends throw. Idempotent. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}
