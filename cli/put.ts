/**
 * `p2p put FILE|-`: the local peer stores, announces and replicates a payload read
 * from a file or standard input, with a bar while it is read (and hashed by the peer)
 * and one while it is replicated. Standard output gets the payloadId alone (for
 * scripts); standard error a ready-to-paste `p2p get SHORTID` line and a link that
 * opens the web app on the payload. With `--json`, one object with both.
 *
 * A file put into a peer on this machine is named to it by absolute path
 * (`cli/local_peer.ts`): the peer reads and hashes it itself and keeps it as the
 * payload's linked file, instead of receiving its bytes over HTTP and writing a copy.
 *
 * @module
 */
import { type PutDoneEvent, shortId } from "../proto/control.ts";
import { isWildcard, urlHost } from "../lib/net_addr.ts";
import { ClientError, type PeerTarget, withPeer } from "./client.ts";
import { putProgress } from "./progress.ts";
import { absolutePath, isLocalPeer, putFromFile, shouldFallBack } from "./local_peer.ts";

const encoder = new TextEncoder();
const note = (s: string) => Deno.stderr.writeSync(encoder.encode(s + "\n"));

/**
 * The link that opens a peer's web app on a payload: `http://HOST:PORT/#/payloads/ID`,
 * with the peer's listen address, or this machine's name when it listens on every
 * address (as other machines of the LAN reach it).
 */
export function shareLink(
  node: { url: string },
  status: { host: string; ports: { http?: number } },
  payloadId: string,
): string {
  const base = new URL(node.url);
  if (status.ports.http !== undefined) {
    base.hostname = urlHost(isWildcard(status.host) ? Deno.hostname() : status.host);
    base.port = String(status.ports.http);
  }
  return `${base.origin}/#/payloads/${payloadId}`;
}

/** The input of a put: its bytes, size when known, and name. */
async function openInput(
  file: string,
  name: string | undefined,
): Promise<{ body: ReadableStream<Uint8Array>; size?: number; name?: string }> {
  if (file === "-") return { body: gathered(Deno.stdin.readable), ...(name ? { name } : {}) };
  let f: Deno.FsFile;
  try {
    f = await Deno.open(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new ClientError(`File '${file}' does not exist`);
    throw new ClientError(`Cannot read '${file}': ${e instanceof Error ? e.message : e}`);
  }
  const info = await f.stat();
  if (info.isDirectory) {
    f.close();
    throw new ClientError(`'${file}' is a folder; put takes a file or -`);
  }
  return { body: f.readable, size: info.size, name: name ?? file.split(/[\\/]/).pop() };
}

/** Bytes a piece of standard input gathers before it is sent. */
const STDIN_PIECE = 1024 * 1024;

/**
 * `input` in pieces of `STDIN_PIECE` (the last one shorter). A pipe brings a few KiB
 * per read, and the peer's HTTP server spent CPU on every piece sent as it came:
 * 64 MiB through `cat FILE | p2p put -` cost the peer 3.4 CPU-s, against 0.9 with the
 * same bytes from a file on standard input.
 */
export function gathered(input: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let piece = new Uint8Array(STDIN_PIECE);
  let at = 0;
  return input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        while (chunk.length > 0) {
          const n = Math.min(chunk.length, piece.length - at);
          piece.set(chunk.subarray(0, n), at);
          at += n;
          chunk = chunk.subarray(n);
          if (at === piece.length) {
            controller.enqueue(piece);
            piece = new Uint8Array(STDIN_PIECE);
            at = 0;
          }
        }
      },
      flush(controller) {
        if (at > 0) controller.enqueue(piece.subarray(0, at));
      },
    }),
  );
}

/** `input` counting what is read on the bar. */
function counted(
  body: ReadableStream<Uint8Array>,
  progress: ReturnType<typeof putProgress>,
): ReadableStream<Uint8Array> {
  let read = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.length;
        progress.read(read);
        controller.enqueue(chunk);
      },
    }),
  );
}

/**
 * A file put into a peer on this machine by its path; `undefined` when that does not
 * apply or the peer cannot (the bytes are then sent as before).
 */
async function byPath(
  node: PeerTarget,
  file: string,
  input: { body: ReadableStream<Uint8Array>; size?: number; name?: string },
  progress: ReturnType<typeof putProgress>,
): Promise<PutDoneEvent | undefined> {
  if (file === "-" || !isLocalPeer(node)) return undefined;
  const req = { path: absolutePath(file), ...(input.name ? { name: input.name } : {}) };
  const done = await putFromFile(node, req, (e) => progress.update(e)).catch((err) => {
    if (shouldFallBack(err)) return undefined;
    throw err;
  });
  if (done) {
    await input.body.cancel();
    progress.read(input.size ?? 0);
  }
  return done;
}

/** `p2p put FILE|- [--name NAME] [--json]`. */
export async function put(
  node: PeerTarget,
  file: string,
  opts: { name?: string; json?: boolean },
): Promise<string> {
  const input = await openInput(file, opts.name);
  const progress = putProgress(input.size);
  const { done, status } = await withPeer(node, async (client) => {
    const done = await byPath(node, file, input, progress) ??
      await client.put(counted(input.body, progress), {
        ...(input.name ? { name: input.name } : {}),
        ...(input.size === undefined ? {} : { size: input.size }),
        onEvent: (e) => progress.update(e),
      });
    return { done, status: await client.status() };
  }).finally(() => progress.stop());
  const link = shareLink(node, status, done.payloadId);
  const get = `p2p get ${shortId(done.payloadId)}`;
  if (opts.json) {
    console.log(JSON.stringify({ ...done, get, link }));
  } else {
    console.log(done.payloadId);
    note(`get it elsewhere with: ${get}`);
    note(`or open: ${link}`);
  }
  if (done.underReplicated > 0) {
    const n = done.underReplicated;
    note(
      `warning: ${n} chunk${n === 1 ? " has" : "s have"} fewer copies on other peers than ` +
        "asked (too few peers known?); it is safe here, and copied as peers come",
    );
  }
  return done.payloadId;
}
