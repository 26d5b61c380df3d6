/**
 * What the reference downloaders (aria2c, curl, BitTorrent) share: the payload they
 * fetch, written once per size into a folder their servers can read (nginx's workers
 * and opentracker run as `nobody` when started as root), with its SHA-256 and the
 * SHA-256 of every 1 MiB piece (for a metalink); the check every fetched copy passes
 * before its time counts; a free port; a wait until servers answer; a timed command
 * with its CPU time; and a child process stopped for sure.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { MiB, phaseSignal, processCpuSeconds } from "./_bench.ts";
import { sha256File } from "./_bench_peer.ts";

/** What one reference download took, or a note saying why there is none. */
export interface ReferenceTime {
  /** Seconds of the whole command, its copy verified after. */
  seconds?: number;
  /** CPU-seconds of the downloading process(es), when known. */
  cpuSeconds?: number | null;
  /** Why there is no time (a tool missing, a failure), one line. */
  note?: string;
}

/** A payload file on disk and what a copy of it must hash to. */
export interface PayloadFile {
  /** Its own temporary folder (mode 755), where servers find it. */
  dir: string;
  /** File name inside `dir`. */
  name: string;
  /** `dir/name`. */
  path: string;
  bytes: number;
  /** SHA-256 of the whole file, hex. */
  sha256: string;
  /** SHA-256 of each 1 MiB piece, hex. */
  pieces: string[];
}

/**
 * Writes `stream` into `name` in a new temporary folder of mode 755 (nginx's workers
 * and opentracker may run as `nobody`, and must reach it: a folder inside another
 * temporary folder, mode 700, would not do), hashing the whole and each 1 MiB piece
 * on the way. The stream's blocks must be whole MiB except the last. The caller
 * removes `dir`.
 */
export async function writePayloadFile(
  name: string,
  stream: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<PayloadFile> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-payload-" });
  await Deno.chmod(dir, 0o755);
  const path = `${dir}/${name}`;
  const whole = createHash("sha256");
  const pieces: string[] = [];
  let bytes = 0;
  {
    using file = await Deno.open(path, { write: true, createNew: true, mode: 0o644 });
    for await (const block of stream) {
      signal.throwIfAborted();
      whole.update(block);
      for (let off = 0; off < block.length; off += MiB) {
        pieces.push(createHash("sha256").update(block.subarray(off, off + MiB)).digest("hex"));
      }
      for (let off = 0; off < block.length;) off += await file.write(block.subarray(off));
      bytes += block.length;
    }
  }
  return { dir, name, path, bytes, sha256: whole.digest("hex"), pieces };
}

/** Throws unless the file at `path` holds exactly the payload's bytes. */
export async function assertSameBytes(
  path: string,
  payload: Pick<PayloadFile, "bytes" | "sha256">,
  signal: AbortSignal,
): Promise<void> {
  const got = await sha256File(path, phaseSignal(signal, payload.bytes));
  if (got.bytes !== payload.bytes || got.hex !== payload.sha256) {
    throw new Error(
      `'${path}' is not the payload: ${got.bytes} bytes sha256 ${got.hex}, ` +
        `expected ${payload.bytes} bytes sha256 ${payload.sha256}`,
    );
  }
}

/** A free TCP port on `host` (for servers that cannot pick one and say which). */
export function freePort(host: string): number {
  using l = Deno.listen({ hostname: host, port: 0 });
  return l.addr.port;
}

/** Resolves once every URL answers a HEAD request with 2xx; 5 s at most. */
export async function waitUntilServing(urls: string[], signal: AbortSignal): Promise<void> {
  // nginx says nothing when it listens: ask every 100 ms.
  for (let i = 0; i < 50; i++) {
    signal.throwIfAborted();
    try {
      for (const u of urls) {
        const res = await fetch(u, { method: "HEAD", signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`${u} answered ${res.status}`);
      }
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Nothing served ${urls.join(", ")} within 5 s`);
}

/**
 * Runs a downloading command to its end and times it, with the CPU time it used
 * (read every 100 ms while it runs, the last reading kept, since it is reaped at its
 * exit); throws with the end of its stderr when it fails.
 */
export async function timedCommand(
  cmd: string,
  args: string[],
  signal: AbortSignal,
): Promise<{ seconds: number; cpuSeconds: number | null }> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal,
  }).spawn();
  let cpuSeconds: number | null = null;
  const timer = setInterval(() => {
    processCpuSeconds(child.pid).then((s) => {
      if (s !== null) cpuSeconds = s;
    }, () => {});
  }, 100);
  try {
    const res = await child.output();
    const seconds = (performance.now() - t0) / 1000;
    if (!res.success) {
      const text = new TextDecoder().decode(res.stderr).trim().slice(-300);
      throw new Error(`${cmd} exited with ${res.code}: ${text}`);
    }
    return { seconds, cpuSeconds };
  } finally {
    clearInterval(timer);
  }
}

/** Sends SIGTERM to a child, then SIGKILL after `graceMs`, and waits for its exit. */
export async function stopChild(child: Deno.ChildProcess, graceMs = 5_000): Promise<void> {
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // It exited already.
    }
  };
  kill("SIGTERM");
  const timer = setTimeout(() => kill("SIGKILL"), graceMs);
  try {
    await child.status;
  } finally {
    clearTimeout(timer);
  }
}
