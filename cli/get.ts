/**
 * `p2p get REF`: the local peer downloads a payload (named by its id, a prefix of 6+
 * hex digits or its name: the peer resolves it), then the client writes the verified
 * bytes where `cli/destination.ts` decides, and ends with one line:
 * `saved 200 MiB to ./big.bin (verified, 0.8 s, 3 sources)`.
 *
 * To a file, with a peer on this machine, the peer writes the file itself: the client
 * names it by absolute path (`cli/local_peer.ts`), the peer downloads each verified
 * chunk straight to its place in it and keeps it as the payload's copy, so each byte
 * is written once. Otherwise (a peer elsewhere, standard output, a peer that cannot)
 * the bytes stream to the client, which writes them (`cli/destination.ts`).
 *
 * Ctrl-C cancels the download on the peer too (the answer is closed and the peer told
 * with `DELETE /_p2p/downloads/:id`), then says how far it got and that the same
 * command resumes; the exit status is 130. `--drop` removes the store's copy once the
 * file is saved, unless it is the last known copy of some chunk.
 *
 * @module
 */
import type { DownloadDoneEvent, DownloadProgress } from "../proto/control.ts";
import { shortId } from "../proto/control.ts";
import { P2pError } from "../proto/errors.ts";
import { type ControlClient, ControlError, type DownloadOptions } from "../peer/control_client.ts";
import { ClientError, type PeerTarget, withPeer } from "./client.ts";
import { resolveDestination, writeDestination } from "./destination.ts";
import { size } from "./format.ts";
import { downloadProgress } from "./progress.ts";
import { absolutePath, isLocalPeer, saveOnPeer, shouldFallBack } from "./local_peer.ts";

/** Ctrl-C: the command stopped on the user's word (exit status 130). */
export class InterruptedError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("cancelled", message, options);
  }
}

/** Options of `p2p get`. */
export interface GetOptions {
  output?: string;
  json?: boolean;
  force?: boolean;
  drop?: boolean;
}

const encoder = new TextEncoder();
const note = (s: string) => Deno.stderr.writeSync(encoder.encode(s + "\n"));

/** How far a cancelled download got, in words. */
function howFar(last: DownloadProgress | undefined): string {
  if (!last || last.size === 0) return "before any chunk arrived";
  const pct = Math.floor((last.bytes / last.size) * 100);
  return `at ${pct} % (${size(last.bytes)} of ${size(last.size)})`;
}

/** The end of the summary line: `verified, 0.8 s, 3 sources` or `verified, already here`. */
function summaryTail(
  done: { bytes: number; chunksBySource: Record<string, number> },
  seconds: number,
): string {
  if (done.bytes === 0) return "verified, already here";
  const sources = Object.keys(done.chunksBySource).filter((s) => s !== "local").length;
  return `verified, ${seconds.toFixed(1)} s, ${sources} source${sources === 1 ? "" : "s"}`;
}

/** `p2p get REF [-o FILE|DIR|-] [--force] [--drop] [--json]`. */
export async function get(node: PeerTarget, ref: string, opts: GetOptions): Promise<void> {
  const stdoutIsTerminal = Deno.stdout.isTerminal();
  await withPeer(node, async (client) => {
    const info = await client.payload(ref);
    const id = info.payloadId;
    const dest = await resolveDestination({
      output: opts.output,
      force: opts.force,
      payloadId: id,
      stdoutIsTerminal,
      ...(info.name === undefined ? {} : { name: info.name }),
    });
    if (opts.json && dest.kind === "stdout") {
      throw new ClientError("--json needs -o FILE: standard output carries the bytes", {
        code: "usage",
      });
    }
    const started = performance.now();
    const interrupt = new AbortController();
    const onSignal = () => interrupt.abort();
    Deno.addSignalListener("SIGINT", onSignal);
    let byPath = false;
    try {
      let done: DownloadDoneEvent | undefined;
      // --drop: the peer is not to share it from here, so not from the file either.
      if (dest.kind === "file" && !opts.drop && isLocalPeer(node)) {
        const req = { path: absolutePath(dest.path), force: dest.force };
        done = await download(
          client,
          id,
          interrupt.signal,
          onPeer(node, client, id, req, interrupt.signal),
        )
          .catch((err) => {
            if (shouldFallBack(err)) return undefined;
            throw err;
          });
        byPath = done !== undefined;
      }
      if (!done) {
        done = await download(client, id, interrupt.signal);
        const content = lossy(await client.content(id, { signal: interrupt.signal }));
        await writeDestination(dest, content, stdoutIsTerminal).catch((err) => {
          if (interrupt.signal.aborted) {
            throw new InterruptedError(
              "Cancelled while writing; the payload is complete on the peer, so the same " +
                "command finishes at once",
            );
          }
          throw err;
        });
      }
      const seconds = (performance.now() - started) / 1000;
      const where = dest.kind === "file" ? dest.shown : "standard output";
      if (opts.json) {
        console.log(JSON.stringify({
          payloadId: id,
          path: dest.kind === "file" ? dest.path : "-",
          bytes: done.size,
          fetchedBytes: done.bytes,
          seconds: Math.round(seconds * 1000) / 1000,
          downloadSeconds: done.seconds,
          resumedChunks: done.resumed,
          chunksBySource: done.chunksBySource,
          dropped: done.dropped,
        }));
      } else {
        note(`saved ${size(done.size)} to ${where} (${summaryTail(done, seconds)})`);
        if (byPath && done.bytes > 0) {
          note(
            `the local peer keeps a copy too, to share it (p2p rm ${shortId(id)} stops that; ` +
              "the copy is the file saved, not a second one)",
          );
        } else if (!opts.drop && done.bytes > 0) {
          note(
            `the local peer keeps a copy too, to share it (p2p rm ${shortId(id)} frees it; ` +
              "get --drop does not keep one)",
          );
        }
      }
      if (opts.drop) await drop(client, id, opts.json);
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
    }
  });
}

/**
 * `content` whose failures to read (the peer gone mid-answer) are `stream_broken`
 * errors, which the client reports as a lost connection, not as a failed write.
 */
function lossy(content: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = content.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (cause) {
        throw new ControlError("stream_broken", "The payload's bytes broke off", 502, { cause });
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The peer's download straight into a file. On Ctrl-C the answer is not dropped at
 * once: the peer is told to cancel, and its answer ends once it has kept what arrived
 * (for the next run) and removed the partial file; at most 10 s later it is dropped.
 */
function onPeer(
  node: PeerTarget,
  client: ControlClient,
  id: string,
  req: { path: string; force: boolean },
  interrupt: AbortSignal,
): Run {
  return async (opts) => {
    const hard = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onInterrupt = () => {
      client.cancelDownload(id, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      timer = setTimeout(() => hard.abort(interrupt.reason), 10_000);
    };
    interrupt.addEventListener("abort", onInterrupt, { once: true });
    try {
      return await saveOnPeer(node, id, req, { ...opts, signal: hard.signal });
    } finally {
      interrupt.removeEventListener("abort", onInterrupt);
      clearTimeout(timer);
    }
  };
}

/** How the peer is asked to download: into its store, or straight into a file. */
type Run = (opts: DownloadOptions) => Promise<DownloadDoneEvent>;

/** Runs the peer's download with a bar; on `interrupt`, cancels it on the peer too. */
async function download(
  client: ControlClient,
  id: string,
  interrupt: AbortSignal,
  run: Run = (opts) => client.download(id, opts),
): Promise<DownloadDoneEvent> {
  const progress = downloadProgress();
  let last: DownloadProgress | undefined;
  try {
    return await run({
      signal: interrupt,
      onEvent: (e) => {
        if (e.type === "progress") {
          last = e;
          progress.update(e);
        } else if (last && last.done < last.chunks) {
          // A chunk between two (throttled) progress events: how far it got counts it.
          const chunk = Math.ceil(last.size / last.chunks);
          last = {
            ...last,
            done: last.done + 1,
            bytes: Math.min(last.size, last.bytes + chunk),
          };
        }
      },
    });
  } catch (err) {
    if (!interrupt.aborted || shouldFallBack(err)) throw err;
    // Closing the answer cancels it; this says so explicitly, should the close be missed.
    await client.cancelDownload(id, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    throw new InterruptedError(
      `Cancelled ${howFar(last)}; run the same command again to resume`,
    );
  } finally {
    progress.stop();
  }
}

/** `--drop`: removes the store's copy, unless it is the last known copy of some chunk. */
async function drop(client: ControlClient, id: string, json?: boolean): Promise<void> {
  try {
    const r = await client.remove(id);
    if (!json) note(`dropped the peer's copy of ${shortId(id)} (${size(r.freedBytes)} freed)`);
  } catch (err) {
    if (!(err instanceof P2pError) || err.code !== "last_copy") throw err;
    note(`kept the peer's copy: ${err.message.replace(/ \(use --force.*\)$/, "")}`);
  }
}
