/**
 * Multi-source download of one payload into the chunk store.
 *
 * Every source (a peer over TCP, or the tracker over HTTP) says which chunk
 * positions it holds. The scheduler keeps up to `pipeline` requests in flight per
 * source and `maxInFlight` in all, always asking for the rarest missing chunk that source holds, so copies
 * spread through the network. Each chunk is verified against the manifest before it
 * is stored (`ChunkStore.writeChunk`); a source that sends a bad chunk gets a strike
 * and is dropped for this download after `maxStrikes`; a source that errors or
 * times out loses the chunk to another holder and, after repeated failures, is
 * dropped. Near the end, idle sources race for the chunks still in flight
 * (endgame). Every `refreshMs` the sources are looked up again while chunks are
 * still coming: what each source holds is brought up to date and new holders join,
 * so downloaders of the same payload serve each other the chunks they already have
 * instead of all waiting on the first holder (a swarm). Chunks already held are never fetched again, so an interrupted
 * download resumes where it stopped, and positions with identical bytes (zero-filled
 * regions, say) are fetched once.
 *
 * @module
 */
import { errorMessage, IntegrityError, P2pError } from "../proto/errors.ts";
import { bitfieldLength, hasBit } from "../proto/bitfield.ts";
import type { Manifest } from "../proto/manifest.ts";

/** Where chunks can come from. */
export interface Source {
  /** A peerId, or `tracker`. */
  readonly id: string;
  /** Bitfield of the chunk positions it holds (MSB first). */
  have: Uint8Array;
  /** Fetches one chunk; rejects on error, timeout or abort. */
  fetch(index: number, signal: AbortSignal): Promise<Uint8Array>;
  /**
   * Called once with each array `fetch` resolved to, when the downloader is done with
   * it (stored, or not needed): the source may reuse its memory.
   */
  release?(bytes: Uint8Array): void;
}

/** What the downloader needs of the store. */
export interface DownloadStore {
  missing(payloadId: string): number[];
  writeChunk(payloadId: string, index: number, bytes: Uint8Array): Promise<boolean>;
}

/** Progress, reported after every chunk and whenever a source comes or goes. */
export interface Progress {
  payloadId: string;
  size: number;
  chunks: number;
  done: number;
  bytes: number;
  /** Bytes fetched in this run (not counting chunks held before it started). */
  fetchedBytes: number;
  seconds: number;
  sources: number;
}

/** The outcome of a download. */
export interface DownloadResult {
  payloadId: string;
  size: number;
  /** Bytes fetched in this run. */
  bytes: number;
  seconds: number;
  /** Chunks already held when the run started. */
  resumed: number;
  chunksBySource: Record<string, number>;
  dropped: { source: string; reason: string }[];
}

/** Options of `download()`. */
export interface DownloadOptions {
  payloadId: string;
  manifest: Manifest;
  store: DownloadStore;
  /**
   * Finds sources; called at start, every `refreshMs` while the download runs, and
   * again whenever every source is gone.
   */
  findSources: () => Promise<Source[]>;
  /** Time between two lookups of sources while chunks are coming (default 2000 ms; 0: none). */
  refreshMs?: number;
  /** Requests in flight per source (default 8). */
  pipeline?: number;
  /**
   * Requests in flight over all sources (default 16): bounds the chunk bytes held in
   * memory whatever the number of sources, and one source alone still gets a full
   * pipeline. A request holds its slot until its chunk is verified and written, so
   * with 8 over three encrypted sources the slots, not the links, were the bound: 1
   * GiB in 7.02-8.91 s with 8, 4.04-5.92 s with 16 (2026-12-03).
   */
  maxInFlight?: number;
  /** A chunk not received within this is taken from someone else (default 15 s). */
  chunkTimeoutMs?: number;
  /** Bad chunks before a source is dropped (default 2). */
  maxStrikes?: number;
  /** Failed requests before a source is dropped (default 3). */
  maxFailures?: number;
  /** Rounds of `findSources` that may come back empty before giving up (default 3). */
  maxRefresh?: number;
  onProgress?: (p: Progress) => void;
  /** Called after each chunk is verified and stored. */
  onChunk?: (index: number, source: string) => void;
  /** Called when a source is dropped. */
  onDrop?: (source: string, reason: string) => void;
  signal?: AbortSignal;
}

/** A download that cannot finish: no source holds what is missing. Code `no_source`, status 502. */
export class DownloadError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("no_source", message, { ...options, status: 502 });
  }
}

interface SourceState {
  source: Source;
  inflight: Map<number, AbortController>;
  strikes: number;
  failures: number;
  chunks: number;
}

/** Downloads every missing chunk of a payload into the store. */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const { payloadId, manifest, store } = opts;
  const pipeline = opts.pipeline ?? 8;
  const maxInFlight = opts.maxInFlight ?? 16;
  const chunkTimeoutMs = opts.chunkTimeoutMs ?? 15_000;
  const maxStrikes = opts.maxStrikes ?? 2;
  const maxFailures = opts.maxFailures ?? 3;
  const n = manifest.chunks.length;
  const started = performance.now();
  const needed = new Set(store.missing(payloadId));
  const resumed = n - needed.size;
  const chunkLen = (i: number) =>
    i === n - 1 ? manifest.size - i * manifest.chunkSize : manifest.chunkSize;
  let doneBytes = 0;
  for (let i = 0; i < n; i++) if (!needed.has(i)) doneBytes += chunkLen(i);
  let fetchedBytes = 0;
  const sources = new Map<string, SourceState>();
  /** Dropped for failures: may come back when sources are looked up again. */
  const gone = new Set<string>();
  /** Dropped for sending bad chunks: never used again in this download. */
  const banned = new Set<string>();
  let fatal: unknown;
  const dropped: DownloadResult["dropped"] = [];
  const bySource: Record<string, number> = {};
  /** How many live sources hold each chunk. */
  const availability = new Uint16Array(n);
  /** Which source is fetching a chunk (several in endgame). */
  const assigned = new Map<number, Set<string>>();
  const wake = { resolve: () => {} };
  /** Aborted once the download ends, however: stops the refresh loop. */
  const finished = new AbortController();
  let refreshes = 0;
  /** Positions that share their bytes with another one: fetched once, stored at each. */
  const twins = new Map<string, number[]>();
  manifest.chunks.forEach((h, i) => twins.set(h, [...(twins.get(h) ?? []), i]));
  for (const [h, list] of twins) if (list.length < 2) twins.delete(h);

  const progress = () =>
    opts.onProgress?.({
      payloadId,
      size: manifest.size,
      chunks: n,
      done: n - needed.size,
      bytes: doneBytes,
      fetchedBytes,
      seconds: (performance.now() - started) / 1000,
      sources: sources.size,
    });

  const addSource = (s: Source) => {
    if (s.have.length !== bitfieldLength(n)) return;
    const known = sources.get(s.id);
    if (known) {
      // A later answer of the same source: what it holds now.
      const before = known.source.have;
      for (let i = 0; i < n; i++) availability[i] += +hasBit(s.have, i) - +hasBit(before, i);
      // Its fresh answer (over the connection open now); requests in flight go on.
      known.source = s;
      return;
    }
    if (gone.has(s.id) || banned.has(s.id)) return;
    sources.set(s.id, { source: s, inflight: new Map(), strikes: 0, failures: 0, chunks: 0 });
    for (let i = 0; i < n; i++) if (hasBit(s.have, i)) availability[i]++;
  };

  const drop = (st: SourceState, reason: string, ban = false) => {
    if (!sources.delete(st.source.id)) return;
    (ban ? banned : gone).add(st.source.id);
    for (let i = 0; i < n; i++) if (hasBit(st.source.have, i)) availability[i]--;
    for (const [i, ctrl] of st.inflight) {
      ctrl.abort();
      assigned.get(i)?.delete(st.source.id);
    }
    st.inflight.clear();
    dropped.push({ source: st.source.id, reason });
    opts.onDrop?.(st.source.id, reason);
    progress();
  };

  /** The rarest needed chunk this source holds that nobody fetches; endgame: any in flight. */
  const pick = (st: SourceState): number | undefined => {
    let best: number | undefined;
    let bestRarity = Infinity;
    let endgame: number | undefined;
    for (const i of needed) {
      if (!hasBit(st.source.have, i) || st.inflight.has(i)) continue;
      const takers = assigned.get(i)?.size ?? 0;
      if (takers === 0) {
        const rarity = availability[i] + Math.random() * 0.5;
        if (rarity < bestRarity) {
          bestRarity = rarity;
          best = i;
        }
      } else if (endgame === undefined && takers < 2) {
        endgame = i;
      }
    }
    if (best !== undefined) return best;
    // Endgame: only once nothing is left unassigned anywhere.
    return endgame;
  };

  const fetchOne = async (st: SourceState, index: number) => {
    const ctrl = new AbortController();
    st.inflight.set(index, ctrl);
    let set = assigned.get(index);
    if (!set) assigned.set(index, set = new Set());
    set.add(st.source.id);
    const signal = AbortSignal.any([
      ctrl.signal,
      AbortSignal.timeout(chunkTimeoutMs),
      ...(opts.signal ? [opts.signal] : []),
    ]);
    try {
      const bytes = await st.source.fetch(index, signal);
      try {
        await take(st, index, bytes);
      } finally {
        st.source.release?.(bytes);
      }
    } catch (err) {
      // Aborted by us (dropped source, endgame loser) or by the caller: not a failure.
      if (opts.signal?.aborted || ctrl.signal.aborted) return;
      st.failures++;
      if (st.failures >= maxFailures) {
        drop(st, `failed ${st.failures} requests in a row: ${errorMessage(err)}`);
      }
    } finally {
      st.inflight.delete(index);
      assigned.get(index)?.delete(st.source.id);
      if (assigned.get(index)?.size === 0) assigned.delete(index);
      wake.resolve();
    }
  };

  /** Verifies and stores a chunk `st` sent, and the positions that share its bytes. */
  const take = async (st: SourceState, index: number, bytes: Uint8Array) => {
    if (!needed.has(index)) return; // another source won the race
    let stored: boolean;
    try {
      stored = await store.writeChunk(payloadId, index, bytes);
    } catch (err) {
      if (err instanceof IntegrityError) {
        st.strikes++;
        if (st.strikes >= maxStrikes) {
          drop(st, `sent ${st.strikes} chunks that fail verification`, true);
        }
        return;
      }
      // The store itself failed (disk full, say): that ends the download.
      fatal ??= err;
      return;
    }
    if (needed.delete(index)) {
      doneBytes += bytes.length;
      fetchedBytes += bytes.length;
      st.chunks++;
      st.failures = 0;
      bySource[st.source.id] = (bySource[st.source.id] ?? 0) + 1;
      if (stored) opts.onChunk?.(index, st.source.id);
      // Cancel endgame duplicates.
      for (const other of assigned.get(index) ?? []) {
        if (other !== st.source.id) sources.get(other)?.inflight.get(index)?.abort();
      }
      // The same bytes at other positions: stored there too, not fetched again.
      for (const j of twins.get(manifest.chunks[index]) ?? []) {
        if (!needed.has(j)) continue;
        try {
          if (await store.writeChunk(payloadId, j, bytes)) opts.onChunk?.(j, st.source.id);
        } catch (err) {
          fatal ??= err;
          return;
        }
        if (!needed.delete(j)) continue;
        doneBytes += bytes.length;
        for (const s of sources.values()) s.inflight.get(j)?.abort();
      }
      progress();
    }
  };

  for (const s of await opts.findSources()) addSource(s);
  progress();
  // Not awaited at the end: a lookup under way (a slow address) must not hold up the
  // answer; what it finds after the end is dropped.
  void refreshLoop();
  try {
    await fetchAll();
  } finally {
    finished.abort();
  }
  if (fatal !== undefined) throw fatal;
  // Let endgame losers settle before returning.
  for (const st of sources.values()) for (const ctrl of st.inflight.values()) ctrl.abort();
  return {
    payloadId,
    size: manifest.size,
    bytes: fetchedBytes,
    seconds: (performance.now() - started) / 1000,
    resumed,
    chunksBySource: bySource,
    dropped,
  };

  /** Looks sources up again every `refreshMs` until the download ends; never rejects. */
  async function refreshLoop(): Promise<void> {
    const every = opts.refreshMs ?? 2000;
    if (!(every > 0)) return;
    while (!finished.signal.aborted) {
      await sleep(every, finished.signal);
      if (finished.signal.aborted) return;
      try {
        const found = await opts.findSources();
        if (finished.signal.aborted) return;
        for (const s of found) addSource(s);
        wake.resolve();
      } catch { /* the next round, or the lookup when every source is gone, tries again */ }
    }
  }

  async function fetchAll(): Promise<void> {
    while (needed.size > 0) {
      opts.signal?.throwIfAborted();
      if (fatal !== undefined) throw fatal;
      // Fill pipelines one slot per source per round, so work spreads across sources,
      // up to the global cap.
      let active = 0;
      for (const st of sources.values()) active += st.inflight.size;
      for (let depth = 1; depth <= pipeline && active < maxInFlight; depth++) {
        for (const st of [...sources.values()]) {
          if (active >= maxInFlight) break;
          if (st.inflight.size >= depth || !sources.has(st.source.id)) continue;
          const i = pick(st);
          if (i !== undefined) {
            fetchOne(st, i);
            active++;
          }
        }
      }
      active = 0;
      for (const st of sources.values()) active += st.inflight.size;
      if (active === 0) {
        // Nobody can serve what is missing: look for more sources.
        if (refreshes >= (opts.maxRefresh ?? 3)) {
          const sample = [...needed].slice(0, 8).join(",");
          throw new DownloadError(
            `No reachable source holds chunks ${sample}${
              needed.size > 8 ? ",…" : ""
            } of payload '${payloadId}' (${needed.size} of ${n} missing)`,
          );
        }
        if (refreshes > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 500 * 2 ** refreshes);
            opts.signal?.addEventListener("abort", () => {
              clearTimeout(t);
              resolve();
            }, { once: true });
          });
        }
        refreshes++;
        gone.clear();
        for (const s of await opts.findSources()) addSource(s);
        progress();
        continue;
      }
      refreshes = 0;
      const { promise, resolve } = Promise.withResolvers<void>();
      wake.resolve = resolve;
      await promise;
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
