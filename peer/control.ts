/**
 * The peer's control API under `/_p2p/`, served on its HTTP port: what the CLI
 * client commands (`put`, `get`, `where`, `peers`, `status`, `log`, `discover`) and the
 * web app call. Long operations answer with NDJSON streams of events, one JSON
 * object a line, ending with `{"type":"done",…}` or `{"type":"error",…}`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { z } from "zod";
import type { PeerNode } from "./node.ts";
import { ActivityQuery, typeMatches } from "../proto/activity.ts";
import { PayloadId, PeerId } from "../proto/ids.ts";
import { DiscoverRequest, parseRange } from "../proto/discovery.ts";

/** An error answer of the control API. */
class ControlError extends Error {
  readonly status: 400 | 404 | 409 | 415 | 502 | 503;
  readonly code: string;
  constructor(status: ControlError["status"], code: string, message: string) {
    super(message);
    this.name = "ControlError";
    this.status = status;
    this.code = code;
  }
}

/** Builds the control API of a node. */
export function createControlApp(node: PeerNode): Hono {
  const app = new Hono();

  app.get("/_p2p/status", (c) => c.json(node.status()));

  app.get(
    "/_p2p/peers",
    (c) => c.json({ peers: node.table.list().map((p) => ({ ...p, stale: p.failures > 0 })) }),
  );

  app.post("/_p2p/discover", async (c) => {
    let body: unknown = {};
    const text = await c.req.text();
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ControlError(400, "invalid_json", "Body is not JSON");
      }
    }
    const parsed = DiscoverRequest.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ControlError(400, "invalid_body", `${issue.path.join(".")}: ${issue.message}`);
    }
    const range = parsed.data.range;
    if (range !== undefined) {
      try {
        parseRange(range);
      } catch (err) {
        throw new ControlError(400, "invalid_range", (err as Error).message);
      }
    }
    return c.json(await node.discover(range));
  });

  app.get("/_p2p/payloads", (c) => c.json({ payloads: node.store.list() }));

  app.get("/_p2p/network/payloads", async (c) => c.json(await node.networkPayloads()));

  app.get("/_p2p/events", (c) => {
    const type = c.req.query("type");
    if (type !== undefined && (type.length === 0 || type.length > 64)) {
      throw new ControlError(400, "invalid_query", "'type' must be 1 to 64 characters");
    }
    // A reconnecting EventSource says what it saw last: resume after it.
    const lastId = Number(c.req.header("last-event-id"));
    const since = Number.isSafeInteger(lastId) && lastId >= 0 ? lastId : undefined;
    return sse((send, signal) => {
      const backlog = node.log.query({ since, limit: since === undefined ? 50 : 1000, type });
      for (const r of backlog.records) send("activity", r);
      const { promise, resolve } = Promise.withResolvers<void>();
      const stop = node.log.follow((r) => {
        if (typeMatches(r.type, type)) send("activity", r);
      });
      // A comment line now and then keeps idle connections open through proxies.
      const ping = setInterval(() => send("", null), 15_000);
      AbortSignal.any([signal, node.signal]).addEventListener("abort", () => {
        clearInterval(ping);
        stop();
        resolve();
      });
      return promise;
    });
  });

  app.post("/_p2p/payloads", (c) => {
    const name = c.req.query("name");
    if (name !== undefined && (name.length === 0 || name.length > 255)) {
      throw new ControlError(400, "invalid_query", "Payload name must be 1 to 255 characters");
    }
    const body = c.req.raw.body;
    if (!body) throw new ControlError(400, "empty_payload", "Payload is empty");
    return ndjson(async (send) => {
      const res = await node.put(body, name, (e) => send(e));
      send({ type: "done", ...res });
    });
  });

  app.post("/_p2p/downloads/:id", (c) => {
    const id = param(c, "id", PayloadId, "Payload id");
    return ndjson(async (send, signal) => {
      let last = 0;
      // Every position that becomes held, with the source of its bytes: a chunk
      // received fills each position of the payload that has the same hash.
      const filled = new Set<number>();
      const offStore = node.store.onChunk((payloadId, index) => {
        if (payloadId === id) filled.add(index);
      });
      const flush = (hash: string | undefined, source: string) => {
        const chunks = node.store.getManifest(id)?.chunks ?? [];
        for (const i of [...filled]) {
          if (hash !== undefined && chunks[i] !== hash) continue;
          filled.delete(i);
          send({ type: "chunk", index: i, source });
        }
      };
      const offLog = node.log.follow((r) => {
        if (r.type === "chunk.received" && r.payloadId === id && r.via === "download") {
          flush(node.store.getManifest(id)?.chunks[Number(r.index)], String(r.from));
        }
      });
      const stop = () => {
        offStore();
        offLog();
      };
      signal.addEventListener("abort", stop);
      try {
        const res = await node.get(id, (p) => {
          const now = performance.now();
          if (now - last >= 100 || p.done === p.chunks) {
            last = now;
            send({ type: "progress", ...p });
          }
        });
        // Positions filled by chunks this peer already held for other payloads.
        flush(undefined, "local");
        send({ type: "done", ...res });
      } finally {
        stop();
      }
    });
  });

  app.get("/_p2p/payloads/:id/content", (c) => {
    const id = param(c, "id", PayloadId, "Payload id");
    const p = node.store.payload(id);
    if (!p) throw new ControlError(404, "unknown_payload", `No payload '${id}' here; get it first`);
    if (!p.complete) {
      throw new ControlError(
        409,
        "incomplete",
        `Payload '${id}' is incomplete here (${p.held}/${p.chunks} chunks)`,
      );
    }
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "content-length": String(p.size),
    };
    if (c.req.query("download") !== undefined) {
      headers["content-disposition"] = contentDisposition(p.name ?? `${id.slice(0, 16)}.bin`);
    }
    return new Response(node.store.exportStream(id), { headers });
  });

  app.get("/_p2p/payloads/:id/where", async (c) => {
    const id = param(c, "id", PayloadId, "Payload id");
    try {
      return c.json(await node.where(id));
    } catch (err) {
      throw new ControlError(404, "unknown_payload", (err as Error).message);
    }
  });

  app.get("/_p2p/log", async (c) => {
    const parsed = ActivityQuery.extend({
      peer: PeerId.optional(),
      follow: z.enum(["0", "1", "true", "false"]).optional(),
    }).safeParse(c.req.query());
    if (!parsed.success) {
      throw new ControlError(
        400,
        "invalid_query",
        parsed.error.issues.map((i) => `'${i.path.join(".")}' ${i.message}`).join("; "),
      );
    }
    // Without `since`, the newest records.
    const q = {
      ...parsed.data,
      since: c.req.query("since") === undefined ? undefined : parsed.data.since,
    };
    if (q.peer) {
      try {
        // Filtered here too, for peers of older versions that ignore `type`.
        const records = (await node.remoteLog(q.peer, q.since, q.limit, q.type))
          .filter((r) => typeMatches(String(r.type), q.type));
        return c.json({ records, next: records.at(-1)?.id ?? null });
      } catch (err) {
        const status = err instanceof RangeError ? 404 : 502;
        throw new ControlError(
          status,
          status === 404 ? "unknown_peer" : "peer_unreachable",
          (err as Error).message,
        );
      }
    }
    if (q.follow === "1" || q.follow === "true") {
      return ndjson((send, signal) => {
        for (const r of node.log.query(q).records) send(r);
        const { promise, resolve } = Promise.withResolvers<void>();
        const stop = node.log.follow((r) => {
          if (typeMatches(r.type, q.type)) send(r);
        });
        const end = AbortSignal.any([signal, node.signal]);
        end.addEventListener("abort", () => {
          stop();
          resolve();
        });
        return promise;
      });
    }
    return c.json(node.log.query(q));
  });

  app.notFound((c) =>
    c.json({
      error: { code: "not_found", message: `No route for '${c.req.method} ${c.req.path}'` },
    }, 404)
  );

  app.onError((err, c) => {
    if (err instanceof ControlError) {
      return c.json({ error: { code: err.code, message: err.message } }, err.status);
    }
    node.log.record("error", { during: `${c.req.method} ${c.req.path}`, message: err.message });
    return c.json({ error: { code: "unavailable", message: err.message } }, 503);
  });

  return app;
}

/**
 * A streamed text answer: `run` writes text; `onError` turns an exception from it
 * into a last piece of text. `signal` aborts when the client goes away.
 */
function textStream(
  contentType: string,
  run: (write: (text: string) => void, signal: AbortSignal) => Promise<void>,
  onError: (err: Error) => string | undefined,
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  const stream = new ReadableStream<Uint8Array>({
    start(ctrl) {
      const write = (text: string) => {
        if (abort.signal.aborted) return;
        try {
          ctrl.enqueue(encoder.encode(text));
        } catch {
          abort.abort();
        }
      };
      run(write, abort.signal)
        .catch((err) => {
          const last = onError(err as Error);
          if (last !== undefined) write(last);
        })
        .finally(() => {
          try {
            ctrl.close();
          } catch {
            // Already cancelled by the client.
          }
        });
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(stream, {
    headers: {
      "content-type": contentType,
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}

/**
 * A server-sent events answer: `send(event, data)` writes one event (data as JSON,
 * its `id` as the event id), or a comment line when `event` is empty.
 */
function sse(
  run: (send: (event: string, data: unknown) => void, signal: AbortSignal) => Promise<void>,
): Response {
  return textStream(
    "text/event-stream",
    (write, signal) =>
      run((event, data) => {
        if (event === "") return write(": ping\n\n");
        const id = typeof data === "object" && data && "id" in data ? `id: ${data.id}\n` : "";
        write(`event: ${event}\n${id}data: ${JSON.stringify(data)}\n\n`);
      }, signal),
    () => undefined,
  );
}

/**
 * A streaming NDJSON answer: `run` sends events; an exception becomes a final
 * `{"type":"error"}` event.
 */
function ndjson(
  run: (send: (e: Record<string, unknown>) => void, signal: AbortSignal) => Promise<void>,
): Response {
  const line = (e: Record<string, unknown>) => JSON.stringify(e) + "\n";
  return textStream(
    "application/x-ndjson",
    (write, signal) => run((e) => write(line(e)), signal),
    (err) => line({ type: "error", message: err.message, name: err.name }),
  );
}

/** A `Content-Disposition: attachment` header for a file name (RFC 6266, UTF-8 too). */
function contentDisposition(name: string): string {
  const base = name.split(/[\\/]/).pop() || "payload";
  const ascii = base.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}

function param(c: Context, name: string, schema: z.ZodString, what: string): string {
  const value = c.req.param(name) ?? "";
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ControlError(
      400,
      "invalid_id",
      `${what} '${value}' ${parsed.error.issues[0].message}`,
    );
  }
  return parsed.data;
}
