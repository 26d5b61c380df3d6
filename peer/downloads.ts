/**
 * The peer's running downloads: `get()` fetches a payload into the store from every
 * source sourcing finds, one run per payload at a time; a second caller joins the
 * running one and gets its progress too. Each run is logged (`download.start`,
 * `chunk.received`, `download.drop`, `download.done` or `download.fail`). A payload
 * whose missing chunks do not fit in the store's room is refused before a chunk is
 * fetched (`store_full`, and a `download.refused` record): the tracker's assignments
 * and the owner's `get` alike.
 *
 * @module
 */
import { download, type DownloadResult, type DownloadStore, type Progress } from "./downloader.ts";
import type { PeerLog } from "./activity.ts";
import type { Sourcing } from "./sourcing.ts";
import { errorMessage, TooLargeError } from "../proto/errors.ts";
import { chunkLength } from "../proto/manifest.ts";

/** What downloads need of their neighbours. */
export interface DownloadsDeps {
  /** Where chunks go; `room()` (bytes that still fit) is checked before a download starts. */
  store: DownloadStore & { room?(): number };
  sourcing: Pick<Sourcing, "manifest" | "sources">;
  log: Pick<PeerLog, "record">;
  /** Aborts when the peer stops: running downloads end. */
  signal: AbortSignal;
}

/** One download per payload at a time, with its progress fanned out to every caller. */
export class Downloads {
  readonly #deps: DownloadsDeps;
  readonly #runs = new Map<string, Promise<DownloadResult>>();
  readonly #progress = new Map<string, Set<(p: Progress) => void>>();

  constructor(deps: DownloadsDeps) {
    this.#deps = deps;
  }

  /** The payloads being downloaded now. */
  running(): string[] {
    return [...this.#runs.keys()];
  }

  /** Settles once every running download has (for a graceful stop). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()]);
  }

  /** Downloads a payload into the store, or joins its running download. */
  get(payloadId: string, onProgress?: (p: Progress) => void): Promise<DownloadResult> {
    // Every caller gets the progress, also one that joins a running download.
    if (onProgress) {
      let set = this.#progress.get(payloadId);
      if (!set) this.#progress.set(payloadId, set = new Set());
      set.add(onProgress);
    }
    const running = this.#runs.get(payloadId);
    if (running) return running;
    const run = this.#run(payloadId);
    this.#runs.set(payloadId, run);
    run.finally(() => {
      this.#runs.delete(payloadId);
      this.#progress.delete(payloadId);
    }).catch(() => undefined);
    return run;
  }

  async #run(payloadId: string): Promise<DownloadResult> {
    const { sourcing, log, store } = this.#deps;
    const m = await sourcing.manifest(payloadId);
    const room = store.room?.();
    if (room !== undefined) {
      const need = store.missing(payloadId).reduce(
        (n, i) => n + chunkLength(m.size, i, m.chunkSize),
        0,
      );
      if (need > room) {
        log.record("download.refused", { payloadId, code: "store_full", need, room });
        throw new TooLargeError(
          "store_full",
          `Cannot download '${payloadId}': it needs '${need}' more bytes, the store has room for '${room}'`,
        );
      }
    }
    log.record("download.start", { payloadId, size: m.size, chunks: m.chunks.length });
    try {
      const res = await download({
        payloadId,
        manifest: m,
        store,
        findSources: () => sourcing.sources(payloadId, m),
        onProgress: (p) => {
          for (const f of this.#progress.get(payloadId) ?? []) f(p);
        },
        onChunk: (index, source) =>
          log.record("chunk.received", { from: source, payloadId, index, via: "download" }),
        onDrop: (source, reason) => log.record("download.drop", { payloadId, source, reason }),
        signal: this.#deps.signal,
      });
      log.record("download.done", {
        payloadId,
        bytes: res.bytes,
        seconds: Math.round(res.seconds * 1000) / 1000,
        resumed: res.resumed,
        chunksBySource: res.chunksBySource,
      });
      return res;
    } catch (err) {
      log.record("download.fail", { payloadId, message: errorMessage(err) });
      throw err;
    }
  }
}
