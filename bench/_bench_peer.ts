/**
 * Peers and payload bytes for `peer_download`: a `p2p peer` child process with a typed
 * client of its control API (`peer/control_client.ts`), a wait until a peer knows its
 * seeds, a pseudo-random payload generated as a stream, the SHA-256 of a file, and a
 * reset of a process's peak RSS (so that a peak measures one phase).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { ControlClient } from "../peer/control_client.ts";
import { spawnPeer as spawnTestPeer } from "../tests/_peer_process.ts";
import { stopGracefully } from "../tests/_tracker_process.ts";
import { hostPort } from "../lib/net_addr.ts";
import { MiB, processMemory } from "./_bench.ts";

/** What `spawnBenchPeer()` needs. */
export interface BenchPeerOptions {
  host: string;
  name: string;
  dataDir: string;
  /** Peers given with `--peer HOST:PORT`. */
  seeds: BenchPeer[];
  signal: AbortSignal;
  /** More `p2p peer` arguments (e.g. `--insecure-plaintext`). */
  args?: string[];
}

/** A `p2p peer` child process. `await using` stops it. */
export interface BenchPeer extends AsyncDisposable {
  name: string;
  pid: number;
  peerId: string;
  host: string;
  /** TCP chunk port. */
  port: number;
  /** Control API base URL. */
  http: string;
  /** A client of its control API. */
  control: ControlClient;
  /** Its control API's token (for the CLI as a child process). */
  token: string;
  memory(): Promise<{ peakKiB: number | null; rssKiB: number | null }>;
  /** The last lines it printed (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 15 s); idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * What makes a peer's links plaintext (`--insecure-plaintext`, loopback only): the
 * reference for what encryption costs.
 */
export const PLAINTEXT_ARGS = ["--insecure-plaintext"];

/** Starts `main.ts peer` (ports 0, no replicas) with the test suite's `spawnPeer()`. */
export async function spawnBenchPeer(opts: BenchPeerOptions): Promise<BenchPeer> {
  const p = await spawnTestPeer({
    dataDir: opts.dataDir,
    host: opts.host,
    name: opts.name,
    seeds: opts.seeds.map((s) => hostPort(s.host, s.port)),
    signal: opts.signal,
    args: opts.args,
  });
  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = () => stopping ??= stopGracefully(p);
  const tail = (text: string) => text.trimEnd().split("\n").slice(-40).join("\n");
  return {
    name: opts.name,
    pid: p.child.pid,
    peerId: p.peerId,
    host: p.host,
    port: p.port,
    http: p.http,
    control: new ControlClient(p.http, { token: p.token }),
    token: p.token,
    memory: () => processMemory(p.child.pid),
    output: () => `${tail(p.stdout())}\nstderr: ${tail(p.stderr())}`,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

/**
 * Resolves once `peer` lists every one of `expected` in `GET /_p2p/peers`: it learns
 * its seeds in the background after it starts, and downloads need them known. The
 * peer is another process with no event to wait on, so this asks every 50 ms, 15 s
 * at most.
 */
export async function waitForPeers(
  peer: BenchPeer,
  expected: BenchPeer[],
  signal: AbortSignal,
): Promise<void> {
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(15_000)]);
  for (;;) {
    const { peers } = await peer.control.peers({ signal: deadline });
    const known = new Set(peers.map((p) => p.peerId));
    if (expected.every((e) => known.has(e.peerId))) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, 50);
      deadline.addEventListener("abort", () => {
        clearTimeout(t);
        reject(new Error(`${peer.name} did not learn its seeds within 15 s`));
      }, { once: true });
    });
  }
}

/**
 * `size` pseudo-random bytes (xorshift128 from `seed`) as a stream of fresh 1 MiB
 * blocks, generated as they are read; `onBlock` sees each block first.
 */
export function pseudoRandomStream(
  size: number,
  seed: number,
  onBlock: (block: Uint8Array) => void = () => {},
): ReadableStream<Uint8Array> {
  let x = (seed | 0) || 123456789;
  let y = 362436069;
  let z = 521288629;
  let w = 88675123;
  let left = size;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = Math.min(MiB, left);
      const words = new Int32Array(Math.ceil(n / 4));
      for (let i = 0; i < words.length; i++) {
        const t = x ^ (x << 11);
        x = y;
        y = z;
        z = w;
        w = w ^ (w >>> 19) ^ t ^ (t >>> 8);
        words[i] = w;
      }
      const block = new Uint8Array(words.buffer, 0, n);
      onBlock(block);
      controller.enqueue(block);
      left -= n;
      if (left === 0) controller.close();
    },
  }, { highWaterMark: 0 });
}

/** SHA-256 and length of a file, read as a stream. */
export async function sha256File(
  path: string,
  signal: AbortSignal,
): Promise<{ hex: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  using file = await Deno.open(path);
  const reader = file.readable.getReader();
  try {
    for (;;) {
      signal.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      bytes += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  return { hex: hash.digest("hex"), bytes };
}

/** What putting a payload into a peer gave. */
export interface PutDone {
  payloadId: string;
  size: number;
  /** SHA-256 of the bytes put, hex. */
  sha256: string;
  seconds: number;
}

/**
 * Streams `size` pseudo-random bytes into `peer` with `POST /_p2p/payloads` (the
 * control client sends it with node:http and a `content-length`), hashing them on
 * the way.
 */
export async function putPayload(
  peer: BenchPeer,
  size: number,
  label: string,
  signal: AbortSignal,
): Promise<PutDone> {
  const hash = createHash("sha256");
  const t0 = performance.now();
  const done = await peer.control.put(
    pseudoRandomStream(size, size >>> 20, (block) => hash.update(block)),
    { name: `bench ${label}`, size, signal },
  );
  const seconds = (performance.now() - t0) / 1000;
  if (done.size !== size) throw new Error(`Put stored ${done.size} bytes, not ${size}`);
  return { payloadId: done.payloadId, size, sha256: hash.digest("hex"), seconds };
}

/**
 * Resets the peak resident memory (VmHWM) of a process to its current RSS by writing
 * `5` to `/proc/PID/clear_refs` (Linux 4.0+, a process of this user); false when that
 * failed, and the peak then still counts from the process's start.
 */
export async function clearPeakRss(pid: number): Promise<boolean> {
  try {
    await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
