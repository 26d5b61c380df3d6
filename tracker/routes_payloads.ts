/**
 * The tracker's payload routes, to mount at `/payloads` (beside `upload.ts`):
 * `GET /payloads` lists payloads page by page, `GET|PUT /payloads/{id}` reads or
 * publishes a manifest, `GET /payloads/{id}/peers` and `POST /payloads/{id}/have`
 * read and record who holds which chunk (an announcement is signed by the holder
 * itself, see `identity.ts`; one of no chunk, which a peer sends when it removes a
 * payload, takes it off the list of holders), and `GET /payloads/{id}/chunks/{index}` and
 * `GET /payloads/{id}/content` serve the bytes the tracker stores itself.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { stream } from "hono/streaming";
import { zValidator } from "@hono/zod-validator";
import { create as contentDisposition } from "content-disposition";
import { z } from "zod";
import { errorMessage, IntegrityError, InvalidInputError } from "../proto/errors.ts";
import {
  assertBitfield,
  bitfieldCount,
  bitfieldFromIndices,
  formatRanges,
} from "../proto/bitfield.ts";
import { fromBase64, PayloadId, toBase64 } from "../proto/ids.ts";
import { CHUNK_SIZE, type Manifest, verifyManifest } from "../proto/manifest.ts";
import {
  HaveRequest,
  type HaveResponse,
  type HolderList,
  type ManifestResponse,
  type PayloadInfo,
  PublishManifestRequest,
} from "../proto/tracker.ts";
import { haveBytes } from "../proto/tracker_auth.ts";
import { jsonBody, limitBody, listingHook, param } from "../lib/http_api.ts";
import type { TrackerDeps, TrackerEnv } from "./deps.ts";
import { bodyTooLarge, notStored, unknownPayload, unknownPeer } from "./errors.ts";
import type { PayloadRow } from "./store.ts";
import { searchRoutes } from "./routes_search.ts";

/** Largest `PUT /payloads/{id}` body (a manifest of about 120 000 chunks). */
const MANIFEST_JSON = 8 * 1024 * 1024;
/** Largest `POST /payloads/{id}/have` body. */
const HAVE_JSON = 256 * 1024;

/** `GET /payloads` query. */
const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(512).optional(),
});

/** A chunk index in a path: digits only. */
const ChunkIndex = z.string().regex(/^\d+$/, "is not a chunk index").transform(Number);

/** The `/payloads` routes but `POST /payloads` (see `upload.ts`). */
export function payloadRoutes({ store, identity }: Pick<TrackerDeps, "store" | "identity">) {
  /** The payload named by the `id` path parameter, which must be known. */
  async function knownPayload(c: Context<TrackerEnv>): Promise<PayloadRow> {
    const id = param(c, "id", PayloadId, "Payload id");
    const row = await store.getPayload(id);
    if (!row) throw unknownPayload(id);
    return row;
  }

  return new Hono<TrackerEnv>()
    // Before `/:id`: a search over names and types (routes_search.ts).
    .route("/search", searchRoutes({ store }))
    .get(
      "/",
      zValidator("query", ListQuery, listingHook("invalid_query", "Query is invalid: ")),
      async (c) => {
        const q = c.req.valid("query");
        let page;
        try {
          page = await store.listPayloads(q.limit, q.cursor);
        } catch (cause) {
          if (q.cursor === undefined) throw cause;
          throw new InvalidInputError("invalid_query", `Cursor '${q.cursor}' is not valid`, {
            cause,
          });
        }
        return c.json({ payloads: page.rows.map(payloadInfo), cursor: page.cursor });
      },
    )
    .get("/:id", async (c) => {
      const row = await knownPayload(c);
      const manifest = await store.getManifest(row);
      const res: ManifestResponse = { ...payloadInfo(row), chunks: manifest.chunks };
      return c.json(res);
    })
    .put("/:id", limitBody(MANIFEST_JSON, () => bodyTooLarge(MANIFEST_JSON)), async (c) => {
      const payloadId = param(c, "id", PayloadId, "Payload id");
      const body = await jsonBody(c, PublishManifestRequest);
      if (body.chunkSize !== CHUNK_SIZE) {
        throw new InvalidInputError(
          "invalid_body",
          `Chunk size '${body.chunkSize}' is not the protocol's '${CHUNK_SIZE}'`,
        );
      }
      const manifest: Manifest = {
        size: body.size,
        chunkSize: body.chunkSize,
        chunks: body.chunks,
      };
      try {
        await verifyManifest(payloadId, manifest);
      } catch (cause) {
        throw new InvalidInputError("manifest_mismatch", errorMessage(cause), { cause });
      }
      const { row, created } = await store.savePayload(
        payloadId,
        manifest,
        { name: body.name, stored: false },
        "payload.publish",
      );
      return c.json(payloadInfo(row), created ? 201 : 200);
    })
    .get("/:id/peers", async (c) => {
      const row = await knownPayload(c);
      // A holder that announced no chunk (it removed the payload) is not one. Its row
      // stays: its signedAt keeps an older announcement from being played again.
      const holders = (await store.listHaves(row.payloadId)).filter((h) => h.have.count > 0);
      const res: HolderList = {
        payloadId: row.payloadId,
        chunks: row.chunks,
        tracker: { holds: row.stored },
        peers: holders.map(({ peer, have }) => ({
          peerId: peer.peerId,
          host: peer.host,
          port: peer.port,
          ...(peer.ports ? { ports: peer.ports } : {}),
          ...(peer.name ? { name: peer.name } : {}),
          have: toBase64(have.bits),
          count: have.count,
          ranges: formatRanges(have.bits, row.chunks),
          updatedAt: new Date(have.updatedAt).toISOString(),
        })),
      };
      return c.json(res);
    })
    .post("/:id/have", limitBody(HAVE_JSON, () => bodyTooLarge(HAVE_JSON)), async (c) => {
      const row = await knownPayload(c);
      const body = await jsonBody(c, HaveRequest);
      const peer = await store.getPeer(body.peerId);
      if (!peer) throw unknownPeer(body.peerId);
      await identity.check(
        `announcement of '${body.peerId}'`,
        body.peerId,
        peer.publicKey ?? "",
        haveBytes(row.payloadId, body.peerId, body, body.signedAt),
        body.signedAt,
        body.signature,
      );
      let bits: Uint8Array;
      try {
        if (body.have !== undefined) {
          bits = fromBase64(body.have);
          assertBitfield(bits, row.chunks);
        } else {
          bits = bitfieldFromIndices(row.chunks, body.chunks ?? []);
        }
      } catch (cause) {
        throw new InvalidInputError(
          "invalid_body",
          `Cannot take announcement: ${errorMessage(cause)}`,
          { cause },
        );
      }
      const count = bitfieldCount(bits, row.chunks);
      await store.setHave(row.payloadId, body.peerId, bits, count, body.signedAt);
      const res: z.infer<typeof HaveResponse> = {
        payloadId: row.payloadId,
        peerId: body.peerId,
        count,
      };
      return c.json(res);
    })
    .get("/:id/chunks/:index", async (c) => {
      const row = await knownPayload(c);
      const index = ChunkIndex.safeParse(c.req.param("index"));
      if (!index.success || index.data >= row.chunks) {
        throw new InvalidInputError(
          "invalid_index",
          `Chunk index '${c.req.param("index")}' is not in 0..${row.chunks - 1}`,
        );
      }
      const manifest = await store.getManifest(row);
      const bytes = row.stored ? await store.getChunk(manifest, index.data) : null;
      if (!bytes) throw notStored(row.payloadId);
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "content-type": "application/octet-stream",
        "x-chunk-sha256": manifest.chunks[index.data],
      });
    })
    .get("/:id/content", async (c) => {
      const row = await knownPayload(c);
      if (!row.stored) throw notStored(row.payloadId);
      const manifest = await store.getManifest(row);
      c.header("content-type", "application/octet-stream");
      c.header("content-length", String(row.size));
      c.header("content-disposition", contentDisposition(row.name ?? row.payloadId));
      return stream(c, async (out) => {
        for (let index = 0; index < manifest.chunks.length && !out.aborted; index++) {
          const bytes = await store.getChunk(manifest, index);
          if (!bytes) throw new IntegrityError(`Chunk '${index}' is missing`);
          await out.write(bytes);
        }
      }, (err, out) => {
        // A cut answer, not a short one: the client must not take it for the whole payload.
        console.error(`tracker: content of '${row.payloadId}' broke off: ${err.message}`);
        out.abort();
        return Promise.resolve();
      });
    });
}

function payloadInfo(row: PayloadRow): PayloadInfo {
  return {
    payloadId: row.payloadId,
    size: row.size,
    chunkSize: row.chunkSize,
    chunks: row.chunks,
    ...(row.name ? { name: row.name } : {}),
    ...(row.tags?.length ? { tags: row.tags } : {}),
    createdAt: new Date(row.createdAt).toISOString(),
    stored: row.stored,
  };
}
