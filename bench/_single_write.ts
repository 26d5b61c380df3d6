/**
 * The commands a user times, on the peer's own machine (issue 13): `p2p get ID -o FILE`
 * and `p2p put FILE` as child processes, whole-command times, each printed as a ratio
 * to the raw write of a new file measured in the same run (target at least 0.6), with
 * the A/B beside it in the same window: the same command through the streamed path
 * (`get ID -o -` into a file, and the file streamed over HTTP by `ControlClient.put()`,
 * as `p2p put FILE` did before, without the client's start-up). CPU-seconds per GiB of the
 * peers are in the notes. Every file written is checked against the SHA-256 of the
 * payload before its time counts.
 *
 * @module
 */
import { type BenchContext, cpuOf, type Figure, MiB, phaseSignal, rate } from "./_bench.ts";
import {
  type BenchPeer,
  pseudoRandomStream,
  sha256File,
  spawnBenchPeer,
  waitForPeers,
} from "./_bench_peer.ts";
import { p2pCommand } from "../tests/_tracker_process.ts";

/** The whole command over the raw write of a new file, at least. */
export const TARGET_RAW_RATIO = 0.6;

/** What was put, to check files against. */
export interface PutPayload {
  payloadId: string;
  size: number;
  sha256: string;
}

/** A client command as a child process against `peer`; stdout to `stdoutFile` when given. */
async function runCli(
  args: string[],
  peer: BenchPeer,
  signal: AbortSignal,
  io: { stdoutFile?: string } = {},
): Promise<{ seconds: number }> {
  const all = [...args, "--node", peer.http, "--token", peer.token];
  const command = p2pCommand(all, undefined, new URL("../main.ts", import.meta.url).pathname);
  const t0 = performance.now();
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: io.stdoutFile ? "piped" : "null",
    stderr: "piped",
    signal,
  }).spawn();
  const jobs: Promise<unknown>[] = [];
  if (io.stdoutFile) {
    const out = await Deno.open(io.stdoutFile, { write: true, createNew: true });
    jobs.push(child.stdout.pipeTo(out.writable));
  }
  const stderr = new Response(child.stderr).text();
  const status = await child.status;
  await Promise.all(jobs);
  const seconds = (performance.now() - t0) / 1000;
  if (!status.success) throw new Error(`p2p ${args.join(" ")} failed: ${await stderr}`);
  return { seconds };
}

/**
 * The old way of `p2p put FILE`, without the client's start-up: the file's bytes
 * streamed over HTTP into the peer (`POST /_p2p/payloads`, as `ControlClient.put()`).
 */
async function streamPut(
  peer: BenchPeer,
  file: string,
  size: number,
  signal: AbortSignal,
): Promise<{ seconds: number }> {
  const t0 = performance.now();
  const f = await Deno.open(file);
  const done = await peer.control.put(f.readable, { name: "x", size, signal });
  if (done.size !== size) throw new Error(`Put stored ${done.size} bytes, not ${size}`);
  return { seconds: (performance.now() - t0) / 1000 };
}

/** CPU-seconds per GiB of each process between two readings. */
function perGiB(names: string[], a: (number | null)[], b: (number | null)[], bytes: number) {
  return names.map((n, i) => {
    const used = a[i] === null || b[i] === null ? null : b[i]! - a[i]!;
    return `${n} ${used === null ? "?" : (used / (bytes / (1024 * MiB))).toFixed(2)}`;
  }).join(", ") + " CPU-s/GiB";
}

/** Throws unless `file` holds exactly what was put. */
async function check(file: string, put: PutPayload, ctx: BenchContext): Promise<void> {
  const got = await sha256File(file, phaseSignal(ctx.signal, put.size));
  if (got.bytes !== put.size || got.hex !== put.sha256) {
    throw new Error(`'${file}' does not match what was put (${got.bytes} bytes, ${got.hex})`);
  }
}

/** The figure of a whole command against the raw write rate. */
function ratioFigure(
  name: string,
  bytes: number,
  seconds: number,
  raw: number,
  ab: string,
): Figure {
  const value = rate(bytes, seconds) / raw;
  return {
    name,
    value,
    unit: "x raw write",
    note: `${seconds.toFixed(2)} s, ${rate(bytes, seconds).toFixed(0)} MiB/s whole command; raw ` +
      `write ${raw.toFixed(0)} MiB/s in this run; ${ab}; target at least ${TARGET_RAW_RATIO}`,
    ...(value < TARGET_RAW_RATIO ? { flag: `below ${TARGET_RAW_RATIO}x the raw write` } : {}),
  };
}

/**
 * `p2p get ID -o FILE` (the peer writes the file) and `p2p get ID -o - > FILE` (the
 * bytes streamed to the client), each by a fresh downloader seeded with `sources`,
 * alternating `rounds` times; the figure is the median of the single-write runs.
 */
export async function getToFile(
  ctx: BenchContext,
  dir: string,
  label: string,
  put: PutPayload,
  sources: BenchPeer[],
  host: string,
  raw: number,
  args: string[] = [],
  rounds = 2,
): Promise<{ figures: Figure[]; notes: string[] }> {
  const times: Record<"file" | "stream", number[]> = { file: [], stream: [] };
  const links = args.length ? ` (${args.join(" ")})` : "";
  const notes: string[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const how of ["file", "stream"] as const) {
      const dataDir = `${dir}/get-${how}-${r}`;
      const out = `${dir}/got-${how}-${r}.bin`;
      try {
        await using d = await spawnBenchPeer({
          host,
          name: `get-${how}`,
          dataDir,
          seeds: sources,
          signal: ctx.signal,
          args,
        });
        await waitForPeers(d, sources, ctx.signal);
        const procs = [d, ...sources];
        const cpu0 = await cpuOf(procs);
        const cli = how === "file"
          ? ["get", put.payloadId, "-o", out]
          : ["get", put.payloadId, "-o", "-"];
        const run = await runCli(
          cli,
          d,
          phaseSignal(ctx.signal, put.size),
          how === "stream" ? { stdoutFile: out } : {},
        );
        const cpu1 = await cpuOf(procs);
        await check(out, put, ctx);
        times[how].push(run.seconds);
        notes.push(
          `${label}${links} get -o ${
            how === "file" ? "FILE (peer writes it)" : "- (streamed)"
          } round ${r + 1}: ` +
            `${run.seconds.toFixed(2)} s; ` +
            perGiB(
              ["downloader", ...sources.map((_, i) => `source ${i + 1}`)],
              cpu0,
              cpu1,
              put.size,
            ),
        );
        ctx.log(`${label}: get -o ${how} ${run.seconds.toFixed(2)} s`);
      } finally {
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        await Deno.remove(out).catch(() => {});
      }
    }
  }
  const med = (a: number[]) => a.toSorted((x, y) => x - y)[Math.floor(a.length / 2)];
  const stream = med(times.stream);
  return {
    figures: [
      ratioFigure(
        `${label} from ${sources.length} sources${links}: p2p get -o FILE, whole command`,
        put.size,
        med(times.file),
        raw,
        `A/B: streamed to the client (-o -) ${stream.toFixed(2)} s, ` +
          `${(rate(put.size, stream) / raw).toFixed(2)}x; median of ${rounds} each, alternating`,
      ),
    ],
    notes,
  };
}

/**
 * `p2p put FILE` (the peer reads the file) and the file streamed over HTTP into fresh
 * peers, alternating `rounds` times; the figure is the median of the
 * by-path runs.
 */
export async function putFile(
  ctx: BenchContext,
  dir: string,
  label: string,
  bytes: number,
  host: string,
  raw: number,
  rounds = 2,
): Promise<{ figures: Figure[]; notes: string[] }> {
  const file = `${dir}/put-input.bin`;
  {
    using f = await Deno.open(file, { write: true, createNew: true });
    await pseudoRandomStream(bytes, 7).pipeTo(f.writable, { preventClose: true });
  }
  const times: Record<"path" | "stream", number[]> = { path: [], stream: [] };
  const notes: string[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const how of ["path", "stream"] as const) {
        const dataDir = `${dir}/put-${how}-${r}`;
        try {
          await using p = await spawnBenchPeer({
            host,
            name: `put-${how}`,
            dataDir,
            seeds: [],
            signal: ctx.signal,
          });
          const cpu0 = await cpuOf([p]);
          const run = how === "path"
            ? await runCli(["put", file], p, phaseSignal(ctx.signal, bytes))
            : await streamPut(p, file, bytes, phaseSignal(ctx.signal, bytes));
          const cpu1 = await cpuOf([p]);
          times[how].push(run.seconds);
          notes.push(
            `${label} put ${how === "path" ? "FILE (peer reads it)" : "streamed over HTTP"} round ${
              r + 1
            }: ` +
              `${run.seconds.toFixed(2)} s; ${perGiB(["peer"], cpu0, cpu1, bytes)}`,
          );
          ctx.log(`${label}: put ${how} ${run.seconds.toFixed(2)} s`);
        } finally {
          await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        }
      }
    }
  } finally {
    await Deno.remove(file).catch(() => {});
  }
  const med = (a: number[]) => a.toSorted((x, y) => x - y)[Math.floor(a.length / 2)];
  const stream = med(times.stream);
  return {
    figures: [
      ratioFigure(
        `${label}: p2p put FILE, whole command`,
        bytes,
        med(times.path),
        raw,
        `A/B: streamed over HTTP (control API) ${stream.toFixed(2)} s, ` +
          `${(rate(bytes, stream) / raw).toFixed(2)}x; median of ${rounds} each, alternating`,
      ),
    ],
    notes,
  };
}
