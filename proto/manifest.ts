/**
 * Payload manifests and the payloadId scheme.
 *
 * A payload is cut into chunks of `CHUNK_SIZE` bytes (the last one may be shorter).
 * Its manifest is `{ size, chunkSize, chunks }`, where `chunks[i]` is the SHA-256 of
 * chunk i. The payloadId is the SHA-256, in lowercase hex, of the manifest's canonical
 * bytes:
 *
 * ```text
 * "p2p-manifest-v1\n"       16 ASCII bytes (domain separation)
 * size                      u64 big-endian, bytes in the payload
 * chunkSize                 u32 big-endian
 * sha256(chunk 0) … sha256(chunk n-1)   32 bytes each, n = ceil(size / chunkSize)
 * ```
 *
 * So the same bytes always give the same id (the chunk size is a protocol constant),
 * different bytes give a different id, a downloader checks a manifest against its id
 * before fetching anything, and each chunk against the manifest as it arrives.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { IntegrityError, ProtocolError, TooLargeError } from "./errors.ts";
import { fromHex, SHA256_HEX } from "./ids.ts";

/** The chunk size of every payload: 1 MiB. */
export const CHUNK_SIZE = 1024 * 1024;
/** Largest chunk size a frame may carry (16 MiB); a frame body carries at most one chunk. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/**
 * Largest payload a peer accepts a manifest for: 64 GiB, so 65,536 chunks of
 * `CHUNK_SIZE` and a 2 MiB MANIFEST body (about 10 MB once held in memory). A
 * manifest over it, or with another chunk size than `CHUNK_SIZE`, is refused by
 * `assertManifestLimits()` from its header alone, before any hash is read.
 */
export const MAX_PAYLOAD_SIZE = 64 * 1024 * 1024 * 1024;
/** Most chunks a manifest may list: `MAX_PAYLOAD_SIZE / CHUNK_SIZE` (65,536). */
export const MAX_CHUNKS = MAX_PAYLOAD_SIZE / CHUNK_SIZE;
const DOMAIN = new TextEncoder().encode("p2p-manifest-v1\n");

/** A payload's manifest: total size, chunk size and the hex SHA-256 of each chunk. */
export interface Manifest {
  size: number;
  chunkSize: number;
  chunks: string[];
}

/** Number of chunks a payload of `size` bytes has. */
export function chunkCount(size: number, chunkSize = CHUNK_SIZE): number {
  return Math.ceil(size / chunkSize);
}

/** Byte length of chunk `index` of a payload of `size` bytes. */
export function chunkLength(size: number, index: number, chunkSize = CHUNK_SIZE): number {
  const n = chunkCount(size, chunkSize);
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`Chunk index '${index}' is out of range 0..${n - 1}`);
  }
  return index === n - 1 ? size - index * chunkSize : chunkSize;
}

/** The canonical bytes of a manifest, the input of its payloadId. */
export function encodeManifest(m: Manifest): Uint8Array {
  if (m.chunks.length !== chunkCount(m.size, m.chunkSize)) {
    throw new RangeError(
      `Manifest lists '${m.chunks.length}' chunks but size '${m.size}' needs '${
        chunkCount(m.size, m.chunkSize)
      }'`,
    );
  }
  const out = new Uint8Array(DOMAIN.length + 12 + 32 * m.chunks.length);
  out.set(DOMAIN, 0);
  const view = new DataView(out.buffer);
  view.setBigUint64(DOMAIN.length, BigInt(m.size));
  view.setUint32(DOMAIN.length + 8, m.chunkSize);
  m.chunks.forEach((h, i) => out.set(fromHex(h), DOMAIN.length + 12 + 32 * i));
  return out;
}

/**
 * Lowercase hex SHA-256 of some bytes, hashed in place on the calling thread.
 *
 * Not WebCrypto's `digest()`: it first copies its input for a thread of its own, and
 * with several digests under way (a download verifying 16 chunks at once) each copy
 * lands in freshly mapped memory, which on this VM costs a page fault per 4 KiB.
 * Measured on 1 GiB in 1 MiB pieces, 16 at a time: `digest()` took 0.65-0.67 CPU-s of
 * the calling thread (the copy) and 1.30-1.33 in all, with 52,000-54,000 page faults;
 * `node:crypto` took 0.61-0.62 CPU-s in all (SHA-NI), and 22 faults.
 */
export function sha256Hex(bytes: Uint8Array): Promise<string> {
  return Promise.resolve(createHash("sha256").update(bytes).digest("hex"));
}

/** The payloadId of a manifest. */
export function payloadIdOf(m: Manifest): Promise<string> {
  return sha256Hex(encodeManifest(m));
}

/** Throws `IntegrityError` unless `m` hashes to `payloadId`. */
export async function verifyManifest(payloadId: string, m: Manifest): Promise<void> {
  const actual = await payloadIdOf(m);
  if (actual !== payloadId) {
    throw new IntegrityError(`Manifest hashes to '${actual}', not to payloadId '${payloadId}'`);
  }
}

/**
 * Throws `IntegrityError` unless `bytes` are chunk `index` of manifest `m`; `hash`
 * (default `sha256Hex()`) hashes them.
 */
export async function verifyChunk(
  m: Manifest,
  index: number,
  bytes: Uint8Array,
  hash: (bytes: Uint8Array) => Promise<string> = sha256Hex,
): Promise<void> {
  const want = chunkLength(m.size, index, m.chunkSize);
  if (bytes.length !== want) {
    throw new IntegrityError(`Chunk '${index}' has '${bytes.length}' bytes, expected '${want}'`);
  }
  const actual = await hash(bytes);
  if (actual !== m.chunks[index]) {
    throw new IntegrityError(
      `Chunk '${index}' hashes to '${actual}', expected '${m.chunks[index]}'`,
    );
  }
}

/**
 * Cuts a byte stream into chunks without holding more than one chunk: `push()`
 * returns the chunks completed so far, `finish()` the short last one (if any).
 */
export class Chunker {
  readonly #size: number;
  #buf: Uint8Array;
  #fill = 0;
  /** Total bytes pushed so far. */
  total = 0;

  constructor(chunkSize = CHUNK_SIZE) {
    if (!Number.isInteger(chunkSize) || chunkSize <= 0) {
      throw new RangeError(`Chunk size '${chunkSize}' must be a positive integer`);
    }
    this.#size = chunkSize;
    this.#buf = new Uint8Array(chunkSize);
  }

  /** Adds bytes; returns the chunks that became complete, each a fresh buffer. */
  push(bytes: Uint8Array): Uint8Array[] {
    const done: Uint8Array[] = [];
    this.total += bytes.length;
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(this.#size - this.#fill, bytes.length - off);
      this.#buf.set(bytes.subarray(off, off + n), this.#fill);
      this.#fill += n;
      off += n;
      if (this.#fill === this.#size) {
        done.push(this.#buf);
        this.#buf = new Uint8Array(this.#size);
        this.#fill = 0;
      }
    }
    return done;
  }

  /** The last, shorter chunk, or `undefined` when the input ended on a chunk boundary. */
  finish(): Uint8Array | undefined {
    if (this.#fill === 0) return undefined;
    const last = this.#buf.slice(0, this.#fill);
    this.#fill = 0;
    return last;
  }
}

/**
 * Throws unless a manifest's declared size and chunk size are within the protocol's
 * limits: `ProtocolError` `bad_chunk_size` for a chunk size other than `CHUNK_SIZE`,
 * `TooLargeError` `payload_too_large` for a size over `MAX_PAYLOAD_SIZE`. Needs only
 * the header, so a peer checks it before it reads or allocates anything for the hashes.
 */
export function assertManifestLimits(m: { size: number; chunkSize: number }): void {
  if (m.chunkSize !== CHUNK_SIZE) {
    throw new ProtocolError(
      "bad_chunk_size",
      `Manifest chunk size '${m.chunkSize}' is not the protocol's '${CHUNK_SIZE}'`,
    );
  }
  if (!(m.size <= MAX_PAYLOAD_SIZE)) {
    throw new TooLargeError(
      "payload_too_large",
      `Payload of '${m.size}' bytes is over the limit of '${MAX_PAYLOAD_SIZE}' bytes`,
    );
  }
}

/**
 * Throws unless `m` is a usable manifest for `payloadId`: `TypeError`/`RangeError` for
 * ids that are not lowercase hex (they become file names), an empty size or a hash
 * count that does not fit; the errors of `assertManifestLimits()` for another chunk
 * size than `CHUNK_SIZE` or a payload over `MAX_PAYLOAD_SIZE`. Whether it hashes to
 * the id is checked apart.
 */
export function assertManifestShape(payloadId: string, m: Manifest): void {
  if (typeof payloadId !== "string" || !SHA256_HEX.test(payloadId)) {
    throw new TypeError(`Cannot add manifest: payloadId '${payloadId}' is not 64 lowercase hex`);
  }
  if (typeof m !== "object" || m === null) {
    throw new TypeError(`Cannot add manifest for '${payloadId}': not an object`);
  }
  if (!Number.isSafeInteger(m.size) || m.size < 1) {
    throw new RangeError(
      `Cannot add manifest for '${payloadId}': size '${m.size}' is not a positive integer`,
    );
  }
  assertManifestLimits(m);
  if (!Array.isArray(m.chunks) || m.chunks.length !== chunkCount(m.size, m.chunkSize)) {
    throw new RangeError(
      `Cannot add manifest for '${payloadId}': size '${m.size}' needs '${
        chunkCount(m.size, m.chunkSize)
      }' chunk hashes`,
    );
  }
  for (const h of m.chunks) {
    if (typeof h !== "string" || !SHA256_HEX.test(h)) {
      throw new TypeError(
        `Cannot add manifest for '${payloadId}': chunk hash '${h}' is not 64 lowercase hex`,
      );
    }
  }
}
