/**
 * Writing large buffers to a file in pieces of at most 256 KiB. On this project's VM
 * (Linux 6.18, ext4, memory handed back to the host by the balloon driver), one
 * `write()` of 1 MiB into fresh page cache cost up to 10x more than the same bytes in
 * smaller writes, depending on the VM's state. Measured 2026-12-03, a new 1 GiB file,
 * each run 10 s after the last file was deleted:
 *
 * - at 17:19, `dd` with `bs=1M` 3.36-3.76 s against `bs=256k` 0.34 s and `bs=64k`
 *   0.39 s; Deno, 1 MiB chunks at shuffled offsets, 3.84-4.49 s in one write each
 *   against 0.87-0.92 s in 256 KiB pieces (128 KiB: 1.10 s);
 * - at 17:28, when every size was slow (`dd` 7.5-8.8 s at 16-128 KiB), the same Deno
 *   runs alternating: 9.73-11.09 s in 1 MiB writes, 8.30-9.51 s in 256 KiB pieces.
 *
 * Smaller pieces cost only more system calls (4 per MiB instead of 1).
 *
 * ```ts
 * import { writeInPieces } from "./file_write.ts";
 *
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path, { write: true });
 * await writeInPieces(file, new Uint8Array(600 * 1024));
 * console.assert((await Deno.stat(path)).size === 600 * 1024);
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

/** The largest single write `writeInPieces()` makes. */
export const WRITE_PIECE = 256 * 1024;

/** Writes all of `bytes` at the file's position, at most `WRITE_PIECE` bytes a write. */
export async function writeInPieces(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    done += await file.write(bytes.subarray(done, done + WRITE_PIECE));
  }
}
