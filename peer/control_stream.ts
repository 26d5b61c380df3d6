/**
 * The streamed answers of the control API (see `control.ts`): NDJSON streams of events
 * (`ndjson()`, over Hono's `stream()`), a download's events (`download()`), and the
 * activity records as server-sent events (`activityEvents()`, over `streamSSE()`). Every
 * streamed answer is marked not to be cached nor buffered by a proxy, and ends when the
 * client goes away or the peer stops.
 *
 * @module
 */
import type { Context } from "hono";
import { stream, streamSSE } from "hono/streaming";
import { z } from "zod";
import { type ActivityRecord, typeMatches } from "../proto/activity.ts";
import {
  type DownloadEvent,
  type DownloadProgress,
  type ErrorEvent,
  EventsQuery,
  LastEventId,
  SSE_PING,
  SSE_PING_MS,
} from "../proto/control.ts";
import { P2pError } from "../proto/errors.ts";
import { query } from "../lib/http_api.ts";
import type { ControlNode } from "./control.ts";
import { CancelledError } from "./downloads.ts";

/** Records a new `/_p2p/events` client gets first, and most after a `Last-Event-ID`. */
const EVENTS_BACKLOG = 50;
const EVENTS_RESUME = 1000;
/** Least time between two `progress` events of a download. */
const PROGRESS_EVERY_MS = 100;

/** The `chunk.received` record a download writes for every chunk it stores. */
const DownloadChunkRecord = z.looseObject({
  type: z.literal("chunk.received"),
  payloadId: z.string(),
  index: z.number().int().nonnegative(),
  from: z.string(),
  via: z.literal("download"),
});

/**
 * The open download answers of each payload, so that `DELETE /_p2p/downloads/:id`
 * can close them, which cancels the download when nobody else waits for it.
 */
export class DownloadWatchers {
  readonly #open = new Map<string, Set<AbortController>>();

  /** A watch of `payloadId` that `cancel()` aborts; `close()` when the answer ends. */
  watch(payloadId: string): { signal: AbortSignal; close(): void } {
    const ctrl = new AbortController();
    let set = this.#open.get(payloadId);
    if (!set) this.#open.set(payloadId, set = new Set());
    set.add(ctrl);
    return {
      signal: ctrl.signal,
      close: () => {
        set.delete(ctrl);
        if (set.size === 0 && this.#open.get(payloadId) === set) this.#open.delete(payloadId);
      },
    };
  }

  /** Aborts every watch of `payloadId`; returns how many there were. */
  cancel(payloadId: string): number {
    const set = this.#open.get(payloadId);
    this.#open.delete(payloadId);
    for (const ctrl of set ?? []) {
      ctrl.abort(new CancelledError(`The download was cancelled by its owner`));
    }
    return set?.size ?? 0;
  }
}

/**
 * `POST /_p2p/downloads/:id`: runs (or joins) the download, streaming `progress`
 * (every 100 ms at most, and at the end), one `chunk` event per position that becomes
 * held with the source of its bytes, then `done`; the payload is then pinned (the
 * owner's). The answer watches the download: when its client goes away or
 * `watchers.cancel()` closes it, the download is cancelled unless someone else waits.
 */
export function download(
  c: Context,
  node: ControlNode,
  id: string,
  watchers: DownloadWatchers,
): Response {
  return ndjson<DownloadEvent>(c, async (send, closed) => {
    const watch = watchers.watch(id);
    const signal = AbortSignal.any([closed, watch.signal]);
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
      // Every record passes here (a chunk served is one too): the type first, zod after.
      if (r.type !== "chunk.received") return;
      const rec = DownloadChunkRecord.safeParse(r);
      if (rec.success && rec.data.payloadId === id) {
        flush(node.store.getManifest(id)?.chunks[rec.data.index], rec.data.from);
      }
    });
    const stop = () => {
      signal.removeEventListener("abort", stop);
      offStore();
      offLog();
    };
    signal.addEventListener("abort", stop);
    const onProgress = (p: DownloadProgress) => {
      const now = performance.now();
      if (now - last >= PROGRESS_EVERY_MS || p.done === p.chunks) {
        last = now;
        send({ type: "progress", ...p });
      }
    };
    try {
      const res = await node.get(id, Object.assign(onProgress, { signal }));
      await node.store.pin(id);
      // Positions filled by chunks this peer already held for other payloads.
      flush(undefined, "local");
      send({ type: "done", ...res });
    } finally {
      watch.close();
      stop();
    }
  });
}

/**
 * `GET /_p2p/events`: activity records as server-sent `activity` events, each with its
 * id as the event id: the newest first (or those after `Last-Event-ID`), then each new
 * one, and a `: ping` comment every `pingMs` (15 s); ends when the client goes or the
 * peer stops.
 */
export function activityEvents(
  c: Context,
  node: ControlNode,
  pingMs = SSE_PING_MS,
): Response {
  const { type } = query(c, EventsQuery);
  // A reconnecting EventSource says what it saw last: resume after it.
  const header = c.req.header("last-event-id");
  const lastId = header === undefined ? undefined : LastEventId.safeParse(header);
  const since = lastId?.success ? lastId.data : undefined;
  const res = streamSSE(c, async (sse) => {
    // writeSSE() awaits before it writes: chained, events keep their order.
    let queue = Promise.resolve();
    const write = (text: string) => {
      queue = queue.then(() => sse.write(text)).then(() => undefined);
    };
    const send = (r: ActivityRecord) => {
      queue = queue.then(() =>
        sse.writeSSE({ event: "activity", id: String(r.id), data: JSON.stringify(r) })
      );
    };
    const closed = new AbortController();
    sse.onAbort(() => closed.abort());
    const limit = since === undefined ? EVENTS_BACKLOG : EVENTS_RESUME;
    for (const r of node.log.query({ since, limit, type }).records) send(r);
    const stop = node.log.follow((r) => {
      if (typeMatches(r.type, type)) send(r);
    });
    // A comment line now and then keeps idle connections open through proxies.
    const ping = setInterval(() => write(`${SSE_PING}\n\n`), pingMs);
    try {
      await untilAborted(AbortSignal.any([closed.signal, node.signal]));
    } finally {
      clearInterval(ping);
      stop();
    }
    await queue;
  });
  return streamingHeaders(res);
}

/** Longest wait of a streamed line for the ones after it (`ndjson()`). */
const LINE_BATCH_MS = 20;

/**
 * A streaming NDJSON answer: `run` sends events, one JSON line each, batched for at
 * most 20 ms; `signal` aborts when the client goes away. An exception becomes a last
 * `{"type":"error"}` event.
 */
export function ndjson<T>(
  c: Context,
  run: (send: (e: T) => void, signal: AbortSignal) => Promise<void>,
): Response {
  c.header("content-type", "application/x-ndjson");
  return streamingHeaders(stream(c, async (s) => {
    const closed = new AbortController();
    s.onAbort(() => closed.abort());
    // Lines go out together, at most LINE_BATCH_MS after the first of them (a download
    // sends one per chunk), and all at the end; write() hands its bytes on before it
    // awaits, so they keep their order.
    let lines: string[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (lines.length === 0) return;
      const text = lines.join("");
      lines = [];
      void s.write(text);
    };
    const line = (e: T | ErrorEvent) => {
      if (lines.push(JSON.stringify(e) + "\n") === 1) timer = setTimeout(flush, LINE_BATCH_MS);
    };
    try {
      await run(line, closed.signal);
    } catch (err) {
      line(errorEvent(err));
    }
    flush();
  }));
}

/** The `error` event of a stream that failed with `err`. */
function errorEvent(err: unknown): ErrorEvent {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    type: "error",
    message: e.message,
    name: e.name,
    ...(e instanceof P2pError ? { code: e.code } : {}),
  };
}

/**
 * The headers of every streamed answer: not cached, not buffered by a proxy (nginx's
 * `x-accel-buffering`). Hono's streaming helpers add `Transfer-Encoding` and
 * `Connection`, which are the HTTP server's to choose: dropped.
 */
function streamingHeaders(res: Response): Response {
  res.headers.set("cache-control", "no-store");
  res.headers.set("x-accel-buffering", "no");
  res.headers.delete("transfer-encoding");
  res.headers.delete("connection");
  return res;
}

/** Resolves when `signal` aborts. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  signal.addEventListener("abort", () => resolve(), { once: true });
  return promise;
}
