/**
 * The metadata its owner gave each payload here (tags, a content type, a name), kept
 * in `DATA/search/meta.json` apart from the store's manifests, so that it survives a
 * rebuild of the index. Checked with `PayloadMeta` on load (a bad entry is dropped)
 * and on every write; the file is written to a temporary and renamed. `version`
 * grows with each change and goes into the index's fingerprint.
 *
 * @module
 */
import { z } from "zod";
import { PayloadId } from "../../proto/ids.ts";
import { MAX_TAGS, PayloadMeta } from "../../proto/search.ts";
import { InvalidInputError } from "../../proto/errors.ts";
import { validate } from "../../lib/http_api.ts";

/** Most payloads with metadata kept (the oldest entry goes first past it). */
export const MAX_META_ENTRIES = 100_000;

const MetaFileBody = z.object({
  version: z.number().int().nonnegative(),
  entries: z.record(z.string(), z.unknown()),
});

/** The metadata file of a data directory. */
export class MetadataFile {
  readonly path: string;
  readonly #entries: Map<string, PayloadMeta>;
  #version: number;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, entries: Map<string, PayloadMeta>, version: number) {
    this.path = path;
    this.#entries = entries;
    this.#version = version;
  }

  /** Reads the file at `path` (none yet: empty). */
  static async open(path: string): Promise<MetadataFile> {
    const entries = new Map<string, PayloadMeta>();
    let version = 0;
    try {
      const body = MetaFileBody.parse(JSON.parse(await Deno.readTextFile(path)));
      version = body.version;
      for (const [id, raw] of Object.entries(body.entries)) {
        const meta = PayloadMeta.safeParse(raw);
        if (PayloadId.safeParse(id).success && meta.success) entries.set(id, meta.data);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        console.warn(`Search metadata: ignoring '${path}': ${(err as Error).message}`);
      }
    }
    return new MetadataFile(path, entries, version);
  }

  /** Changes so far: part of the index's fingerprint. */
  get version(): number {
    return this.#version;
  }

  /** The metadata of a payload (empty when none was given). */
  get(payloadId: string): PayloadMeta {
    return this.#entries.get(payloadId) ?? {};
  }

  /**
   * Sets a payload's metadata (tags lower-cased, deduplicated) and writes the file.
   * `InvalidInputError` for a bad id or metadata.
   */
  async set(payloadId: string, meta: PayloadMeta): Promise<void> {
    validate(PayloadId, payloadId, "invalid_payload_id");
    const m = validate(PayloadMeta, meta, "invalid_metadata", "Cannot keep metadata: ");
    const tags = m.tags ? [...new Set(m.tags.map((t) => t.toLowerCase()))] : undefined;
    if (tags && tags.length > MAX_TAGS) {
      throw new InvalidInputError("invalid_metadata", `At most ${MAX_TAGS} tags`);
    }
    this.#entries.delete(payloadId);
    this.#entries.set(payloadId, { ...m, ...(tags ? { tags } : {}) });
    while (this.#entries.size > MAX_META_ENTRIES) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#version++;
    await this.#write();
  }

  #write(): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      const text = JSON.stringify({
        version: this.#version,
        entries: Object.fromEntries(this.#entries),
      });
      const tmp = `${this.path}.${crypto.randomUUID()}.tmp`;
      await Deno.writeTextFile(tmp, text, { mode: 0o600 });
      await Deno.rename(tmp, this.path);
    });
    return this.#writing;
  }
}
