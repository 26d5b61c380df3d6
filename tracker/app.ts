/**
 * The tracker's HTTP API as a Hono app, built from its dependencies so that tests
 * can drive it in memory with `app.request()` or behind a real socket.
 *
 * Routes: `GET /health`, `GET /metrics`, `POST|GET /peers`, `GET|DELETE /peers/{id}`,
 * `POST|GET /payloads`, `GET|PUT /payloads/{id}`, `GET /payloads/{id}/peers`,
 * `POST /payloads/{id}/have`, `GET /payloads/{id}/chunks/{index}`,
 * `GET /payloads/{id}/content`, `GET /activity`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { z } from "zod";
import { ActivityQuery } from "../proto/activity.ts";
import type { ActivityLog } from "./activity.ts";
import { IntegrityError } from "../proto/errors.ts";
import {
  assertBitfield,
  bitfieldCount,
  bitfieldFromIndices,
  formatRanges,
} from "../proto/bitfield.ts";
import { fromBase64, PayloadId, PeerId, toBase64 } from "../proto/ids.ts";
import {
  CHUNK_SIZE,
  Chunker,
  type Manifest,
  payloadIdOf,
  sha256Hex,
  verifyManifest,
} from "../proto/manifest.ts";
import {
  type ErrorBody,
  HaveRequest,
  type HaveResponse,
  type HealthResponse,
  type HolderList,
  type ManifestResponse,
  type PayloadInfo,
  type PeerInfo,
  PublishManifestRequest,
  RegisterPeerRequest,
  type RegisterPeerResponse,
  type RemovedResponse,
  UploadJsonRequest,
  type UploadResponse,
} from "../proto/tracker.ts";
import type { Metrics } from "./metrics.ts";
import { ContentionError, type PayloadRow, type PeerRow, type TrackerStore } from "./store.ts";

/** Settings of a tracker. */
export interface TrackerConfig {
  /** A peer that does not heartbeat within this many ms expires. */
  peerTtlMs: number;
  /** Largest payload `POST /payloads` accepts, in bytes. */
  maxUpload: number;
  /** Software version, reported by `/health`. */
  version: string;
}

/** What `createTrackerApp()` needs. */
export interface TrackerDeps {
  store: TrackerStore;
  activity: ActivityLog;
  metrics: Metrics;
  config: TrackerConfig;
}

/** Hono environment: Deno.serve's connection info arrives as the bindings. */
export type TrackerEnv = { Bindings: { remoteAddr?: Deno.NetAddr } };

/** Largest JSON body of the small endpoints. */
const SMALL_JSON = 64 * 1024;
/** Largest `PUT /payloads/{id}` body (a manifest of about 120 000 chunks). */
const MANIFEST_JSON = 8 * 1024 * 1024;
/** Routes whose requests are not activity records themselves. */
const QUIET_ROUTES = new Set(["/health", "/metrics", "/activity"]);

/** An error answer: status, code, message and optional schema issues. */
export class ApiError extends Error {
  readonly status: 400 | 404 | 405 | 413 | 415 | 503;
  readonly code: string;
  readonly issues?: { path: string; message: string }[];
  constructor(
    status: ApiError["status"],
    code: string,
    message: string,
    issues?: { path: string; message: string }[],
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.issues = issues;
  }
}

/** Builds the tracker's Hono app. */
export function createTrackerApp(deps: TrackerDeps): Hono<TrackerEnv> {
  const { store, activity, metrics, config } = deps;
  const app = new Hono<TrackerEnv>();

  app.use(async (c, next) => {
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    metrics.count(c.req.method, route, c.res.status);
    if (c.req.method === "GET" && c.res.status < 400 && !QUIET_ROUTES.has(route)) {
      activity.record("query", { route, path: c.req.path, status: c.res.status });
    }
  });

  app.get("/health", (c) => {
    const res: z.infer<typeof HealthResponse> = { status: "ok", version: config.version };
    return c.json(res);
  });

  app.get("/metrics", async (c) => {
    const s = await store.stats();
    const text = metrics.render({
      p2p_tracker_live_peers: { help: "Peers registered and not expired.", value: s.livePeers },
      p2p_tracker_payloads: { help: "Payloads known to the tracker.", value: s.payloads },
      p2p_tracker_stored_bytes: {
        help: "Bytes of the payloads whose chunks the tracker stores.",
        value: s.storedBytes,
      },
    });
    return c.text(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  // ---- peers ----

  app.post("/peers", async (c) => {
    const body = await readJson(c, RegisterPeerRequest, SMALL_JSON);
    const remote = remoteHost(c);
    const host = body.host && !isWildcard(body.host) ? body.host : remote;
    if (!host) {
      throw new ApiError(400, "invalid_body", "Cannot register peer: 'host' is missing", [
        { path: "host", message: "required when the caller's address is unknown" },
      ]);
    }
    const { row, created } = await store.registerPeer({ ...body, host }, config.peerTtlMs);
    const res: RegisterPeerResponse = {
      peer: peerInfo(row),
      created,
      ttlSeconds: config.peerTtlMs / 1000,
    };
    return c.json(res, created ? 201 : 200);
  });

  app.get("/peers", async (c) => c.json({ peers: (await store.listPeers()).map(peerInfo) }));

  app.get("/peers/:peerId", async (c) => {
    const peerId = param(c, "peerId", PeerId, "Peer id");
    const row = await store.getPeer(peerId);
    if (!row) throw unknownPeer(peerId);
    return c.json(peerInfo(row));
  });

  app.delete("/peers/:peerId", async (c) => {
    const peerId = param(c, "peerId", PeerId, "Peer id");
    if (!await store.removePeer(peerId, "peer.remove")) throw unknownPeer(peerId);
    const res: z.infer<typeof RemovedResponse> = { removed: peerId };
    return c.json(res);
  });

  // ---- payloads ----

  app.post("/payloads", async (c) => {
    const type = mediaType(c);
    let name = c.req.query("name");
    let source: ReadableStream<Uint8Array> | null;
    if (type === "application/json") {
      // JSON escaping may double the text: the decoded payload is what the limit is about.
      const body = await readJson(c, UploadJsonRequest, config.maxUpload * 2 + 1024, true);
      const bytes = new TextEncoder().encode(body.payload);
      if (bytes.length > config.maxUpload) throw tooLarge(bytes.length, config.maxUpload);
      name ??= body.name;
      source = new Blob([bytes]).stream();
    } else if (type === "text/plain" || type === "application/octet-stream") {
      const declared = Number(c.req.header("content-length") ?? "NaN");
      if (declared > config.maxUpload) throw tooLarge(declared, config.maxUpload);
      source = c.req.raw.body;
    } else {
      throw new ApiError(
        415,
        "unsupported_media_type",
        `Cannot take a payload of type '${type || "none"}': send text/plain, ` +
          'application/octet-stream, or application/json with {"payload": "..."}',
      );
    }
    if (name !== undefined && (name.length === 0 || name.length > 255)) {
      throw new ApiError(400, "invalid_query", `Payload name must be 1 to 255 characters`);
    }
    const manifest = await ingest(store, source, config.maxUpload);
    const payloadId = await payloadIdOf(manifest);
    const { created } = await store.savePayload(
      payloadId,
      manifest,
      { name, stored: true },
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
  });

  app.get("/payloads", async (c) => {
    const q = parseQuery(
      c,
      z.object({
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        cursor: z.string().max(512).optional(),
      }),
    );
    let page;
    try {
      page = await store.listPayloads(q.limit, q.cursor);
    } catch (cause) {
      if (q.cursor === undefined) throw cause;
      throw new ApiError(400, "invalid_query", `Cursor '${q.cursor}' is not valid`);
    }
    return c.json({ payloads: page.rows.map(payloadInfo), cursor: page.cursor });
  });

  app.get("/payloads/:id", async (c) => {
    const row = await knownPayload(c);
    const manifest = await store.getManifest(row);
    const res: ManifestResponse = {
      payloadId: row.payloadId,
      size: row.size,
      chunkSize: row.chunkSize,
      chunks: manifest.chunks,
      ...(row.name ? { name: row.name } : {}),
      createdAt: new Date(row.createdAt).toISOString(),
      stored: row.stored,
    };
    return c.json(res);
  });

  app.put("/payloads/:id", async (c) => {
    const payloadId = param(c, "id", PayloadId, "Payload id");
    const body = await readJson(c, PublishManifestRequest, MANIFEST_JSON);
    if (body.chunkSize !== CHUNK_SIZE) {
      throw new ApiError(
        400,
        "invalid_body",
        `Chunk size '${body.chunkSize}' is not the protocol's '${CHUNK_SIZE}'`,
      );
    }
    const manifest: Manifest = { size: body.size, chunkSize: body.chunkSize, chunks: body.chunks };
    try {
      await verifyManifest(payloadId, manifest);
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw new ApiError(400, "manifest_mismatch", message);
    }
    const { row, created } = await store.savePayload(
      payloadId,
      manifest,
      { name: body.name, stored: false },
      "payload.publish",
    );
    return c.json(payloadInfo(row), created ? 201 : 200);
  });

  app.get("/payloads/:id/peers", async (c) => {
    const row = await knownPayload(c);
    const holders = await store.listHaves(row.payloadId);
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
  });

  app.post("/payloads/:id/have", async (c) => {
    const row = await knownPayload(c);
    const body = await readJson(c, HaveRequest, 256 * 1024);
    if (!await store.getPeer(body.peerId)) throw unknownPeer(body.peerId);
    let bits: Uint8Array;
    try {
      if (body.have !== undefined) {
        bits = fromBase64(body.have);
        assertBitfield(bits, row.chunks);
      } else {
        bits = bitfieldFromIndices(row.chunks, body.chunks!);
      }
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw new ApiError(400, "invalid_body", `Cannot take announcement: ${message}`);
    }
    const count = bitfieldCount(bits, row.chunks);
    await store.setHave(row.payloadId, body.peerId, bits, count);
    const res: z.infer<typeof HaveResponse> = {
      payloadId: row.payloadId,
      peerId: body.peerId,
      count,
    };
    return c.json(res);
  });

  app.get("/payloads/:id/chunks/:index", async (c) => {
    const row = await knownPayload(c);
    const index = Number(c.req.param("index"));
    if (!/^\d+$/.test(c.req.param("index")) || index >= row.chunks) {
      throw new ApiError(
        400,
        "invalid_index",
        `Chunk index '${c.req.param("index")}' is not in 0..${row.chunks - 1}`,
      );
    }
    const manifest = await store.getManifest(row);
    const bytes = row.stored ? await store.getChunk(manifest, index) : null;
    if (!bytes) throw notStored(row.payloadId);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/octet-stream",
      "x-chunk-sha256": manifest.chunks[index],
    });
  });

  app.get("/payloads/:id/content", async (c) => {
    const row = await knownPayload(c);
    if (!row.stored) throw notStored(row.payloadId);
    const manifest = await store.getManifest(row);
    let index = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        if (index >= manifest.chunks.length) return ctrl.close();
        const bytes = await store.getChunk(manifest, index++);
        if (!bytes) return ctrl.error(new IntegrityError(`Chunk '${index - 1}' is missing`));
        ctrl.enqueue(bytes);
      },
    });
    const filename = (row.name ?? row.payloadId).replace(/[^\w.-]/g, "_");
    return c.body(stream, 200, {
      "content-type": "application/octet-stream",
      "content-length": String(row.size),
      "content-disposition": `attachment; filename="${filename}"`,
    });
  });

  // ---- activity ----

  app.get("/activity", async (c) => c.json(await activity.query(parseQuery(c, ActivityQuery))));

  // ---- errors ----

  app.notFound((c) => {
    const err = new ApiError(404, "not_found", `No route for '${c.req.method} ${c.req.path}'`);
    return errorResponse(c, err);
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) return errorResponse(c, err);
    if (err instanceof ContentionError) {
      return errorResponse(c, new ApiError(503, "busy", err.message));
    }
    // Anything else is a storage or system failure, never the client's fault.
    console.error(`tracker: ${c.req.method} ${c.req.path} failed: ${err.stack ?? err}`);
    return errorResponse(
      c,
      new ApiError(503, "unavailable", `Tracker cannot serve this now: ${err.message}`),
      "storage.error",
    );
  });

  function errorResponse(c: Context<TrackerEnv>, err: ApiError, type = "error"): Response {
    activity.record(type, {
      method: c.req.method,
      path: c.req.path,
      status: err.status,
      code: err.code,
      message: err.message,
    });
    const body: ErrorBody = {
      error: {
        code: err.code,
        message: err.message,
        ...(err.issues ? { issues: err.issues } : {}),
      },
    };
    return c.json(body, err.status);
  }

  async function knownPayload(c: Context<TrackerEnv>): Promise<PayloadRow> {
    const id = param(c, "id", PayloadId, "Payload id");
    const row = await store.getPayload(id);
    if (!row) throw new ApiError(404, "unknown_payload", `No payload with id '${id}'`);
    return row;
  }

  return app;
}

/** Reads a stream into chunks stored in KV; returns the manifest. Holds one chunk at most. */
async function ingest(
  store: TrackerStore,
  source: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Manifest> {
  const chunker = new Chunker(CHUNK_SIZE);
  const chunks: string[] = [];
  const keep = async (bytes: Uint8Array) => {
    const hash = await sha256Hex(bytes);
    await store.putChunk(hash, bytes);
    chunks.push(hash);
  };
  if (source) {
    const reader = source.getReader();
    try {
      for (;;) {
        const { done, value } = await readPart(reader);
        if (done) break;
        if (chunker.total + value.length > max) {
          await reader.cancel();
          throw tooLarge(chunker.total + value.length, max, "at least ");
        }
        for (const chunk of chunker.push(value)) await keep(chunk);
      }
    } finally {
      reader.releaseLock();
    }
  }
  const last = chunker.finish();
  if (last) await keep(last);
  if (chunker.total === 0) throw new ApiError(400, "empty_payload", "Payload is empty");
  return { size: chunker.total, chunkSize: CHUNK_SIZE, chunks };
}

/** Reads a JSON body of at most `limit` bytes and validates it. */
async function readJson<S extends z.ZodType>(
  c: Context<TrackerEnv>,
  schema: S,
  limit: number,
  isUpload = false,
): Promise<z.infer<S>> {
  const bytes = await readLimited(c.req.raw, limit, isUpload);
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new ApiError(400, "bad_json", `Request body is not valid JSON: ${why}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error);
    throw new ApiError(
      400,
      "invalid_body",
      `Request body is invalid: ${issues.map((i) => `'${i.path}' ${i.message}`).join("; ")}`,
      issues,
    );
  }
  return parsed.data;
}

/** The whole body, refusing more than `limit` bytes (declared or actual) with 413. */
async function readLimited(req: Request, limit: number, isUpload: boolean): Promise<Uint8Array> {
  const over = (size: number, prefix = "") =>
    isUpload ? tooLarge(size, limit, prefix) : new ApiError(
      413,
      "payload_too_large",
      `Request body of ${prefix}${size} bytes is over this endpoint's limit of ${limit} bytes`,
    );
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (declared > limit) throw over(declared);
  if (!req.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await readPart(reader);
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw over(total, "at least ");
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One read of a request body; a client that hangs up mid-body is a 400, not a failure. */
async function readPart(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new ApiError(400, "incomplete_body", `Request body ended early: ${why}`);
  }
}

function parseQuery<S extends z.ZodType>(c: Context<TrackerEnv>, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) {
    const issues = zodIssues(parsed.error);
    throw new ApiError(
      400,
      "invalid_query",
      `Query is invalid: ${issues.map((i) => `'${i.path}' ${i.message}`).join("; ")}`,
      issues,
    );
  }
  return parsed.data;
}

function param(c: Context<TrackerEnv>, name: string, schema: z.ZodString, what: string): string {
  const value = c.req.param(name) ?? "";
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ApiError(400, "invalid_id", `${what} '${value}' ${parsed.error.issues[0].message}`);
  }
  return parsed.data;
}

function zodIssues(err: z.ZodError): { path: string; message: string }[] {
  return err.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message }));
}

function mediaType(c: Context<TrackerEnv>): string {
  return (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
}

function tooLarge(size: number, limit: number, prefix = ""): ApiError {
  return new ApiError(
    413,
    "payload_too_large",
    `Payload of ${prefix}${size} bytes is over this tracker's limit of ${limit} bytes ` +
      "(--max-upload); share large files peer to peer with `p2p put FILE`",
  );
}

function unknownPeer(peerId: string): ApiError {
  return new ApiError(
    404,
    "unknown_peer",
    `No live peer with id '${peerId}' (register with POST /peers)`,
  );
}

function notStored(payloadId: string): ApiError {
  return new ApiError(
    404,
    "not_stored",
    `The tracker does not hold the bytes of payload '${payloadId}'; ask its holders: GET /payloads/${payloadId}/peers`,
  );
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]";
}

function remoteHost(c: Context<TrackerEnv>): string | undefined {
  const host = c.env?.remoteAddr?.hostname;
  return host?.startsWith("::ffff:") ? host.slice(7) : host;
}

function peerInfo(row: PeerRow): PeerInfo {
  return {
    peerId: row.peerId,
    host: row.host,
    port: row.port,
    ...(row.name !== undefined ? { name: row.name } : {}),
    ...(row.ports !== undefined ? { ports: row.ports } : {}),
    ...(row.publicKey !== undefined ? { publicKey: row.publicKey } : {}),
    ...(row.version !== undefined ? { version: row.version } : {}),
    registeredAt: new Date(row.registeredAt).toISOString(),
    lastSeen: new Date(row.lastSeen).toISOString(),
    expiresAt: new Date(row.expiresAt).toISOString(),
  };
}

function payloadInfo(row: PayloadRow): PayloadInfo {
  return {
    payloadId: row.payloadId,
    size: row.size,
    chunkSize: row.chunkSize,
    chunks: row.chunks,
    ...(row.name ? { name: row.name } : {}),
    createdAt: new Date(row.createdAt).toISOString(),
    stored: row.stored,
  };
}
