/**
 * A swarm on loopback (issue 13): one seeder peer (127.0.0.2) holds a 256 MiB
 * payload, and 16 downloader peers (127.0.0.10..25, each a `p2p peer` child process)
 * download it at once. Reported: the time for all 16 to hold it over the time of
 * one downloader alone from the same seeder (target at most 2x: a swarm whose
 * members serve each other stays flat), and aria2c over BitTorrent with 1 seeder
 * and 16 leechers (opentracker, `bench/_bittorrent_reference.ts`) on the same bytes,
 * as aria2c's time over p2p's (target at least 1x: p2p faster), beside aria2c's own
 * 16-leecher time over one aria2c leecher alone (what flatness BitTorrent reaches on
 * this machine). Also the seeder's CPU-seconds per GiB it served, and in the notes
 * how far apart the downloaders finished and the CPU they used together (on 2 cores,
 * 16 downloaders' CPU per GiB bounds the swarm's time). The same swarm then runs again
 * with plaintext links (`--insecure-plaintext` on every peer) and is compared with
 * aria2c too, without a target: aria2c does not encrypt, and that row shows what TLS
 * costs the swarm in the same run.
 *
 * The downloaders are started one after the other, each given the seeder and every
 * downloader before it as `--peer` seeds, and are all linked (each lists the seeder
 * and every other downloader) before the clock starts; the clock starts when every
 * download is asked for at once. Every downloader's copy is read back and hashed
 * before the time counts. `P2P_BENCH_MIB=N` sets the payload size and
 * `P2P_BENCH_SWARM=N` the number of downloaders, when iterating.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  type BenchContext,
  type Benchmark,
  type BenchOutput,
  BenchSkip,
  cpuOf,
  type Figure,
  freeDiskBytes,
  MiB,
  phaseSignal,
  rate,
  settlePages,
} from "./_bench.ts";
import {
  type BenchPeer,
  PLAINTEXT_ARGS,
  pseudoRandomStream,
  type PutDone,
  putPayload,
  spawnBenchPeer,
  waitForPeers,
} from "./_bench_peer.ts";
import { bittorrentReference } from "./_bittorrent_reference.ts";
import { writePayloadFile } from "./_reference_kit.ts";

const SEEDER_HOST = "127.0.0.2";
const ALONE_HOST = "127.0.0.3";
/** Downloader `i` is on 127.0.0.(FIRST_HOST + i). */
const FIRST_HOST = 10;
const DEFAULT_MIB = 256;
const DEFAULT_DOWNLOADERS = 16;
/** All downloaders' time over one alone, at most. */
const TARGET_FLAT = 2;
/** aria2c's time over p2p's, at least. */
const TARGET_VS_BITTORRENT = 1;

/** The `swarm` benchmark. */
export const swarm: Benchmark = {
  name: "swarm",
  description: "1 seeder and 16 downloader peers at once on loopback, 256 MiB: " +
    "against one downloader alone and aria2c BitTorrent with 16 leechers",
  run,
};

/** A whole number from the environment within [min, max], or `fallback`. */
function envInt(name: string, fallback: number, min: number, max: number): number {
  const text = Deno.env.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${name} '${text}' must be a whole number, ${min} to ${max}`);
  }
  return n;
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  try {
    await Deno.stat("/proc/self/stat");
  } catch {
    throw new BenchSkip("needs /proc (Linux) for the CPU time of the peers");
  }
  const mib = envInt("P2P_BENCH_MIB", DEFAULT_MIB, 1, 4096);
  const n = envInt("P2P_BENCH_SWARM", DEFAULT_DOWNLOADERS, 1, 200);
  const notes: string[] = [];
  if (mib !== DEFAULT_MIB) notes.push(`P2P_BENCH_MIB=${mib}: ${mib} MiB`);
  if (n !== DEFAULT_DOWNLOADERS) notes.push(`P2P_BENCH_SWARM=${n}: ${n} downloaders`);
  const bytes = mib * MiB;
  const label = `${mib} MiB, 1 seeder, ${n} downloaders`;

  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-swarm-" });
  try {
    // The seeder's copy, every downloader's (twice: p2p and aria2c) and a spare.
    const need = (2 * n + 4) * bytes;
    const free = await freeDiskBytes(dir);
    if (free !== null && free < need) {
      throw new BenchSkip(
        `${(free / 2 ** 30).toFixed(1)} GiB free in ${dir}, it needs ${
          (need / 2 ** 30).toFixed(1)
        } GiB`,
      );
    }
    // The seeder, on its own data dir: restarted with plaintext links for the second swarm.
    const startSeeder = (name: string, args: string[] = []) =>
      spawnBenchPeer({
        host: SEEDER_HOST,
        name,
        dataDir: `${dir}/seeder`,
        seeds: [],
        signal: ctx.signal,
        args,
      });
    await using seeder = await startSeeder("seeder");
    const put = await putPayload(seeder, bytes, label, phaseSignal(ctx.signal, bytes));
    ctx.log(`${label}: payload put into the seeder in ${put.seconds.toFixed(2)} s`);

    const alone = await downloadAlone(ctx, dir, seeder, put);
    const all = await downloadTogether(ctx, dir, seeder, put, n);
    await seeder.stop();
    // The same swarm with plaintext links, from the same seeder's data.
    await using plainSeeder = await startSeeder("seeder-plaintext", PLAINTEXT_ARGS);
    const plain = await downloadTogether(ctx, dir, plainSeeder, put, n, PLAINTEXT_ARGS);
    await plainSeeder.stop();
    const figures = p2pFigures(label, alone, all, bytes, n);
    figures.push({
      name: `${label}, plaintext links: all done`,
      value: rate(n * bytes, plain.last),
      unit: "MiB/s",
      note: `${plain.last.toFixed(2)} s until the last of ${n} held the payload, ` +
        `every peer with --insecure-plaintext; ${all.last.toFixed(2)} s over TLS`,
    });
    for (const [what, t] of [["", all], [", plaintext links", plain]] as const) {
      notes.push(
        `${label}${what}: downloaders finished between ${t.first.toFixed(2)} and ${
          t.last.toFixed(2)
        } s; chunks from the seeder ${t.fromSeeder} of ${t.chunks}; CPU over the swarm: ` +
          `seeder ${t.seederCpu?.toFixed(2) ?? "?"} s, downloaders together ${
            t.downloadersCpu?.toFixed(2) ?? "?"
          } s`,
      );
    }

    const bt = await bittorrentPart(ctx, label, put, n, { tls: all.last, plain: plain.last });
    figures.push(...bt.figures);
    notes.push(...bt.notes);
    return { figures, notes };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * aria2c over BitTorrent on the same bytes and addresses: one leecher alone, then
 * `n` at once (what BitTorrent's own flatness is here), compared with p2p's `n`.
 */
async function bittorrentPart(
  ctx: BenchContext,
  label: string,
  put: PutDone,
  n: number,
  p2pLast: { tls: number; plain: number },
): Promise<{ figures: Figure[]; notes: string[] }> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const payload = await writePayloadFile(
    "payload.bin",
    pseudoRandomStream(put.size, put.size >>> 20),
    ctx.signal,
  );
  try {
    if (payload.sha256 !== put.sha256) throw new Error("The reference payload differs");
    await settlePages(ctx.signal);
    const alone = await bittorrentReference(ctx, label, payload, {
      seeders: [SEEDER_HOST],
      leechers: [ALONE_HOST],
    });
    const bt = alone.seconds === undefined
      ? alone
      : await settlePages(ctx.signal).then(() =>
        bittorrentReference(
          ctx,
          label,
          payload,
          {
            seeders: [SEEDER_HOST],
            leechers: Array.from({ length: n }, (_, i) => downloaderHost(i)),
          },
        )
      );
    if (alone.seconds === undefined || bt.seconds === undefined) {
      notes.push(bt.note ?? `${label}: no BitTorrent time`);
      return { figures, notes };
    }
    ctx.log(
      `${label}: aria2c BitTorrent ${bt.seconds.toFixed(2)} s, alone ${alone.seconds.toFixed(2)} s`,
    );
    figures.push(
      ...bittorrentFigures(label, { alone: alone.seconds, all: bt.seconds }, p2pLast, put.size, n),
    );
    const times = bt.leechers ?? [];
    notes.push(
      `${label}: aria2c leechers finished between ${Math.min(...times).toFixed(2)} and ${
        Math.max(...times).toFixed(2)
      } s; leechers' CPU ${bt.cpuSeconds?.toFixed(2) ?? "?"} s`,
    );
  } finally {
    await Deno.remove(payload.dir, { recursive: true }).catch(() => {});
  }
  return { figures, notes };
}

function downloaderHost(i: number): string {
  return `127.0.0.${FIRST_HOST + i}`;
}

/** One downloader alone from the seeder: seconds of the download into its store. */
async function downloadAlone(
  ctx: BenchContext,
  dir: string,
  seeder: BenchPeer,
  put: PutDone,
): Promise<number> {
  await using d = await spawnBenchPeer({
    host: ALONE_HOST,
    name: "alone",
    dataDir: `${dir}/alone`,
    seeds: [seeder],
    signal: ctx.signal,
  });
  await waitForPeers(d, [seeder], ctx.signal);
  await settlePages(ctx.signal);
  const t0 = performance.now();
  await d.control.download(put.payloadId, { signal: phaseSignal(ctx.signal, put.size) });
  const seconds = (performance.now() - t0) / 1000;
  await assertHolds(d, put, ctx.signal);
  ctx.log(`one downloader alone: ${seconds.toFixed(2)} s`);
  await d.stop();
  await Deno.remove(`${dir}/alone`, { recursive: true });
  return seconds;
}

/** What the swarm of downloaders gave. */
interface Together {
  /** Seconds until the first and the last downloader held the payload. */
  first: number;
  last: number;
  /** Chunks all downloaders received, and how many of them came from the seeder. */
  chunks: number;
  fromSeeder: number;
  /** CPU-seconds the seeder used over the swarm's downloads. */
  seederCpu: number | null;
  /** CPU-seconds all downloaders used over them together. */
  downloadersCpu: number | null;
}

/** `n` downloaders started and linked, then all downloading at once. */
async function downloadTogether(
  ctx: BenchContext,
  dir: string,
  seeder: BenchPeer,
  put: PutDone,
  n: number,
  args: string[] = [],
): Promise<Together> {
  const peers: BenchPeer[] = [];
  const dataDir = (i: number) => `${dir}/downloader-${i}`;
  try {
    for (let i = 0; i < n; i++) {
      peers.push(
        await spawnBenchPeer({
          host: downloaderHost(i),
          name: `downloader-${i}`,
          dataDir: dataDir(i),
          seeds: [seeder, ...peers],
          signal: ctx.signal,
          args,
        }),
      );
    }
    await Promise.all(
      peers.map((d) => waitForPeers(d, [seeder, ...peers.filter((p) => p !== d)], ctx.signal)),
    );
    ctx.log(
      `${n} downloaders started and linked${
        args.length ? ` (${args.join(" ")})` : ""
      }; downloading`,
    );
    const signal = phaseSignal(ctx.signal, n * put.size);
    await settlePages(ctx.signal);
    const cpu0 = await cpuOf([seeder, ...peers]);
    const t0 = performance.now();
    const results = await Promise.all(peers.map(async (d) => {
      const done = await d.control.download(put.payloadId, { signal });
      return { seconds: (performance.now() - t0) / 1000, done };
    }));
    const cpu1 = await cpuOf([seeder, ...peers]);
    const times = results.map((r) => r.seconds);
    ctx.log(`${n} downloaders done in ${Math.max(...times).toFixed(2)} s; checking every copy`);
    for (const d of peers) await assertHolds(d, put, ctx.signal);
    const bySource = results.map((r) => r.done.chunksBySource);
    const sum = (pick: (b: Record<string, number>) => number) =>
      bySource.reduce((a, b) => a + pick(b), 0);
    return {
      first: Math.min(...times),
      last: Math.max(...times),
      chunks: sum((b) => Object.values(b).reduce((x, y) => x + y, 0)),
      fromSeeder: sum((b) => b[seeder.peerId] ?? 0),
      seederCpu: used(cpu0.slice(0, 1), cpu1.slice(0, 1)),
      downloadersCpu: used(cpu0.slice(1), cpu1.slice(1)),
    };
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    // The next swarm (or aria2c) starts from empty disks.
    await Promise.all(
      peers.map((_, i) => Deno.remove(dataDir(i), { recursive: true }).catch(() => {})),
    );
  }
}

/** CPU-seconds used between two readings of the same processes; null when one is unknown. */
function used(before: (number | null)[], after: (number | null)[]): number | null {
  let sum = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === null || after[i] === null) return null;
    sum += after[i]! - before[i]!;
  }
  return sum;
}

/** Throws unless the peer's copy of the payload, read back, hashes as what was put. */
async function assertHolds(peer: BenchPeer, put: PutDone, signal: AbortSignal): Promise<void> {
  const hash = createHash("sha256");
  let bytes = 0;
  const body = await peer.control.content(put.payloadId, {
    signal: phaseSignal(signal, put.size),
  });
  for await (const block of body) {
    hash.update(block);
    bytes += block.length;
  }
  const hex = hash.digest("hex");
  if (bytes !== put.size || hex !== put.sha256) {
    throw new Error(
      `${peer.name}'s copy is not the payload: ${bytes} bytes sha256 ${hex}, ` +
        `expected ${put.size} bytes sha256 ${put.sha256}`,
    );
  }
}

function p2pFigures(
  label: string,
  alone: number,
  all: Together,
  bytes: number,
  n: number,
): Figure[] {
  const served = all.fromSeeder * MiB;
  return [
    {
      name: `${label}: one downloader alone`,
      value: rate(bytes, alone),
      unit: "MiB/s",
      note: `${alone.toFixed(2)} s from the seeder, into its store`,
    },
    {
      name: `${label}: all done`,
      value: rate(n * bytes, all.last),
      unit: "MiB/s",
      note: `${all.last.toFixed(2)} s until the last of ${n} held the payload; MiB/s counts all`,
    },
    {
      name: `${label}: all done / one alone`,
      value: all.last / alone,
      unit: "x",
      note: `${all.last.toFixed(2)} s / ${alone.toFixed(2)} s`,
      target: { max: TARGET_FLAT },
      reference: "one downloader alone from the same seeder",
      scenario: `p2p swarm, ${label}`,
    },
    cpuBoundFigure(label, alone, all),
    {
      name: `${label}: seeder CPU-s/GiB served`,
      value: all.seederCpu === null || served === 0 ? null : all.seederCpu / (served / 2 ** 30),
      unit: "CPU-s/GiB",
      note: `${all.seederCpu?.toFixed(2) ?? "?"} CPU-s for ${(served / MiB).toFixed(0)} MiB served`,
    },
  ];
}

/**
 * What bounds the swarm on this machine: the CPU-seconds its processes used, spread
 * over every core, is a time no schedule of that work can beat; the figure is that
 * time over the swarm's, the share of the bound reached, and the note gives the
 * all-done / alone ratio the bound allows.
 */
function cpuBoundFigure(label: string, alone: number, all: Together): Figure {
  const cores = navigator.hardwareConcurrency;
  const cpu = all.seederCpu === null || all.downloadersCpu === null
    ? null
    : all.seederCpu + all.downloadersCpu;
  const bound = cpu === null ? null : cpu / cores;
  return {
    name: `${label}: all done, share of its CPU bound`,
    value: bound === null ? null : (100 * bound) / all.last,
    unit: "%",
    note: bound === null
      ? "CPU time unknown"
      : `${cpu!.toFixed(2)} CPU-s on ${cores} cores: at least ${bound.toFixed(2)} s, ` +
        `so all done / one alone ≥ ${(bound / alone).toFixed(1)}x with this CPU per download`,
  };
}

function bittorrentFigures(
  label: string,
  bt: { alone: number; all: number },
  p2p: { tls: number; plain: number },
  bytes: number,
  n: number,
): Figure[] {
  return [
    {
      name: `reference: aria2c BitTorrent, ${label}`,
      value: rate(n * bytes, bt.all),
      unit: "MiB/s",
      note: `${bt.all.toFixed(2)} s until the last of ${n} leechers held the payload`,
    },
    {
      name: `reference: aria2c BitTorrent, ${label}: all done / one alone`,
      value: bt.all / bt.alone,
      unit: "x",
      note: `${bt.all.toFixed(2)} s / ${bt.alone.toFixed(2)} s for one leecher alone: ` +
        `BitTorrent's own flatness on this machine`,
      reference: "one aria2c leecher alone from the same seeder",
      scenario: `aria2c BitTorrent swarm, ${label}`,
    },
    {
      name: `${label}: p2p vs aria2c BitTorrent`,
      value: bt.all / p2p.tls,
      unit: "x",
      note: `aria2c ${bt.all.toFixed(2)} s / p2p ${p2p.tls.toFixed(2)} s, all done`,
      target: { min: TARGET_VS_BITTORRENT },
      reference: `aria2c over BitTorrent, 1 seeder and ${n} leechers, opentracker`,
      scenario: `p2p swarm, ${label}`,
    },
    {
      name: `${label}, plaintext links: p2p vs aria2c BitTorrent`,
      value: bt.all / p2p.plain,
      unit: "x",
      note: `aria2c ${bt.all.toFixed(2)} s / p2p ${p2p.plain.toFixed(2)} s with ` +
        `--insecure-plaintext links, all done: the comparison without TLS (aria2c does not encrypt)`,
      reference: `aria2c over BitTorrent, 1 seeder and ${n} leechers, opentracker`,
      scenario: `p2p swarm with plaintext links, ${label}`,
    },
  ];
}
