/**
 * The chunk store's side of linked files (`linked_files.ts`): a download linked to a
 * partial file from its start to its publication or abandon, checked reads from a
 * linked file, and a linked file found again at start-up. Internal to
 * `chunk_store.ts`, which gives it the few store operations it needs (`LinkHost`).
 *
 * @module
 */
import { IntegrityError, P2pError } from "../proto/errors.ts";
import { bitfieldLength, hasBit } from "../proto/bitfield.ts";
import { chunkLength, type Manifest } from "../proto/manifest.ts";
import {
  createFresh,
  LinkedFile,
  type LinkRecord,
  publishDestination,
  wholeFileChanged,
} from "./linked_files.ts";

/** What the links need to know of a payload. */
export interface LinkEntry {
  readonly payloadId: string;
  readonly manifest: Manifest;
  readonly bits: Uint8Array;
  link?: LinkedFile;
}

/** The store operations the links use. */
export interface LinkHost {
  /** Marks a position held and tells listeners; whether it was not. */
  hold(e: LinkEntry, index: number): boolean;
  unhold(e: LinkEntry, index: number): void;
  /** Reads a held chunk (from the payload file, or the linked file). */
  readFile(e: LinkEntry, index: number): Promise<Uint8Array>;
  /** Rewrites the payload's manifest file (with its link record, if any). */
  writeManifest(e: LinkEntry): Promise<void>;
  /** Whether position `index` is in the payload's own file. */
  stored(e: LinkEntry, index: number): boolean;
  /** Writes a verified chunk to the payload's own file and holds it (may throw `store_full`). */
  store(e: LinkEntry, index: number, bytes: Uint8Array): Promise<void>;
  /** Whether `e` is still the store's entry of its payload. */
  current(e: LinkEntry): boolean;
  warn(message: string): void;
}

/** Linked downloads under way and checked reads of linked files, for one store. */
export class StoreLinks {
  readonly #host: LinkHost;
  /** payloadId → the partial file a download will fill, until its manifest is known. */
  readonly #pending = new Map<string, { path: string; file: Deno.FsFile }>();

  constructor(host: LinkHost) {
    this.#host = host;
  }

  /** Whether a download of the payload goes to a linked file. */
  linking(payloadId: string, e: LinkEntry | undefined): boolean {
    return this.#pending.has(payloadId) || e?.link?.writing === true;
  }

  /** See `ChunkStore.linkTo()`. */
  async start(payloadId: string, partial: string, e: LinkEntry | undefined): Promise<void> {
    if (this.linking(payloadId, e)) {
      throw new P2pError("downloading", "This payload is being saved to a file already", {
        status: 409,
      });
    }
    const file = await createFresh(partial);
    this.#pending.set(payloadId, { path: partial, file });
    if (e) await this.attach(e);
  }

  /**
   * Attaches the pending partial file to `e`: preallocated, with every position held
   * so far copied in (a position whose read fails stops being held, and is fetched).
   */
  async attach(e: LinkEntry): Promise<void> {
    const pending = this.#pending.get(e.payloadId);
    if (!pending) return;
    this.#pending.delete(e.payloadId);
    const n = e.manifest.chunks.length;
    const bits = new Uint8Array(bitfieldLength(n));
    const link = new LinkedFile(pending.path, bits, e.manifest.chunkSize, {
      file: pending.file,
    });
    try {
      await pending.file.truncate(e.manifest.size);
      for (let i = 0; i < n; i++) {
        if (!hasBit(e.bits, i)) continue;
        const bytes = await this.#host.readFile(e, i).catch((err) => {
          if (err instanceof IntegrityError) return undefined;
          throw err;
        });
        if (bytes) await link.write(i, bytes);
      }
    } catch (err) {
      await link.close();
      await Deno.remove(pending.path).catch(() => undefined);
      throw err;
    }
    // A published linked file still in use stays the payload's copy once this one is saved.
    if (e.link && !e.link.writing) link.previous = e.link;
    e.link = link;
  }

  /** See `ChunkStore.finishLink()`. */
  async finish(e: LinkEntry, path: string, force: boolean): Promise<void> {
    const link = e.link;
    if (!link?.writing) throw new Error(`Cannot save '${e.payloadId}': no link under way`);
    for (let i = 0; i < e.manifest.chunks.length; i++) {
      if (link.has(i)) continue;
      if (!hasBit(e.bits, i)) {
        throw new IntegrityError(`Cannot save '${e.payloadId}': chunk '${i}' is not held`);
      }
      await link.write(i, await this.#host.readFile(e, i));
    }
    await link.close();
    await publishDestination(link.path, path, force);
    if (link.previous && e.link === link) {
      // Already linked to a file: the new one is a plain copy (its positions are there too).
      e.link = link.previous;
      return;
    }
    await link.seal(path);
    await this.#host.writeManifest(e);
  }

  /** See `ChunkStore.abandonLink()`. */
  async abandon(payloadId: string, e: LinkEntry | undefined): Promise<void> {
    const pending = this.#pending.get(payloadId);
    if (pending) {
      this.#pending.delete(payloadId);
      pending.file.close();
      await Deno.remove(pending.path).catch(() => undefined);
      return;
    }
    const link = e?.link;
    if (!e || !link?.writing) return;
    await link.close();
    const host = this.#host;
    for (let i = 0; i < e.manifest.chunks.length && !link.previous; i++) {
      if (!link.has(i) || host.stored(e, i)) continue;
      const want = chunkLength(e.manifest.size, i, e.manifest.chunkSize);
      const bytes = await link.read(i, want, e.manifest.chunks[i]).catch(() => undefined);
      link.set(i, false);
      if (bytes) await host.store(e, i, bytes).catch(() => undefined);
      if (!host.stored(e, i)) host.unhold(e, i);
    }
    e.link = link.previous;
    await Deno.remove(link.path).catch(() => undefined);
  }

  /**
   * Reads chunk `index` from the linked file, checked; a file that changed or vanished
   * is un-linked (its positions not in the payload file stop being held, the manifest
   * forgets it), a chunk that fails its hash stops being held.
   */
  async read(e: LinkEntry, index: number, want: number): Promise<Uint8Array> {
    const link = e.link!;
    const host = this.#host;
    try {
      return await link.read(index, want, e.manifest.chunks[index]);
    } catch (err) {
      if (wholeFileChanged(err) && e.link === link) {
        e.link = undefined;
        for (let i = 0; i < e.manifest.chunks.length; i++) {
          if (link.has(i) && !host.stored(e, i)) host.unhold(e, i);
        }
        host.warn((err as Error).message);
        if (host.current(e)) await host.writeManifest(e).catch(() => undefined);
      } else if (!link.has(index)) {
        host.unhold(e, index);
      }
      throw err;
    }
  }

  /** At start-up: holds a linked file's chunks when it has the size and mtime recorded. */
  async relink(e: LinkEntry, rec: LinkRecord): Promise<void> {
    const st = await Deno.stat(rec.path).catch(() => undefined);
    if (!st?.isFile || st.size !== rec.size || (st.mtime?.getTime() ?? 0) !== rec.mtimeMs) {
      this.#host.warn(
        `Chunk store: the linked file '${rec.path}' of '${e.payloadId}' changed or is gone; ` +
          "its chunks are no longer held from it",
      );
      await this.#host.writeManifest(e);
      return;
    }
    this.linkWhole(e, rec);
  }

  /** Links `e` to a whole, published file (a local put, or one found at start-up). */
  linkWhole(e: LinkEntry, rec: LinkRecord): void {
    const n = e.manifest.chunks.length;
    const bits = new Uint8Array(bitfieldLength(n)).fill(0xff);
    e.link = new LinkedFile(rec.path, bits, e.manifest.chunkSize, { record: rec });
    for (let i = 0; i < n; i++) this.#host.hold(e, i);
  }
}
