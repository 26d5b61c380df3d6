/**
 * The chunk store's manifest files (`<dir>/manifests/<payloadId>.json`): their JSON
 * form, with the payload's name, time, pin and linked file, and reading one back
 * (shape-checked and verified), and the manifest of a byte stream. Internal to
 * `chunk_store.ts`.
 *
 * @module
 */
import {
  assertManifestShape,
  CHUNK_SIZE,
  Chunker,
  type Manifest,
  sha256Hex,
  verifyManifest,
} from "../proto/manifest.ts";
import type { LinkRecord } from "./linked_files.ts";
import { SHA256_HEX } from "../proto/ids.ts";

/** What the store knows about one payload, as `payload()` and `list()` report it. */
export interface StoredPayload {
  payloadId: string;
  size: number;
  chunkSize: number;
  /** Number of chunks. */
  chunks: number;
  /** Number of chunks held. */
  held: number;
  complete: boolean;
  name?: string;
  /** When the manifest was added, in ms since the epoch. */
  addedAt: number;
  /** Put or got by the owner here; false for a replica held for other peers. */
  pinned: boolean;
}

/** What a manifest file records besides the manifest. */
export interface ManifestMeta {
  name?: string;
  addedAt: number;
  pinned: boolean;
  /** The owner's file the payload's chunks live in (`linked_files.ts`). */
  linked?: LinkRecord;
}

/** The bytes of a manifest file. */
export function manifestFileBytes(manifest: Manifest, meta: ManifestMeta): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({
    size: manifest.size,
    chunkSize: manifest.chunkSize,
    chunks: manifest.chunks,
    ...(meta.name === undefined ? {} : { name: meta.name }),
    addedAt: meta.addedAt,
    ...(meta.pinned ? { pinned: true } : {}),
    ...(meta.linked ? { linked: meta.linked } : {}),
  }));
}

/** A linked-file record read back, or `undefined` when absent or malformed. */
function linkRecordOf(raw: unknown): LinkRecord | undefined {
  const r = raw as Partial<LinkRecord> | undefined;
  if (
    typeof r?.path === "string" && r.path.startsWith("/") && Number.isSafeInteger(r.size) &&
    Number.isFinite(r.mtimeMs)
  ) {
    return { path: r.path, size: r.size!, mtimeMs: r.mtimeMs! };
  }
  return undefined;
}

/** Reads, shape-checks and verifies a manifest file; throws on anything wrong. */
export async function readManifestFile(
  path: string,
  payloadId: string,
): Promise<{ manifest: Manifest } & ManifestMeta> {
  const raw = JSON.parse(await Deno.readTextFile(path));
  const manifest: Manifest = { size: raw?.size, chunkSize: raw?.chunkSize, chunks: raw?.chunks };
  assertManifestShape(payloadId, manifest);
  await verifyManifest(payloadId, manifest);
  const addedAt = Number.isFinite(raw.addedAt) ? raw.addedAt : 0;
  const pinned = raw.pinned === true;
  const linked = linkRecordOf(raw.linked);
  return {
    manifest,
    addedAt,
    pinned,
    ...(typeof raw.name === "string" ? { name: raw.name } : {}),
    ...(linked ? { linked } : {}),
  };
}

/** Every manifest file in `dir` that reads and verifies, oldest first; the others are removed. */
export async function readManifestDir(
  dir: string,
  warn: (message: string) => void,
): Promise<({ payloadId: string; manifest: Manifest } & ManifestMeta)[]> {
  const found: ({ payloadId: string; manifest: Manifest } & ManifestMeta)[] = [];
  for await (const f of Deno.readDir(dir)) {
    const path = `${dir}/${f.name}`;
    const payloadId = f.name.endsWith(".json") ? f.name.slice(0, -5) : "";
    if (!f.isFile || !SHA256_HEX.test(payloadId)) {
      warn(`Chunk store: ignoring '${path}', not a manifest file name`);
      continue;
    }
    try {
      found.push({ payloadId, ...await readManifestFile(path, payloadId) });
    } catch (err) {
      warn(`Chunk store: removing manifest '${path}': ${(err as Error).message}`);
      await Deno.remove(path).catch(() => {});
    }
  }
  return found.sort((a, b) => a.addedAt - b.addedAt);
}

/** The `StoredPayload` of a store entry. */
export function describe(e: {
  payloadId: string;
  manifest: Manifest;
  held: number;
  name?: string;
  addedAt: number;
  pinned: boolean;
}): StoredPayload {
  const n = e.manifest.chunks.length;
  return {
    payloadId: e.payloadId,
    size: e.manifest.size,
    chunkSize: e.manifest.chunkSize,
    chunks: n,
    held: e.held,
    complete: e.held === n,
    ...(e.name === undefined ? {} : { name: e.name }),
    addedAt: e.addedAt,
    pinned: e.pinned,
  };
}

/**
 * Cuts `source` into chunks holding about one in memory, hashes each and hands it to
 * `onChunk` (awaited) before the next; resolves with the manifest of the hashes.
 * `RangeError` for empty input.
 */
export async function manifestOfStream(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  onChunk: (chunk: Uint8Array, hash: string) => void | Promise<void>,
): Promise<Manifest> {
  const chunker = new Chunker(CHUNK_SIZE);
  const chunks: string[] = [];
  const take = async (chunk: Uint8Array) => {
    const hash = await sha256Hex(chunk);
    await onChunk(chunk, hash);
    chunks.push(hash);
  };
  for await (const part of source) {
    for (const chunk of chunker.push(part)) await take(chunk);
  }
  const last = chunker.finish();
  if (last) await take(last);
  if (chunker.total === 0) throw new RangeError("Cannot import an empty payload");
  return { size: chunker.total, chunkSize: CHUNK_SIZE, chunks };
}
