/**
 * Hashing and file writes of chunks on worker threads, so that a download's event
 * loop only reads its links. Both take a view of a `SharedArrayBuffer` (the frames a
 * peer reads chunk answers into come from such a pool): the worker reads the same
 * memory, with no copy and nothing detached. Any other view is hashed or written on
 * the calling thread, as before.
 *
 * Why: a 1 GiB download from three sources over TLS kept its event loop busy for the
 * whole transfer, and the loop was what bounded it. Besides decrypting each link
 * (1.35 CPU-s per GiB, one 16 KiB record per read), it hashed every chunk (0.62 CPU-s
 * per GiB with SHA-NI) and copied it into page cache (1.2-2.9 s of system time per GiB
 * on this VM, whose fresh pages cost a fault in the host). On a worker thread the hash
 * and the copy run beside the reads.
 *
 * ```ts
 * import { ChunkThreads } from "./chunk_threads.ts";
 *
 * const threads = new ChunkThreads();
 * const bytes = new Uint8Array(new SharedArrayBuffer(3));
 * bytes.set([1, 2, 3]);
 * console.assert((await threads.sha256Hex(bytes)).length === 64);
 * threads.close();
 * ```
 *
 * @module
 */
import { sha256Hex } from "../proto/manifest.ts";
import { writeAtSync } from "./file_io.ts";

/** A job for a worker. */
export type ThreadJob =
  & { id: number; buffer: SharedArrayBuffer; byteOffset: number; length: number }
  & ({ op: "sha256" } | { op: "write"; path: string; offset: number });

/** A worker's answer: the hash, nothing (a write), or what went wrong. */
export interface ThreadAnswer {
  id: number;
  hex?: string;
  error?: { name: string; message: string };
}

/**
 * Worker threads started at most. One: a worker costs about 20-25 MiB of resident
 * memory (its own isolate, and node:crypto), and a second one took a 1 GiB download's
 * peak RSS growth from 54 to 73 MiB (the target is 64) without a speed-up that stood
 * out from this VM's noise (3 sources over TLS, 2.76-3.89 s with one, 3.07-3.28 s with two).
 */
export const THREADS = 1;

interface Thread {
  worker: Worker;
  pending: Map<number, PromiseWithResolvers<ThreadAnswer>>;
}

/** Whether `bytes` is a view of shared memory (what the threads can take). */
export function isShared(bytes: Uint8Array): bytes is Uint8Array<SharedArrayBuffer> {
  return bytes.buffer instanceof SharedArrayBuffer;
}

/** Hashing and writes on the calling thread: what `ChunkThreads` does with unshared bytes. */
export const inPlace: Pick<ChunkThreads, "sha256Hex" | "writeAt"> = {
  sha256Hex,
  writeAt(_path, file, offset, bytes) {
    writeAtSync(file, offset, bytes);
    return Promise.resolve();
  },
};

/**
 * Worker threads (`THREADS`) for chunk hashing and writes, started on first use of shared
 * memory; `close()` stops them (the owner's close calls it).
 */
export class ChunkThreads {
  readonly #count: number;
  readonly #threads: Thread[] = [];
  #id = 0;
  #closed = false;

  constructor(count = THREADS) {
    this.#count = count;
  }

  /** Lowercase hex SHA-256 of `bytes`: on a worker when they are shared memory. */
  sha256Hex(bytes: Uint8Array): Promise<string> {
    if (!isShared(bytes) || this.#closed) return inPlace.sha256Hex(bytes);
    return this.#run({ op: "sha256" }, bytes).then((a) => a.hex!);
  }

  /**
   * Writes all of `bytes` at `offset` of the file at `path` (which must exist): on a
   * worker, which opens the file for this write, when they are shared memory; `file`
   * (the caller's open handle of that path) is written otherwise.
   */
  writeAt(path: string, file: Deno.FsFile, offset: number, bytes: Uint8Array): Promise<void> {
    if (!isShared(bytes) || this.#closed) return inPlace.writeAt(path, file, offset, bytes);
    return this.#run({ op: "write", path, offset }, bytes).then(() => undefined);
  }

  /** Stops the workers; jobs under way fail, later calls run on the calling thread. */
  close(): void {
    this.#closed = true;
    for (const t of this.#threads.splice(0)) {
      t.worker.terminate();
      for (const p of t.pending.values()) {
        p.reject(new Error("Chunk threads were closed"));
      }
      t.pending.clear();
    }
  }

  #run(
    job: { op: "sha256" } | { op: "write"; path: string; offset: number },
    bytes: Uint8Array<SharedArrayBuffer>,
  ): Promise<ThreadAnswer> {
    const t = this.#thread();
    const id = ++this.#id;
    const done = Promise.withResolvers<ThreadAnswer>();
    t.pending.set(id, done);
    t.worker.postMessage(
      { ...job, id, buffer: bytes.buffer, byteOffset: bytes.byteOffset, length: bytes.length },
    );
    return done.promise.then((a) => {
      if (a.error) throw rebuild(a.error);
      return a;
    });
  }

  /** The thread with the fewest jobs, started when fewer than `count` run and all are busy. */
  #thread(): Thread {
    let best: Thread | undefined;
    for (const t of this.#threads) {
      if (!best || t.pending.size < best.pending.size) best = t;
    }
    if (best && (best.pending.size === 0 || this.#threads.length >= this.#count)) return best;
    const worker = new Worker(new URL("./chunk_threads_worker.ts", import.meta.url), {
      type: "module",
    });
    const t: Thread = { worker, pending: new Map() };
    worker.onmessage = (e: MessageEvent<ThreadAnswer>) => {
      const p = t.pending.get(e.data.id);
      t.pending.delete(e.data.id);
      p?.resolve(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      for (const p of t.pending.values()) p.reject(new Error(`Chunk thread failed: ${e.message}`));
      t.pending.clear();
      this.#threads.splice(this.#threads.indexOf(t), 1);
      worker.terminate();
    };
    this.#threads.push(t);
    return t;
  }
}

/** The worker's error as the caller would have seen it (`Deno.errors.*` by name). */
function rebuild(e: { name: string; message: string }): Error {
  const known = (Deno.errors as Record<string, (new (m: string) => Error) | undefined>)[e.name];
  const err = known ? new known(e.message) : new Error(e.message);
  if (!known) err.name = e.name;
  return err;
}
