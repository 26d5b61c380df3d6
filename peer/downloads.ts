/**
 * The peer's running downloads: `get()` fetches a payload into the store from every
 * source sourcing finds, one run per payload at a time; a second caller joins the
 * running one and gets its progress too. Each run is logged (`download.start`,
 * `chunk.received`, `download.drop`, `download.done` or `download.fail`). A payload
 * whose missing chunks do not fit in the store's room is refused before a chunk is
 * fetched (`store_full`, and a `download.refused` record): the tracker's assignments
 * and the owner's `get` alike; a download into a linked file (`get -o` on this
 * machine, `ChunkStore.linkTo()`) takes no room in the store and is not refused.
 *
 * A caller may watch a download with a signal (`ProgressListener.signal`, the control
 * API's request): when every watching caller has gone and no caller without a signal
 * (the tracker's assignment) waits for it, the run is cancelled (`download.cancel`,
 * with how far it got). The chunks stored so far stay, so the next `get()` resumes.
 *
 * @module
 */
import { download, type DownloadResult, type DownloadStore, type Progress } from "./downloader.ts";
import type { PeerLog } from "./activity.ts";
import type { Sourcing } from "./sourcing.ts";
import { errorMessage, P2pError, TooLargeError } from "../proto/errors.ts";
import { chunkLength } from "../proto/manifest.ts";

/** What downloads need of their neighbours. */
export interface DownloadsDeps {
  /** Where chunks go; `room()` (bytes that still fit) is checked before a download starts. */
  store: DownloadStore & {
    room?(): number;
    /** Whether the payload's chunks go to a linked file (`get -o` here): no room needed. */
    linking?(payloadId: string): boolean;
  };
  sourcing: Pick<Sourcing, "manifest" | "sources">;
  log: Pick<PeerLog, "record">;
  /** Aborts when the peer stops: running downloads end. */
  signal: AbortSignal;
}

/**
 * A caller's progress listener; with a `signal`, the caller stops watching when it
 * aborts, and the run is cancelled once no caller watches or waits.
 */
export type ProgressListener = ((p: Progress) => void) & { signal?: AbortSignal };

/** A download cancelled by its callers (status 499 has no name: 409, it can be re-run). */
export class CancelledError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("cancelled", message, { ...options, status: 409 });
  }
}

/** One running download: its result, its abort, and who waits for it. */
interface Run {
  readonly result: Promise<DownloadResult>;
  readonly abort: AbortController;
  /** Callers with a signal that has not aborted. */
  watchers: number;
  /** Callers without a signal: the run is never cancelled under them. */
  keepers: number;
}

/** One download per payload at a time, with its progress fanned out to every caller. */
export class Downloads {
  readonly #deps: DownloadsDeps;
  readonly #runs = new Map<string, Run>();
  readonly #progress = new Map<string, Set<(p: Progress) => void>>();
  /** The last progress of each run, for the cancel record. */
  readonly #last = new Map<string, Progress>();

  constructor(deps: DownloadsDeps) {
    this.#deps = deps;
  }

  /** The payloads being downloaded now. */
  running(): string[] {
    return [...this.#runs.keys()];
  }

  /** Settles once every running download has (for a graceful stop). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()].map((r) => r.result));
  }

  /**
   * Downloads a payload into the store, or joins its running download. A listener
   * with a `signal` watches: when it aborts, this call rejects with the signal's
   * reason, and the run is cancelled if nobody else watches or waits.
   */
  get(payloadId: string, onProgress?: ProgressListener): Promise<DownloadResult> {
    // Every caller gets the progress, also one that joins a running download.
    if (onProgress) {
      let set = this.#progress.get(payloadId);
      if (!set) this.#progress.set(payloadId, set = new Set());
      set.add(onProgress);
    }
    let run = this.#runs.get(payloadId);
    if (!run) {
      const abort = new AbortController();
      const result = this.#run(payloadId, abort.signal);
      run = { result, abort, watchers: 0, keepers: 0 };
      this.#runs.set(payloadId, run);
      result.finally(() => {
        this.#runs.delete(payloadId);
        this.#progress.delete(payloadId);
        this.#last.delete(payloadId);
      }).catch(() => undefined);
    }
    const signal = onProgress?.signal;
    if (!signal) {
      run.keepers++;
      return run.result;
    }
    return this.#watch(payloadId, run, onProgress, signal);
  }

  /** A watching caller's view of `run`: rejects when its signal aborts, and may cancel. */
  #watch(
    payloadId: string,
    run: Run,
    listener: ProgressListener,
    signal: AbortSignal,
  ): Promise<DownloadResult> {
    run.watchers++;
    const { promise, resolve, reject } = Promise.withResolvers<DownloadResult>();
    const leave = () => {
      this.#progress.get(payloadId)?.delete(listener);
      run.watchers--;
      reject(signal.reason);
      if (run.watchers === 0 && run.keepers === 0 && this.#runs.get(payloadId) === run) {
        const last = this.#last.get(payloadId);
        this.#deps.log.record("download.cancel", {
          payloadId,
          done: last?.done ?? 0,
          chunks: last?.chunks ?? 0,
          bytes: last?.bytes ?? 0,
        });
        run.abort.abort(new CancelledError(`The download of '${payloadId}' was cancelled`));
      }
    };
    if (signal.aborted) leave();
    else signal.addEventListener("abort", leave, { once: true });
    run.result.then(resolve, reject).finally(() => signal.removeEventListener("abort", leave));
    return promise;
  }

  async #run(payloadId: string, cancel: AbortSignal): Promise<DownloadResult> {
    const { sourcing, log, store } = this.#deps;
    const m = await sourcing.manifest(payloadId);
    cancel.throwIfAborted();
    const room = store.linking?.(payloadId) ? undefined : store.room?.();
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
          this.#last.set(payloadId, p);
          for (const f of this.#progress.get(payloadId) ?? []) f(p);
        },
        onChunk: (index, source) =>
          log.record("chunk.received", { from: source, payloadId, index, via: "download" }),
        onDrop: (source, reason) => log.record("download.drop", { payloadId, source, reason }),
        signal: AbortSignal.any([this.#deps.signal, cancel]),
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
      if (cancel.aborted) throw cancel.reason;
      log.record("download.fail", { payloadId, message: errorMessage(err) });
      throw err;
    }
  }
}
