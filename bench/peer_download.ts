/**
 * Peer download throughput: a real peer child process on 127.0.0.5 downloads a
 * 256 MiB and a 1 GiB payload over loopback TCP from 1 and then from 3 source peers
 * (127.0.0.2..4, child processes too) into its chunk store on disk, each chunk
 * verified, and the payload is then exported from it into a file on disk
 * (re-verified by the peer, and checked against the SHA-256 of the bytes put).
 * Reported: MiB/s of the download alone and of download + export, and the
 * downloader's peak resident memory (VmHWM). Targets on a 2-core machine: at least
 * 1 GiB/s from 3 sources, and under 200 MB peak RSS whatever the payload size;
 * figures that miss them are flagged.
 *
 * Per size, the payload (pseudo-random bytes, generated as a stream and never held
 * whole) is put into source 1 over its control API. A fresh downloader with an empty
 * data directory downloads it from source 1 alone; then sources 2 and 3 start and
 * fetch it (so all three hold it), and another fresh downloader gets it from all
 * three. CPU time of every process over each phase is kept in the notes. A raw
 * Deno-to-Deno TCP transfer on loopback and a raw write of a new file give the
 * ceilings to compare with, and aria2c fetching the same size from three nginx
 * servers, verified per 1 MiB piece, a native downloader to compare with (when both
 * are installed; `bench/_aria2_reference.ts`).
 *
 * `P2P_BENCH_SMALL=1` runs the 256 MiB size only. The 1 GiB size is skipped, with the
 * reason, when the temporary directory's file system has less than 8 GiB free. All
 * data lives under one temporary directory, removed after each size.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { type IncomingMessage, request } from "node:http";
import { spawnPeer as spawnTestPeer } from "../tests/_peer_process.ts";
import { aria2Reference } from "./_aria2_reference.ts";
import { stopGracefully } from "../tests/_tracker_process.ts";
import {
  type BenchContext,
  type Benchmark,
  type BenchOutput,
  BenchSkip,
  type Figure,
  freeDiskBytes,
  processCpuSeconds,
  processMemory,
} from "./_bench.ts";

const MiB = 2 ** 20;

/** Payload sizes, smallest first; `free` is the disk space each needs to run. */
const SIZES = [
  { label: "256 MiB", bytes: 256 * MiB, free: 2 * 1024 * MiB },
  { label: "1 GiB", bytes: 1024 * MiB, free: 8 * 1024 * MiB },
];
/** Set to `1` to run the smallest size only, when iterating. */
const SMALL_ENV = "P2P_BENCH_SMALL";
const SOURCE_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const DOWNLOADER_HOST = "127.0.0.5";
const TCP_HOST = "127.0.0.6";
/** Download rate from 3 sources the product aims for. */
const TARGET_MIB_S = 1024;
/** Peak RSS of the downloader the product aims to stay under: 200 MB. */
const TARGET_RSS_BYTES = 200e6;
/** Bytes of the raw TCP transfer. */
const TCP_BYTES = 1024 * MiB;
/** Bytes of the raw file write. */
const DISK_BYTES = 1024 * MiB;
/** Bytes generated at a time for the payload stream. */
const BLOCK = MiB;

/** The `peer_download` benchmark. */
export const peerDownload: Benchmark = {
  name: "peer_download",
  description: "peer downloads of 256 MiB and 1 GiB on loopback from 1 and 3 sources, " +
    "to disk and exported, MiB/s and the downloader's peak RSS",
  run,
};

async function run(ctx: BenchContext): Promise<BenchOutput> {
  try {
    await Deno.stat("/proc/self/status");
  } catch {
    throw new BenchSkip("needs /proc (Linux) for the peak RSS and CPU time of the peers");
  }
  const figures: Figure[] = [];
  const notes: string[] = [];
  const small = Deno.env.get(SMALL_ENV) === "1";
  const sizes = small ? SIZES.slice(0, 1) : SIZES;
  if (small) notes.push(`${SMALL_ENV}=1: ${SIZES[0].label} only`);

  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-download-" });
  try {
    const free = await freeDiskBytes(dir);
    if (free === null) notes.push(`free disk space in ${dir} unknown (df failed)`);
    const room = (need: number) => free === null || free >= need;
    const why = (label: string, need: number) =>
      `${label} skipped: ${gib(free!)} GiB free in ${dir}, it needs ${gib(need)} GiB`;
    if (!room(sizes[0].free)) throw new BenchSkip(why(sizes[0].label, sizes[0].free));
    figures.push(await rawTcp(ctx, dir), await rawDisk(ctx, dir));
    for (const size of sizes) {
      if (!room(size.free)) {
        ctx.log(why(size.label, size.free));
        notes.push(why(size.label, size.free));
        continue;
      }
      const sizeDir = `${dir}/${size.bytes}`;
      await Deno.mkdir(sizeDir);
      try {
        const out = await measureSize(ctx, sizeDir, size.label, size.bytes);
        figures.push(...out.figures);
        notes.push(...out.notes);
      } finally {
        await Deno.remove(sizeDir, { recursive: true }).catch(() => {});
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return { figures, notes };
}

/** Figures and notes of one part of the run. */
interface Measured {
  figures: Figure[];
  notes: string[];
}

/** Every phase of one payload size: put, 1-source run, filling sources 2 and 3, 3-source run. */
async function measureSize(
  ctx: BenchContext,
  dir: string,
  label: string,
  bytes: number,
): Promise<Measured> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const spawn = (host: string, name: string, seeds: Peer[] = []) =>
    spawnPeer({ host, name, dataDir: `${dir}/${name}`, seeds, signal: ctx.signal });

  await using s1 = await spawn(SOURCE_HOSTS[0], "source-1");
  ctx.log(`${label}: source 1 pid ${s1.pid} on ${s1.http}; putting the payload`);
  const put = await putPayload(s1, bytes, label, phaseSignal(ctx, bytes));
  figures.push({
    name: `${label}: put into source 1`,
    value: rate(bytes, put.seconds),
    unit: "MiB/s",
    note: `${put.seconds.toFixed(2)} s, streamed by node:http: chunked, hashed, written`,
  });
  ctx.log(`${label}: payload ${put.payloadId.slice(0, 12)}… stored in ${put.seconds.toFixed(2)} s`);

  const one = await downloadRun(ctx, dir, label, put, [s1]);
  figures.push(...one.figures);
  notes.push(...one.notes);

  await using s2 = await spawn(SOURCE_HOSTS[1], "source-2", [s1]);
  await using s3 = await spawn(SOURCE_HOSTS[2], "source-3", [s1]);
  await Promise.all([waitForPeers(s2, [s1], ctx.signal), waitForPeers(s3, [s1], ctx.signal)]);
  ctx.log(`${label}: sources 2 and 3 (pids ${s2.pid}, ${s3.pid}) fetch the payload`);
  const fillSignal = phaseSignal(ctx, 2 * bytes);
  const cpu0 = await cpuOf([s1, s2, s3]);
  const t0 = performance.now();
  await Promise.all([
    startDownload(s2, put.payloadId, fillSignal),
    startDownload(s3, put.payloadId, fillSignal),
  ]);
  const fillSeconds = (performance.now() - t0) / 1000;
  const cpu1 = await cpuOf([s1, s2, s3]);
  figures.push({
    name: `${label}: fill sources 2 and 3`,
    value: rate(2 * bytes, fillSeconds),
    unit: "MiB/s",
    note: `${fillSeconds.toFixed(2)} s for 2 concurrent downloads, MiB/s counts both`,
  });
  notes.push(
    `${label} fill sources 2+3 (${fillSeconds.toFixed(2)} s): CPU s1 ${
      cpuUse(cpu0[0], cpu1[0], fillSeconds)
    }, s2 ${cpuUse(cpu0[1], cpu1[1], fillSeconds)}, s3 ${cpuUse(cpu0[2], cpu1[2], fillSeconds)}`,
  );

  const three = await downloadRun(ctx, dir, label, put, [s1, s2, s3]);
  figures.push(...three.figures);
  notes.push(...three.notes);

  const ref = await aria2Reference(ctx, {
    label,
    bytes,
    hosts: SOURCE_HOSTS,
    payload: () => pseudoRandomStream(bytes, bytes >>> 20),
  });
  if (ref.figure) figures.push(ref.figure);
  if (ref.note) notes.push(ref.note);
  return { figures, notes };
}

/**
 * One fresh downloader, seeded with `sources`: times the download into its store,
 * then the export into a file, checks the file against the SHA-256 of what was put,
 * and reads its peak RSS and the CPU time of every process.
 */
async function downloadRun(
  ctx: BenchContext,
  dir: string,
  label: string,
  put: PutResult,
  sources: Peer[],
): Promise<Measured> {
  const n = sources.length;
  const what = `${label} from ${n} source${n === 1 ? "" : "s"}`;
  const dataDir = `${dir}/downloader-${n}`;
  const file = `${dir}/export-${n}.bin`;
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    await using d = await spawnPeer({
      host: DOWNLOADER_HOST,
      name: `downloader-${n}`,
      dataDir,
      seeds: sources,
      signal: ctx.signal,
    });
    await waitForPeers(d, sources, ctx.signal);
    const idle = await d.memory();
    ctx.log(`${what}: downloader pid ${d.pid} on ${d.http}, downloading`);

    const signal = phaseSignal(ctx, put.size);
    const procs = [d, ...sources];
    const cpu0 = await cpuOf([...procs, { pid: Deno.pid }]);
    const t0 = performance.now();
    const done = await startDownload(d, put.payloadId, signal);
    const downloadSeconds = (performance.now() - t0) / 1000;
    const cpu1 = await cpuOf([...procs, { pid: Deno.pid }]);
    const afterDownload = await d.memory();

    const t1 = performance.now();
    const res = await fetch(`${d.http}/_p2p/payloads/${put.payloadId}/content`, { signal });
    if (!res.ok) throw new Error(`Export answered ${res.status}: ${await res.text()}`);
    await Deno.writeFile(file, res.body!, { signal });
    const exportSeconds = (performance.now() - t1) / 1000;
    const cpu2 = await cpuOf([...procs, { pid: Deno.pid }]);
    const afterExport = await d.memory();
    ctx.log(
      `${what}: download ${downloadSeconds.toFixed(2)} s, export ${exportSeconds.toFixed(2)} s; ` +
        `checking the file`,
    );

    const check = await sha256File(file, phaseSignal(ctx, put.size));
    if (check.bytes !== put.size || check.hex !== put.sha256) {
      throw new Error(
        `Exported file of ${what} does not match what was put: ${check.bytes} bytes ` +
          `sha256 ${check.hex}, expected ${put.size} bytes sha256 ${put.sha256}`,
      );
    }

    const bySource = (done.chunksBySource ?? {}) as Record<string, number>;
    const used = Object.keys(bySource).length;
    const total = downloadSeconds + exportSeconds;
    const downloadRate = rate(put.size, downloadSeconds);
    const peak = afterExport.peakKiB === null ? null : afterExport.peakKiB * 1024;
    const sourceFlag = used !== n
      ? `${used} of ${n} sources delivered chunks (${JSON.stringify(bySource)})`
      : undefined;
    const rateFlag = n === 3 && downloadRate < TARGET_MIB_S
      ? `below the target of ${TARGET_MIB_S} MiB/s from 3 sources (${downloadSeconds.toFixed(2)} s)`
      : undefined;
    figures.push(
      {
        name: `${what}: download`,
        value: downloadRate,
        unit: "MiB/s",
        note: `${downloadSeconds.toFixed(2)} s, network to verified chunks on disk` +
          (n === 3 ? `; target ${TARGET_MIB_S} MiB/s` : ""),
        ...(sourceFlag || rateFlag
          ? { flag: [sourceFlag, rateFlag].filter(Boolean).join("; ") }
          : {}),
      },
      {
        name: `${what}: download + export`,
        value: rate(put.size, total),
        unit: "MiB/s",
        note: `${total.toFixed(2)} s; export alone ${exportSeconds.toFixed(2)} s, ` +
          `${rate(put.size, exportSeconds).toFixed(0)} MiB/s`,
      },
      {
        name: `${what}: downloader peak RSS`,
        value: mib(afterExport.peakKiB),
        unit: "MiB",
        note: `VmHWM; ${mib(afterDownload.peakKiB)?.toFixed(0)} MiB after the download alone, ` +
          `${mib(idle.rssKiB)?.toFixed(0)} MiB idle; target < 200 MB`,
        ...(peak !== null && peak >= TARGET_RSS_BYTES
          ? { flag: `peak RSS over the target of 200 MB (${(peak / 1e6).toFixed(0)} MB)` }
          : {}),
      },
    );
    const names = ["downloader", ...sources.map((_, i) => `source ${i + 1}`), "bench"];
    const use = (a: (number | null)[], b: (number | null)[], s: number) =>
      names.map((name, i) => `${name} ${cpuUse(a[i], b[i], s)}`).join(", ");
    notes.push(
      `${what} download (${downloadSeconds.toFixed(2)} s): CPU ${
        use(cpu0, cpu1, downloadSeconds)
      }; chunks by source ${JSON.stringify(Object.values(bySource))}, ` +
        `peer-timed ${Number(done.seconds).toFixed(2)} s`,
      `${what} export (${exportSeconds.toFixed(2)} s): CPU ${use(cpu1, cpu2, exportSeconds)}`,
    );
    const exit = await d.stop();
    if (exit.code !== 0) notes.push(`${what}: downloader exit ${exit.code}:\n${d.output()}`);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    await Deno.remove(file).catch(() => {});
  }
  return { figures, notes };
}

// ---- control API calls ----

/** What putting the payload into source 1 gave. */
interface PutResult {
  payloadId: string;
  size: number;
  /** SHA-256 of the bytes put, hex. */
  sha256: string;
  seconds: number;
}

/**
 * Streams `size` pseudo-random bytes into `peer` with `POST /_p2p/payloads`, through
 * `node:http` with a `content-length` rather than `fetch`: Deno 2.9's fetch sends a
 * stream body as 64 KiB chunked frames, and the peer's `Deno.serve` reads those at
 * about 10 MiB/s, CPU-bound, once the handler awaits anything between reads (it
 * writes chunk files); `node:http` sends the same bytes at full speed.
 */
async function putPayload(
  peer: Peer,
  size: number,
  label: string,
  signal: AbortSignal,
): Promise<PutResult> {
  const hash = createHash("sha256");
  const url = new URL(`${peer.http}/_p2p/payloads?name=${encodeURIComponent(`bench ${label}`)}`);
  const t0 = performance.now();
  const req = request({
    host: url.hostname,
    port: Number(url.port),
    method: "POST",
    path: url.pathname + url.search,
    headers: { "content-type": "application/octet-stream", "content-length": String(size) },
    signal,
  });
  const answer = once(req, "response", { signal }) as Promise<[IncomingMessage]>;
  answer.catch(() => {}); // awaited below, after the body is written
  for await (const block of pseudoRandomStream(size, size >>> 20)) {
    hash.update(block);
    if (!req.write(block)) await once(req, "drain", { signal });
  }
  req.end();
  const [res] = await answer;
  let text = "";
  res.setEncoding("utf8");
  for await (const part of res) text += part;
  if (res.statusCode !== 200) throw new Error(`Put answered ${res.statusCode}: ${text}`);
  const done = parseEvents(text, "put");
  const seconds = (performance.now() - t0) / 1000;
  if (done.size !== size) throw new Error(`Put stored ${done.size} bytes, not ${size}`);
  return { payloadId: String(done.payloadId), size, sha256: hash.digest("hex"), seconds };
}

/** `POST /_p2p/downloads/{id}` on `peer`, resolving with the final `done` event. */
async function startDownload(
  peer: Peer,
  payloadId: string,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  const res = await fetch(`${peer.http}/_p2p/downloads/${payloadId}`, { method: "POST", signal });
  return await readEvents(res, `download on ${peer.name}`);
}

/** Reads an NDJSON answer to its end; returns the `done` event, throws on `error`. */
async function readEvents(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what} answered ${res.status}: ${text}`);
  return parseEvents(text, what);
}

/** The `done` event of a whole NDJSON answer; throws on an `error` event or none. */
function parseEvents(text: string, what: string): Record<string, unknown> {
  let last: Record<string, unknown> = {};
  for (const line of text.split("\n")) {
    if (!line) continue;
    last = JSON.parse(line);
    if (last.type === "error") throw new Error(`${what} failed: ${last.message}`);
  }
  if (last.type !== "done") throw new Error(`${what} ended without a done event: ${text}`);
  return last;
}

/**
 * Resolves once `peer` lists every one of `expected` in `GET /_p2p/peers`: it learns
 * its seeds in the background after it starts, and downloads need them known. The
 * peer is another process with no event to wait on, so this asks every 50 ms, 15 s
 * at most.
 */
async function waitForPeers(peer: Peer, expected: Peer[], signal: AbortSignal): Promise<void> {
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(15_000)]);
  for (;;) {
    const res = await fetch(`${peer.http}/_p2p/peers`, { signal: deadline });
    const { peers } = await res.json() as { peers: { peerId: string }[] };
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

// ---- payload bytes ----

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
      const n = Math.min(BLOCK, left);
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
async function sha256File(
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

// ---- raw TCP ceiling ----

/** Receives one connection, reads it to the end, prints `{bytes, seconds}` from the first byte. */
const TCP_SINK = `
const listener = Deno.listen({ hostname: Deno.args[0], port: 0 });
console.log(listener.addr.port);
const conn = await listener.accept();
listener.close();
const buf = new Uint8Array(2 * 1024 * 1024);
let bytes = 0;
let t0 = 0;
for (;;) {
  const n = await conn.read(buf);
  if (n === null) break;
  if (bytes === 0) t0 = performance.now();
  bytes += n;
}
conn.close();
console.log(JSON.stringify({ bytes, seconds: (performance.now() - t0) / 1000 }));
`;

/** Connects and writes `Deno.args[2]` bytes in 1 MiB writes. */
const TCP_SOURCE = `
const conn = await Deno.connect({ hostname: Deno.args[0], port: Number(Deno.args[1]) });
const buf = new Uint8Array(1024 * 1024).fill(7);
let left = Number(Deno.args[2]);
while (left > 0) left -= await conn.write(left >= buf.length ? buf : buf.subarray(0, left));
conn.close();
`;

/** One Deno process writing 1 GiB to another over one loopback TCP connection. */
async function rawTcp(ctx: BenchContext, dir: string): Promise<Figure> {
  await Deno.writeTextFile(`${dir}/tcp_sink.ts`, TCP_SINK);
  await Deno.writeTextFile(`${dir}/tcp_source.ts`, TCP_SOURCE);
  const signal = phaseSignal(ctx, TCP_BYTES);
  const deno = (script: string, args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${dir}/${script}`, ...args],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  const sink = deno("tcp_sink.ts", [TCP_HOST]);
  const lines = sink.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const readLine = async () => {
    for (;;) {
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        return line;
      }
      const { done, value } = await lines.read();
      if (done) throw new Error(`TCP sink ended early: ${out}`);
      out += value;
    }
  };
  const port = Number(await readLine());
  const source = await deno("tcp_source.ts", [TCP_HOST, String(port), String(TCP_BYTES)])
    .output();
  const result = JSON.parse(await readLine()) as { bytes: number; seconds: number };
  lines.cancel().catch(() => {});
  const status = await sink.status;
  await sink.stderr.cancel();
  if (!source.success || !status.success || result.bytes !== TCP_BYTES) {
    throw new Error(
      `Raw TCP transfer failed: source exit ${source.code}, sink exit ${status.code}, ` +
        `${result.bytes} bytes: ${new TextDecoder().decode(source.stderr)}`,
    );
  }
  const value = rate(result.bytes, result.seconds);
  ctx.log(`raw loopback TCP: ${value.toFixed(0)} MiB/s`);
  return {
    name: "raw loopback TCP, Deno to Deno",
    value,
    unit: "MiB/s",
    note: `1 GiB over 1 connection, 1 MiB writes, 2 MiB reads: the ceiling`,
  };
}

/**
 * Writes 1 GiB into one new file in the temporary directory, 1 MiB a write, from
 * this process: what the file system takes for fresh data, the other ceiling.
 */
async function rawDisk(ctx: BenchContext, dir: string): Promise<Figure> {
  const path = `${dir}/disk-ceiling.bin`;
  const block = new Uint8Array(MiB).fill(7);
  const cpu0 = await processCpuSeconds(Deno.pid);
  const t0 = performance.now();
  {
    using file = await Deno.open(path, { write: true, createNew: true });
    for (let left = DISK_BYTES; left > 0; left -= MiB) {
      ctx.signal.throwIfAborted();
      for (let off = 0; off < block.length;) off += await file.write(block.subarray(off));
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = await processCpuSeconds(Deno.pid);
  await Deno.remove(path);
  const value = rate(DISK_BYTES, seconds);
  ctx.log(`raw file write: ${value.toFixed(0)} MiB/s`);
  return {
    name: "raw file write, Deno",
    value,
    unit: "MiB/s",
    note: `1 GiB into 1 new file, 1 MiB writes, no fsync; CPU ${cpuUse(cpu0, cpu1, seconds)}`,
  };
}

// ---- peer processes ----

/** What `spawnPeer()` needs. */
interface SpawnPeerOptions {
  host: string;
  name: string;
  dataDir: string;
  /** Peers given with `--peer HOST:PORT`. */
  seeds: Peer[];
  signal: AbortSignal;
}

/** A `p2p peer` child process. `await using` stops it. */
interface Peer extends AsyncDisposable {
  name: string;
  pid: number;
  peerId: string;
  host: string;
  /** TCP chunk port. */
  port: number;
  /** Control API base URL. */
  http: string;
  memory(): Promise<{ peakKiB: number | null; rssKiB: number | null }>;
  /** The last lines it printed (stdout and stderr). */
  output(): string;
  /** Sends SIGTERM, waits for the exit (SIGKILL after 15 s); idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Starts `main.ts peer` (ports 0, no replicas) with the test suite's `spawnPeer()`. */
async function spawnPeer(opts: SpawnPeerOptions): Promise<Peer> {
  const p = await spawnTestPeer({
    dataDir: opts.dataDir,
    host: opts.host,
    name: opts.name,
    seeds: opts.seeds.map((s) => `${s.host}:${s.port}`),
    signal: opts.signal,
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
    memory: () => processMemory(p.child.pid),
    output: () => `${tail(p.stdout())}\nstderr: ${tail(p.stderr())}`,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

// ---- small helpers ----

/** The run's signal plus a time limit for a phase moving `bytes`: 60 s + 8 MiB/s. */
function phaseSignal(ctx: BenchContext, bytes: number): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(60_000 + (bytes / (8 * MiB)) * 1000)]);
}

/** CPU seconds used so far by each process. */
function cpuOf(procs: { pid: number }[]): Promise<(number | null)[]> {
  return Promise.all(procs.map((p) => processCpuSeconds(p.pid)));
}

/** CPU used between two readings, e.g. `1.52 s (87%)`. */
function cpuUse(before: number | null, after: number | null, seconds: number): string {
  if (before === null || after === null) return "n/a";
  const used = after - before;
  return `${used.toFixed(2)} s (${Math.round((used / seconds) * 100)}%)`;
}

function rate(bytes: number, seconds: number): number {
  return bytes / MiB / seconds;
}

function mib(kib: number | null): number | null {
  return kib === null ? null : kib / 1024;
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(1);
}
