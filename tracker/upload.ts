/**
 * `POST /payloads?name=&tag=`: the tracker takes a payload's bytes (text/plain,
 * application/octet-stream, or JSON `{"payload": "...", "name"?, "tags"?}`) and its
 * tags (`tag` repeated, checked as the peer's: `tags.ts`), cuts them into chunks
 * as they stream in, stores each chunk under its hash and answers the payloadId.
 * The `--max-upload` limit is checked while streaming, so no more than one chunk
 * is held in memory and an oversized upload is refused as soon as it is over.
 * Chunks are kept aside under the upload's own keys while it streams and reach the
 * chunk keys only once it is whole (and, on a protected network, matched the hash its
 * proof covers): a refused, broken or mismatched upload leaves nothing in KV.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { z } from "zod";
import { InvalidInputError, P2pError } from "../proto/errors.ts";
import { CHUNK_SIZE, Chunker, type Manifest, payloadIdOf, sha256Hex } from "../proto/manifest.ts";
import { UploadJsonRequest, type UploadResponse } from "../proto/tracker.ts";
import { jsonBody, limitBody, readBody } from "../lib/http_api.ts";
import type { TrackerDeps, TrackerEnv } from "./deps.ts";
import { PayloadTooLargeError, uploadTooLarge } from "./errors.ts";
import { uploadTags } from "./tags.ts";

/** A declared body length. */
const ContentLength = z.coerce.number().int().nonnegative();

/** The `POST /payloads` route, to mount at `/payloads`. */
export function uploadRoutes({ store, config }: Pick<TrackerDeps, "store" | "config">) {
  const max = config.maxUpload;
  // JSON escaping may double the text: the decoded payload is what the limit is about.
  const jsonLimit = max * 2 + 1024;
  const limitJson = limitBody(
    jsonLimit,
    () =>
      new PayloadTooLargeError(
        `JSON upload of more than ${jsonLimit} bytes is over this tracker's limit of ${max} ` +
          "bytes (--max-upload); share large files peer to peer with `p2p put FILE`",
      ),
  );
  return new Hono<TrackerEnv>().post(
    "/",
    (c, next) => mediaType(c) === "application/json" ? limitJson(c, next) : next(),
    async (c) => {
      const type = mediaType(c);
      let name = c.req.query("name");
      let tags = uploadTags(c.req.queries("tag"));
      let source: ReadableStream<Uint8Array> | null;
      let declared: number | undefined;
      if (type === "application/json") {
        const body = await jsonBody(c, UploadJsonRequest);
        const bytes = new TextEncoder().encode(body.payload);
        if (bytes.length > max) throw uploadTooLarge(bytes.length, max);
        name ??= body.name;
        tags = uploadTags(tags, body.tags);
        source = new Blob([bytes]).stream();
      } else if (type === "text/plain" || type === "application/octet-stream") {
        const length = ContentLength.safeParse(c.req.header("content-length"));
        if (length.success && length.data > max) throw uploadTooLarge(length.data, max);
        if (length.success) declared = length.data;
        source = c.req.raw.body;
      } else {
        throw new P2pError(
          "unsupported_media_type",
          `Cannot take a payload of type '${type || "none"}': send text/plain, ` +
            'application/octet-stream, or application/json with {"payload": "..."}',
          { status: 415 },
        );
      }
      if (name !== undefined && (name.length === 0 || name.length > 255)) {
        throw new InvalidInputError("invalid_query", `Payload name must be 1 to 255 characters`);
      }
      const uploadId = crypto.randomUUID();
      let manifest: Manifest;
      let payloadId: string;
      try {
        manifest = await ingest((i, bytes) => store.stageChunk(uploadId, i, bytes), source, max);
        if (declared !== undefined && manifest.size !== declared) {
          throw new InvalidInputError(
            "incomplete_body",
            `Request body ended early: ${manifest.size} of ${declared} bytes`,
          );
        }
        payloadId = await payloadIdOf(manifest);
        await store.promoteUpload(uploadId, manifest.chunks);
      } catch (err) {
        // Dropped now; should that fail, the next start drops it (TrackerStore.load()).
        await store.discardUpload(uploadId).catch(() => {});
        throw err;
      }
      const { created } = await store.savePayload(
        payloadId,
        manifest,
        { name, tags, stored: true },
        "payload.upload",
      );
      const res: UploadResponse = {
        payloadId,
        size: manifest.size,
        chunkSize: manifest.chunkSize,
        chunks: manifest.chunks.length,
        created,
      };
      return c.json(res, created ? 201 : 200);
    },
  );
}

/**
 * Reads a stream into chunks handed to `keep` (with their index); returns the
 * manifest. Holds one chunk at most.
 */
export async function ingest(
  keep: (index: number, bytes: Uint8Array) => Promise<void>,
  source: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Manifest> {
  const chunker = new Chunker(CHUNK_SIZE);
  const chunks: string[] = [];
  const take = async (bytes: Uint8Array) => {
    const hash = await sha256Hex(bytes);
    await keep(chunks.length, bytes);
    chunks.push(hash);
  };
  if (source) {
    const reader = source.getReader();
    try {
      for (;;) {
        const { done, value } = await readBody(() => reader.read());
        if (done) break;
        if (chunker.total + value.length > max) {
          await reader.cancel();
          throw uploadTooLarge(chunker.total + value.length, max, true);
        }
        for (const chunk of chunker.push(value)) await take(chunk);
      }
    } finally {
      reader.releaseLock();
    }
  }
  const last = chunker.finish();
  if (last) await take(last);
  if (chunker.total === 0) throw new InvalidInputError("empty_payload", "Payload is empty");
  return { size: chunker.total, chunkSize: CHUNK_SIZE, chunks };
}

/** The request's media type, lower case, without parameters. */
function mediaType(c: Context): string {
  return (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
}
