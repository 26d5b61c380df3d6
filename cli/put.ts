/**
 * `p2p put FILE|-`: the local peer stores, announces and replicates a payload read
 * from a file or standard input, with a bar while it is read (and hashed by the peer)
 * and one while it is replicated. Standard output gets the payloadId alone (for
 * scripts); standard error a ready-to-paste `p2p get SHORTID` line and a link that
 * opens the web app on the payload. With `--json`, one object with both.
 *
 * @module
 */
import { shortId } from "../proto/control.ts";
import { isWildcard, urlHost } from "../lib/net_addr.ts";
import { ClientError, type PeerTarget, withPeer } from "./client.ts";
import { putProgress } from "./progress.ts";

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
  if (file === "-") return { body: Deno.stdin.readable, ...(name ? { name } : {}) };
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

/** `p2p put FILE|- [--name NAME] [--json]`. */
export async function put(
  node: PeerTarget,
  file: string,
  opts: { name?: string; json?: boolean },
): Promise<void> {
  const input = await openInput(file, opts.name);
  const progress = putProgress(input.size);
  let read = 0;
  const counted = input.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.length;
        progress.read(read);
        controller.enqueue(chunk);
      },
    }),
  );
  const { done, status } = await withPeer(node, async (client) => {
    const done = await client.put(counted, {
      ...(input.name ? { name: input.name } : {}),
      ...(input.size === undefined ? {} : { size: input.size }),
      onEvent: (e) => progress.update(e),
    }).finally(() => progress.stop());
    return { done, status: await client.status() };
  });
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
}
