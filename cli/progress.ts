/**
 * Progress of `p2p put` and `p2p get` on stderr, drawn with npm:cli-progress: a
 * download's bytes, percentage, rate, time left and sources; a put's stored size and
 * chunks replicated. Nothing is drawn when stderr is not a terminal.
 *
 * @module
 */
import cliProgress from "cli-progress";
import type { DownloadProgress, PutProgress } from "../proto/control.ts";
import { mib } from "./format.ts";

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

/** `p2p put`: the stored size and chunks, then a bar of chunks replicated. */
export function putProgress(enabled = drawn()): ProgressDisplay<PutProgress> {
  if (!enabled) return { update() {}, stop() {} };
  const b = bar("replicating [{bar}] {value}/{total} chunks");
  let started = false;
  const encoder = new TextEncoder();
  return {
    update(e) {
      if (e.type === "stored") {
        Deno.stderr.writeSync(encoder.encode(`stored ${mib(e.size)} in ${e.chunks} chunks\n`));
      } else if (!started) {
        started = true;
        b.start(e.chunks, e.done);
      } else {
        b.update(e.done);
      }
    },
    stop() {
      if (started) b.stop();
      started = false;
    },
  };
}
