/**
 * `p2p get REF`: the local peer downloads a payload (named by its id, a prefix of 6+
 * hex digits or its name: the peer resolves it), then the client writes the verified
 * bytes where `cli/destination.ts` decides, and ends with one line:
 * `saved 200 MiB to ./big.bin (verified, 0.8 s, 3 sources)`.
 *
 * Ctrl-C cancels the download on the peer too (the answer is closed and the peer told
 * with `DELETE /_p2p/downloads/:id`), then says how far it got and that the same
 * command resumes; the exit status is 130. `--drop` removes the store's copy once the
 * file is saved, unless it is the last known copy of some chunk.
 *
 * @module
 */
import type { DownloadProgress } from "../proto/control.ts";
import { shortId } from "../proto/control.ts";
import { P2pError } from "../proto/errors.ts";
import { type ControlClient, ControlError } from "../peer/control_client.ts";
import { ClientError, type PeerTarget, withPeer } from "./client.ts";
import { resolveDestination, writeDestination } from "./destination.ts";
import { size } from "./format.ts";
import { downloadProgress } from "./progress.ts";

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
    try {
      const done = await download(client, id, interrupt.signal);
      const content = lossy(await client.content(id, { signal: interrupt.signal }));
      await writeDestination(dest, content, stdoutIsTerminal).catch((err) => {
        if (interrupt.signal.aborted) {
          throw new InterruptedError(
            "Cancelled while writing; the payload is complete on the peer, so the same command " +
              "finishes at once",
          );
        }
        throw err;
      });
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
        if (!opts.drop && done.bytes > 0) {
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

/** Runs the peer's download with a bar; on `interrupt`, cancels it on the peer too. */
async function download(client: ControlClient, id: string, interrupt: AbortSignal) {
  const progress = downloadProgress();
  let last: DownloadProgress | undefined;
  try {
    return await client.download(id, {
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
    if (!interrupt.aborted) throw err;
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
