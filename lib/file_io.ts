/**
 * Reading and writing a chunk's bytes in a file: synchronously, from the calling
 * thread, writes in pieces of at most 32 KiB. On this project's VM (Linux 6.18, ext4, memory handed back to
 * the host by the balloon driver) the same gigabyte costs ten times more or less
 * depending on how it is written, because each fresh page the VM hands out may cost
 * a fault in the host. Measured 2026-12-03, a new 1 GiB file written from a 1 MiB
 * buffer, each run after `sync` and 8 s of rest:
 *
 * | how                                          | seconds for 1 GiB       |
 * | -------------------------------------------- | ----------------------- |
 * | Deno `writeSync()`, 16 KiB pieces            | 0.65-0.79 (6 runs)      |
 * | Deno `writeSync()`, 32 KiB pieces            | 0.53                    |
 * | Deno `writeSync()` in a worker, 32 KiB       | 0.80-0.93 (3 runs)      |
 * | Deno `writeSync()`, 64 KiB / 256 KiB / 1 MiB | 0.34-9.82 / 7.84 / 12.7 |
 * | Deno `await write()`, 16 KiB pieces          | 5.75-8.97 (4 runs)      |
 * | Deno `await write()`, 256 KiB pieces         | 11.6                    |
 * | `dd bs=16k` / `bs=64k` / `bs=1M`             | 0.62-0.79 / 7.27 / 14.3 |
 *
 * Small writes fill the page cache with small folios, and the synchronous call
 * copies from the caller's own buffer, where Deno's `write()` runs on its pool of
 * blocking threads. The cost of a synchronous write is that the event loop waits for
 * it: about 16 µs per 32 KiB into page cache here, 0.5 ms per 1 MiB chunk, and
 * longer when the kernel throttles a writer that is far ahead of the disk (as in
 * aria2c and curl, which also write from their one thread).
 *
 * A chunk is read back the same way (`readAtSync()`): 1 GiB from page cache in 1 MiB
 * reads took 0.53-0.57 s and 0.54 CPU-s with `readSync()` against 0.99-1.04 s and 0.94
 * CPU-s with `await read()`; a read that misses the cache waits for the disk, as
 * nginx's and aria2c's do.
 *
 * The file of a chunk is opened the same way, with `Deno.openSync()`: an `await
 * Deno.open()` hands the call to a blocking thread and wakes the event loop when it is
 * done, two thread switches per chunk. Measured 2026-12-04, a swarm of 1 seeder and 16
 * downloaders over TLS on 2 cores (256 MiB): 14.9-15.3 s and 26.6-26.9 downloader
 * CPU-s with async opens, 13.3-13.8 s and 23.7-23.9 CPU-s with synchronous ones.
 *
 * ```ts
 * import { readAtSync, writeAtSync, writeInPieces } from "./file_io.ts";
 *
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path, { read: true, write: true });
 * writeInPieces(file, new Uint8Array(600 * 1024));
 * writeAtSync(file, 10, new Uint8Array([7]));
 * console.assert((await Deno.stat(path)).size === 600 * 1024);
 * console.assert(readAtSync(file, 599 * 1024, new Uint8Array(2048)) === 1024);
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

/** The largest single write `writeInPieces()` makes. */
export const WRITE_PIECE = 32 * 1024;

/**
 * Writes all of `bytes` at the file's position, at most `WRITE_PIECE` bytes a
 * write, synchronously: nothing else runs on this thread until the last byte is
 * written, so no other write can move the position in between.
 */
export function writeInPieces(file: Deno.FsFile, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += file.writeSync(bytes.subarray(done, done + WRITE_PIECE));
  }
}

/** `writeInPieces()` at `offset`: all of `bytes`, synchronously. */
export function writeAtSync(file: Deno.FsFile, offset: number, bytes: Uint8Array): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  writeInPieces(file, bytes);
}

/**
 * Reads into `buf` from `offset` until it is full or the file ends, synchronously;
 * the count of bytes read.
 */
export function readAtSync(file: Deno.FsFile, offset: number, buf: Uint8Array): number {
  file.seekSync(offset, Deno.SeekMode.Start);
  let fill = 0;
  while (fill < buf.length) {
    const n = file.readSync(buf.subarray(fill));
    if (n === null || n === 0) break;
    fill += n;
  }
  return fill;
}
