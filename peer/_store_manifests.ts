/**
 * The chunk store's manifest files (`<dir>/manifests/<payloadId>.json`): their JSON
 * form, with the payload's name, time, pin and linked file, and reading one back
 * (shape-checked and verified). Internal to `chunk_store.ts`.
 *
 * @module
 */
import { assertManifestShape, type Manifest, verifyManifest } from "../proto/manifest.ts";
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
