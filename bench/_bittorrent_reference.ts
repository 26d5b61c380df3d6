/**
 * The BitTorrent reference (issue 13): aria2c seeders and leechers on their own
 * loopback addresses, with opentracker on 127.0.0.1 as the only way they find each
 * other (DHT, local peer discovery and peer exchange off), 1 MiB pieces
 * (`mktorrent -l 20`). The seeders are started and announced before the clock starts;
 * the time is from starting every leecher at once to the last of them holding the
 * whole payload (aria2c runs a hook at that moment, before it seeds; leechers keep
 * seeding to each other until all are done). Every copy is checked against the
 * payload's SHA-256 before the time counts, and every process is stopped at the end,
 * on error or abort too. All traffic stays on 127.0.0.0/8.
 *
 * @module
 */
import { errorMessage } from "../proto/errors.ts";
import { type BenchContext, cpuOf, phaseSignal, which } from "./_bench.ts";
import {
  assertSameBytes,
  freePort,
  type PayloadFile,
  type ReferenceTime,
  stopChild,
} from "./_reference_kit.ts";

/** Who takes part: loopback addresses of the seeders and of the leechers. */
export interface SwarmShape {
  seeders: string[];
  leechers: string[];
}

/** What a BitTorrent reference run gave. */
export interface TorrentTime extends ReferenceTime {
  /** Seconds from the start to each leecher's completion, in leecher order. */
  leechers?: number[];
}

/** The line the completion hook prints on the leecher's stdout, then the file's path. */
const DONE_MARK = "p2p-bench-complete";
/** How long the seeders may take to show in the tracker's scrape. */
const ANNOUNCE_MS = 15_000;

/**
 * Times aria2c leechers fetching `payload` over BitTorrent from aria2c seeders, with
 * opentracker as the tracker. A missing tool gives a note instead of a time, as does
 * a failure (unless the run was aborted, which throws).
 */
export async function bittorrentReference(
  ctx: BenchContext,
  label: string,
  payload: PayloadFile,
  shape: SwarmShape,
): Promise<TorrentTime> {
  const what = `aria2c BitTorrent reference (${shape.seeders.length} seeders, ` +
    `${shape.leechers.length} leechers)`;
  const tools = ["aria2c", "opentracker", "mktorrent"] as const;
  const paths = await Promise.all(tools.map((t) => which(t)));
  const missing = tools.filter((_, i) => !paths[i]);
  if (missing.length) return { note: `${label}: no ${what}: ${missing.join(", ")} not installed` };
  const [aria2c, opentracker, mktorrent] = paths as string[];
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-torrent-" });
  const children: Deno.ChildProcess[] = [];
  try {
    return await run(ctx, { payload, shape, dir, aria2c, opentracker, mktorrent, children });
  } catch (err) {
    ctx.signal.throwIfAborted();
    return { note: `${label}: ${what} failed: ${errorMessage(err)}` };
  } finally {
    // Leechers and seeders first (they tell the tracker they stop), the tracker last.
    for (const child of children.toReversed()) await stopChild(child);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface RunParts {
  payload: PayloadFile;
  shape: SwarmShape;
  dir: string;
  aria2c: string;
  opentracker: string;
  mktorrent: string;
  /** Every process started, for the caller to stop. */
  children: Deno.ChildProcess[];
}

async function run(ctx: BenchContext, p: RunParts): Promise<TorrentTime> {
  const { payload, shape, dir, children } = p;
  const signal = phaseSignal(ctx.signal, payload.bytes * (shape.leechers.length + 1));
  const trackerPort = freePort("127.0.0.1");
  const tracker = `http://127.0.0.1:${trackerPort}`;
  const torrent = `${dir}/payload.torrent`;
  await output(p.mktorrent, [
    "-l",
    "20",
    "-a",
    `${tracker}/announce`,
    "-o",
    torrent,
    payload.path,
  ], signal);
  const infoHash = (await output(p.aria2c, ["--no-conf", "-S", torrent], signal))
    .match(/Info Hash: ([0-9a-f]{40})/)?.[1];
  if (!infoHash) throw new Error(`aria2c -S did not show the info hash of ${torrent}`);

  // opentracker chroots to its folder and drops to `nobody` as root: a folder open to it.
  const trackerDir = `${dir}/tracker`;
  await Deno.mkdir(trackerDir, { mode: 0o755 });
  await Deno.chmod(trackerDir, 0o755);
  await Deno.writeTextFile(`${trackerDir}/whitelist`, `${infoHash}\n`, { mode: 0o644 });
  children.push(spawn(
    p.opentracker,
    [
      ["-i", "127.0.0.1"],
      ["-p", String(trackerPort)],
      ["-P", String(trackerPort)],
      ["-d", trackerDir],
      ["-w", "whitelist"], // inside the chroot
    ].flat(),
    signal,
    false,
    trackerDir,
  ));

  // The completion hook prints a line on the leecher's own stdout.
  const hook = `${dir}/on-complete.sh`;
  await Deno.writeTextFile(hook, `#!/bin/sh\necho "${DONE_MARK} $3"\n`, { mode: 0o755 });
  await Deno.chmod(hook, 0o755);

  const client = (host: string, folder: string, extra: string[], piped = false) =>
    spawn(
      p.aria2c,
      [
        "--no-conf",
        "--quiet",
        `--dir=${folder}`,
        `--log=${folder}.log`,
        "--log-level=warn",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        `--bt-external-ip=${host}`,
        `--interface=${host}`,
        `--bt-lpd-interface=${host}`,
        `--listen-port=${freePort(host)}`,
        "--disable-ipv6",
        "--file-allocation=none",
        "--auto-file-renaming=false",
        "--seed-ratio=0",
        ...extra,
        torrent,
      ],
      signal,
      piped,
    );

  for (const host of shape.seeders) {
    children.push(
      client(host, payload.dir, ["--bt-seed-unverified=true", "--check-integrity=false"]),
    );
  }
  await waitForSeeders(tracker, infoHash, shape.seeders.length, signal);

  const t0 = performance.now();
  const leechers = shape.leechers.map((host, i) => {
    const child = client(host, `${dir}/leech-${i}`, [`--on-bt-download-complete=${hook}`], true);
    children.push(child);
    return child;
  });
  const times = await Promise.all(leechers.map(async (child, i) => {
    await waitForMark(child, `${dir}/leech-${i}`);
    return (performance.now() - t0) / 1000;
  }));
  const seconds = Math.max(...times);
  const cpu = await cpuOf(leechers.map((c) => ({ pid: c.pid })));
  for (let i = 0; i < leechers.length; i++) {
    await assertSameBytes(`${dir}/leech-${i}/${payload.name}`, payload, ctx.signal);
  }
  const cpuSeconds = cpu.every((c) => c !== null) ? cpu.reduce((a: number, c) => a + c!, 0) : null;
  return { seconds, cpuSeconds, leechers: times };
}

/** Starts a tool, its stdout piped when `piped` (a leecher's hook line), nothing else kept. */
function spawn(cmd: string, args: string[], signal: AbortSignal, piped = false, cwd?: string) {
  return new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: piped ? "piped" : "null",
    stderr: "null",
    signal,
  }).spawn();
}

/** Runs a tool to its end and returns its stdout; throws with its stderr if it fails. */
async function output(cmd: string, args: string[], signal: AbortSignal): Promise<string> {
  const res = await new Deno.Command(cmd, { args, stdin: "null", signal }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!res.success) {
    throw new Error(`${cmd} exited with ${res.code}: ${text(res.stderr).trim().slice(-300)}`);
  }
  return text(res.stdout);
}

/**
 * Resolves when the leecher's hook prints its line; throws if it exits first (with the
 * end of its log). Its stdout is then drained, so it never blocks on a full pipe.
 */
async function waitForMark(child: Deno.ChildProcess, folder: string): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      const log = await Deno.readTextFile(`${folder}.log`).catch(() => "");
      throw new Error(`A leecher exited before it completed: ${log.trim().slice(-300)}`);
    }
    seen += value;
    if (seen.includes(DONE_MARK)) break;
    seen = seen.slice(-DONE_MARK.length);
  }
  (async () => {
    while (!(await reader.read()).done) { /* drained */ }
  })().catch(() => {});
}

/**
 * Resolves once the tracker's scrape counts `n` complete peers for the torrent. The
 * seeders are other processes with no event to wait on: asks every 100 ms, 15 s at most.
 */
async function waitForSeeders(
  tracker: string,
  infoHash: string,
  n: number,
  signal: AbortSignal,
): Promise<void> {
  const hash = infoHash.replace(/../g, (b) => `%${b}`);
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(ANNOUNCE_MS)]);
  let last = "no answer";
  while (!deadline.aborted) {
    try {
      const res = await fetch(`${tracker}/scrape?info_hash=${hash}`, { signal: deadline });
      last = await res.text();
      const complete = Number(last.match(/8:completei(\d+)e/)?.[1] ?? 0);
      if (complete >= n) return;
    } catch (err) {
      last = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  signal.throwIfAborted();
  throw new Error(
    `The tracker did not list ${n} seeders within 15 s (last: ${last.slice(0, 200)})`,
  );
}
