/**
 * Progress of `p2p put` and `p2p get` on stderr, drawn with npm:cli-progress: a
 * download's bytes, percentage, rate, time left and sources; a put's stored size and
 * chunks replicated; how far a discovery's probes are. Nothing is drawn when stderr
 * is not a terminal.
 *
 * @module
 */
import cliProgress from "cli-progress";
import type { DiscoverProgress, DownloadProgress, PutProgress } from "../proto/control.ts";
import { mib, size as formatSize } from "./format.ts";

/** What is used of a cli-progress `SingleBar` (the package ships no types). */
interface Bar {
  start(total: number, value: number, payload?: Record<string, string | number>): void;
  update(value: number, payload?: Record<string, string | number>): void;
  setTotal(total: number): void;
  stop(): void;
}

/** A cli-progress bar on stderr with `format`. */
function bar(format: string): Bar {
  return new cliProgress.SingleBar({
    format,
    barsize: 30,
    barCompleteChar: "#",
    barIncompleteChar: "-",
    hideCursor: false,
    // The last update (the end) is always drawn; between them, at most 10 a second.
    fps: 10,
  });
}

/** The line a progress display ends with, and its updates. */
export interface ProgressDisplay<E> {
  update(e: E): void;
  /** Ends the display (a newline after the bar); idempotent. */
  stop(): void;
}

/** Whether progress is drawn: stderr is a terminal. */
function drawn(): boolean {
  return Deno.stderr.isTerminal();
}

/** `p2p get`: a bar of bytes held, with the percentage, rate, time left and sources. */
export function downloadProgress(enabled = drawn()): ProgressDisplay<DownloadProgress> {
  if (!enabled) return { update() {}, stop() {} };
  const b = bar("[{bar}] {percentage}% {held}/{size} {rate}/s ETA {left} sources {sources}");
  let started = false;
  return {
    update(p) {
      // Held already: nothing to draw (no "0.0 MiB/s ETA ?" for what took no time).
      if (!started && p.done === p.chunks) return;
      const rate = p.fetchedBytes / Math.max(0.001, p.seconds);
      const left = rate > 0 ? (p.size - p.bytes) / rate : Infinity;
      const payload = {
        held: mib(p.bytes),
        size: mib(p.size),
        rate: mib(rate),
        left: Number.isFinite(left) ? `${left.toFixed(0)}s` : "…",
        sources: p.sources,
      };
      if (!started) {
        started = true;
        b.start(Math.max(1, p.size), p.bytes, payload);
      } else {
        b.update(p.bytes, payload);
      }
    },
    stop() {
      if (started) b.stop();
      started = false;
    },
  };
}

/** `p2p put`'s display: `read()` as the input is read, `update()` with the peer's events. */
export interface PutDisplay extends ProgressDisplay<PutProgress> {
  /** `bytes` of the input read and sent so far. */
  read(bytes: number): void;
}

/**
 * `p2p put`: a bar of the input read (and hashed by the peer as it arrives) with its
 * rate and time left, when its `size` is known; then the stored size, and a bar of
 * chunks replicated to other peers with the rate of their bytes.
 */
export function putProgress(size?: number, enabled = drawn()): PutDisplay {
  if (!enabled) return { read() {}, update() {}, stop() {} };
  const reading = bar("reading     [{bar}] {percentage}% {held}/{size} {rate}/s ETA {left}");
  const replicating = bar("replicating [{bar}] {value}/{total} chunks {rate}/s");
  const encoder = new TextEncoder();
  const started = performance.now();
  let readShown = false;
  let replicationStart = 0;
  let stored = 0;
  let shown: Bar | undefined;
  const end = () => {
    shown?.stop();
    shown = undefined;
  };
  return {
    read(bytes) {
      if (size === undefined || size === 0) return;
      const seconds = (performance.now() - started) / 1000;
      const rate = bytes / Math.max(0.001, seconds);
      const payload = {
        held: mib(bytes),
        size: mib(size),
        rate: mib(rate),
        left: rate > 0 ? `${((size - bytes) / rate).toFixed(0)}s` : "…",
      };
      if (!readShown) {
        readShown = true;
        shown = reading;
        reading.start(size, bytes, payload);
      } else if (shown === reading) {
        reading.update(bytes, payload);
      }
    },
    update(e) {
      if (e.type === "stored") {
        end();
        stored = e.size;
        const chunks = `${e.chunks} chunk${e.chunks === 1 ? "" : "s"}`;
        Deno.stderr.writeSync(encoder.encode(`stored ${formatSize(e.size)} in ${chunks}\n`));
        return;
      }
      const seconds = replicationStart === 0
        ? 0.001
        : (performance.now() - replicationStart) / 1000;
      const bytes = e.chunks === 0 ? 0 : (stored * e.done) / e.chunks;
      // A rate over less than a fifth of a second says nothing yet.
      const payload = { rate: seconds < 0.2 ? "… MiB" : mib(bytes / seconds) };
      if (shown !== replicating) {
        end();
        replicationStart = performance.now();
        shown = replicating;
        replicating.start(e.chunks, e.done, payload);
      } else {
        replicating.update(e.done, payload);
      }
    },
    stop: end,
  };
}

/**
 * `p2p discover`: the addresses probed out of those to probe (the devices that
 * answered the ARP sweep, and the peers known already), and the peers identified.
 */
export function discoverProgress(
  what: string,
  enabled = drawn(),
): ProgressDisplay<DiscoverProgress> {
  if (!enabled) return { update() {}, stop() {} };
  const b = bar(`scanning ${what} [{bar}] {value}/{total} probed, {found}`);
  let started = false;
  return {
    update(p) {
      const payload = { found: `${p.found} peer${p.found === 1 ? "" : "s"} found` };
      if (!started) {
        started = true;
        b.start(Math.max(1, p.total), p.probed, payload);
      } else {
        b.setTotal(Math.max(1, p.total));
        b.update(p.probed, payload);
      }
    },
    stop() {
      if (started) b.stop();
      started = false;
    },
  };
}
