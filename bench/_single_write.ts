/**
 * The commands a user times, on the peer's own machine (issue 13): `p2p get ID -o FILE`
 * and `p2p put FILE` as child processes, whole-command times, each printed as a ratio
 * to the raw write of a new file of the same size taken just before it in every round
 * (the disk of a shared VM swings by 10x within minutes; target at least 0.6), each
 * timed step after `settlePages()` so that both meet memory in the same state, with
 * the A/B beside it in the same window: the same command through the streamed path
 * (`get ID -o -` into a file, and the file streamed over HTTP by `ControlClient.put()`,
 * as `p2p put FILE` did before, without the client's start-up). CPU-seconds per GiB of the
 * peers are in the notes. Every file written is checked against the SHA-256 of the
 * payload before its time counts.
 *
 * @module
 */
import {
  type BenchContext,
  busiestThread,
  cpuOf,
  type Figure,
  machineBusySeconds,
  MiB,
  phaseSignal,
  settlePages,
  threadCpuSeconds,
} from "./_bench.ts";
import {
  type BenchPeer,
  pseudoRandomStream,
  sha256File,
  spawnBenchPeer,
  waitForPeers,
} from "./_bench_peer.ts";
import { p2pCommand } from "../tests/_tracker_process.ts";
import { rawWriteSeconds } from "./_ceilings.ts";

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

/** The middle value; of an even count, the mean of the two middle ones (of 2 rounds, not the worse). */
function median(a: number[]): number {
  const s = a.toSorted((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * What the CPU allows a command: its time cannot be shorter than the CPU-seconds of
 * the downloader's busiest thread (work that runs one step after the other), nor than
 * the CPU-seconds the whole machine was busy spread over all its cores.
 */
interface CpuBound {
  seconds: number;
  busiest: number;
  busy: number;
  cores: number;
  /** max(busiest, busy / cores) over `seconds`. */
  share: number;
}

function cpuBound(
  seconds: number,
  busiest: number,
  busy0: number | null,
  busy1: number | null,
): CpuBound | undefined {
  if (busy0 === null || busy1 === null || busiest <= 0) return undefined;
  const busy = busy1 - busy0;
  const cores = navigator.hardwareConcurrency;
  return { seconds, busiest, busy, cores, share: Math.max(busiest, busy / cores) / seconds };
}

function boundNote(b: CpuBound): string {
  return `downloader's busiest thread ${b.busiest.toFixed(2)} CPU-s, machine busy ` +
    `${b.busy.toFixed(2)} CPU-s on ${b.cores} cores: ` +
    `${(100 * b.share).toFixed(0)} % of its CPU bound`;
}

/** The median share of the CPU bound of the single-write rounds. */
function boundFigure(what: string, bounds: CpuBound[]): Figure {
  const mid = (f: (b: CpuBound) => number) => median(bounds.map(f)).toFixed(2);
  return {
    name: `${what}: p2p get -o FILE, share of its CPU bound`,
    value: bounds.length ? 100 * median(bounds.map((b) => b.share)) : null,
    unit: "%",
    note: bounds.length
      ? `medians of ${bounds.length} rounds: ${mid((b) => b.seconds)} s; the downloader's ` +
        `busiest thread ${mid((b) => b.busiest)} CPU-s, the machine busy ` +
        `${mid((b) => b.busy)} CPU-s on ${bounds[0].cores} cores`
      : "CPU time unknown (no /proc)",
  };
}

/** What a whole command is compared with in `ratioFigure()`. */
const RAW_REFERENCE = "raw write of a new file of as many bytes, beside it";

/**
 * The figure of a whole command: the median over rounds of raw write time / command
 * time, each raw write of the same size taken just before its command; `t.ab` (the
 * A/B, the same command another way) is in the note when it was run.
 */
function ratioFigure(
  name: string,
  scenario: string,
  t: { raw: number[]; cmd: number[]; ab: number[] },
  ab: string,
): Figure {
  const ratios = (cmd: number[]) => median(cmd.map((c, i) => t.raw[i] / c));
  const abNote = t.ab.length
    ? `; A/B: ${ab} ${median(t.ab).toFixed(2)} s, ${ratios(t.ab).toFixed(2)}x`
    : "";
  return {
    name,
    value: ratios(t.cmd),
    unit: "x raw write",
    note: `whole command ${median(t.cmd).toFixed(2)} s, raw write ${median(t.raw).toFixed(2)} s ` +
      `(medians of ${t.cmd.length} alternating rounds)${abNote}`,
    target: { min: TARGET_RAW_RATIO },
    reference: RAW_REFERENCE,
    scenario,
  };
}

/** How `getToFile()` runs. */
export interface GetToFileOptions {
  /** More `p2p peer` arguments of the downloader (e.g. `--insecure-plaintext`). */
  args?: string[];
  /** Rounds of alternating runs (default 2). */
  rounds?: number;
  /** Also time the streamed way (`-o -`) as the A/B (default true). */
  streamed?: boolean;
}

/** The scenario (chart group) of `p2p get -o` of `label` from `n` sources. */
export function getScenario(label: string, n: number, args: string[] = []): string {
  const links = args.length ? ` (${args.join(" ")})` : "";
  return `p2p get -o, ${label} from ${n} source${n === 1 ? "" : "s"}${links}`;
}

/**
 * `p2p get ID -o FILE` (the peer writes the file) and `p2p get ID -o - > FILE` (the
 * bytes streamed to the client), each by a fresh downloader seeded with `sources`,
 * alternating `rounds` times; the figure is the median of the single-write runs,
 * and `seconds` the median time of the whole `-o FILE` command.
 */
export async function getToFile(
  ctx: BenchContext,
  dir: string,
  label: string,
  put: PutPayload,
  sources: BenchPeer[],
  host: string,
  opts: GetToFileOptions = {},
): Promise<{ figures: Figure[]; notes: string[]; seconds: number; rawSeconds: number }> {
  const { args = [], rounds = 2, streamed = true } = opts;
  const times: Record<"file" | "stream" | "raw", number[]> = { file: [], stream: [], raw: [] };
  const bounds: CpuBound[] = [];
  const links = args.length ? ` (${args.join(" ")})` : "";
  const notes: string[] = [];
  const ways = streamed ? (["file", "stream"] as const) : (["file"] as const);
  for (let r = 0; r < rounds; r++) {
    await settlePages(ctx.signal);
    times.raw.push(await rawWriteSeconds(`${dir}/raw.bin`, put.size, ctx.signal));
    for (const how of ways) {
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
        await settlePages(ctx.signal);
        const procs = [d, ...sources];
        const cpu0 = await cpuOf(procs);
        const threads0 = await threadCpuSeconds(d.pid);
        const busy0 = await machineBusySeconds();
        const cli = how === "file"
          ? ["get", put.payloadId, "-o", out]
          : ["get", put.payloadId, "-o", "-"];
        const run = await runCli(
          cli,
          d,
          phaseSignal(ctx.signal, put.size),
          how === "stream" ? { stdoutFile: out } : {},
        );
        const busy1 = await machineBusySeconds();
        const busiest = busiestThread(threads0, await threadCpuSeconds(d.pid));
        const cpu1 = await cpuOf(procs);
        await check(out, put, ctx);
        times[how].push(run.seconds);
        const bound = cpuBound(run.seconds, busiest, busy0, busy1);
        if (how === "file" && bound) bounds.push(bound);
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
            ) + (bound ? `; ${boundNote(bound)}` : ""),
        );
        ctx.log(`${label}: get -o ${how} ${run.seconds.toFixed(2)} s`);
      } finally {
        await Deno.remove(dataDir, { recursive: true }).catch(() => {});
        await Deno.remove(out).catch(() => {});
      }
    }
  }
  const n = sources.length;
  return {
    figures: [
      ratioFigure(
        `${label} from ${n} source${n === 1 ? "" : "s"}${links}: p2p get -o FILE, whole command`,
        getScenario(label, n, args),
        { raw: times.raw, cmd: times.file, ab: times.stream },
        "streamed to the client (-o -)",
      ),
      boundFigure(`${label} from ${n} source${n === 1 ? "" : "s"}${links}`, bounds),
    ],
    notes,
    seconds: median(times.file),
    rawSeconds: median(times.raw),
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
  rounds = 2,
): Promise<{ figures: Figure[]; notes: string[] }> {
  const file = `${dir}/put-input.bin`;
  {
    using f = await Deno.open(file, { write: true, createNew: true });
    await pseudoRandomStream(bytes, 7).pipeTo(f.writable, { preventClose: true });
  }
  const times: Record<"path" | "stream" | "raw", number[]> = { path: [], stream: [], raw: [] };
  const notes: string[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      await settlePages(ctx.signal);
      times.raw.push(await rawWriteSeconds(`${dir}/raw.bin`, bytes, ctx.signal));
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
          await settlePages(ctx.signal);
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
  return {
    figures: [
      ratioFigure(
        `${label}: p2p put FILE, whole command`,
        `p2p put FILE, ${label}`,
        { raw: times.raw, cmd: times.path, ab: times.stream },
        "streamed over HTTP (control API)",
      ),
    ],
    notes,
  };
}
