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
    return ndjson(async (send) => {
      let last = 0;
      const res = await node.get(id, (p) => {
        const now = performance.now();
        if (now - last >= 100 || p.done === p.chunks) {
          last = now;
          send({ type: "progress", ...p });
        }
      });
      send({ type: "done", ...res });
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
    return new Response(node.store.exportStream(id), {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(p.size),
      },
    });
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
 * A streaming NDJSON answer: `run` sends events; an exception becomes a final
 * `{"type":"error"}` event. `signal` aborts when the client goes away.
 */
function ndjson(
  run: (send: (e: Record<string, unknown>) => void, signal: AbortSignal) => Promise<void>,
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  const stream = new ReadableStream<Uint8Array>({
    start(ctrl) {
      const send = (e: Record<string, unknown>) => {
        if (abort.signal.aborted) return;
        try {
          ctrl.enqueue(encoder.encode(JSON.stringify(e) + "\n"));
        } catch {
          abort.abort();
        }
      };
      run(send, abort.signal)
        .catch((err) =>
          send({ type: "error", message: (err as Error).message, name: (err as Error).name })
        )
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
    headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" },
  });
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
