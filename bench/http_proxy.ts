/**
 * Reverse proxy throughput: a real peer child process on 127.0.0.2 whose main HTTP
 * server proxies to its built-in web app; `wrk` asks the app directly (its own
 * port) and through the peer's main server, in one run, for the same files. The
 * figure is the proxied rate as a share of the direct one (target: at least 70 %).
 *
 * Both legs run in the one peer process, as they do for a user; wrk shares the two
 * cores with it. Each phase gets an unmeasured warm-up.
 *
 * @module
 */
import {
  type BenchContext,
  type Benchmark,
  type BenchOutput,
  BenchSkip,
  type Figure,
  processMemory,
} from "./_bench.ts";
import { spawnListening } from "./_tracker.ts";
import { findWrk, runWrk } from "./_wrk.ts";

const THREADS = 2;
const CONNECTIONS = 32;
const WARMUP = 2;
const TARGET_SHARE = 0.7;
/** The peer's startup line: group 1 its main server, group 2 its app server. */
const LISTENING = /listening: .*, http (http:\/\/[\d.]+:\d+), .*app (http:\/\/[\d.]+:\d+) \(/;

/** The `http_proxy` benchmark. */
export const httpProxy: Benchmark = {
  name: "http_proxy",
  description: "requests/s to the built-in app through the peer's reverse proxy vs directly",
  run,
};

async function run(ctx: BenchContext): Promise<BenchOutput> {
  if (!await findWrk()) {
    throw new BenchSkip("wrk is not installed; get it with `apt-get install wrk` and run again");
  }
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-proxy-" });
  try {
    const peer = await spawnListening({
      root: ctx.root,
      args: [
        "peer",
        "--host",
        "127.0.0.2",
        "--port",
        "0",
        "--http-port",
        "0",
        "--pingback-port",
        "0",
        "--app-port",
        "0",
        "--data-dir",
        `${dir}/peer`,
        "--name",
        "bench",
        "--replicas",
        "0",
      ],
      ready: LISTENING,
      urlGroup: 1,
      what: "Peer",
      signal: ctx.signal,
    });
    try {
      return await measure(ctx, peer.match[1], peer.match[2], peer.child.pid);
    } finally {
      await peer.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function measure(
  ctx: BenchContext,
  main: string,
  app: string,
  pid: number,
): Promise<BenchOutput> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const load = `wrk -t${THREADS} -c${CONNECTIONS} -d${ctx.duration}s`;
  for (const [path, label] of [["/", "index.html, 10 KiB"], ["/favicon.svg", "favicon.svg"]]) {
    const rates: number[] = [];
    for (const [base, how] of [[app, "direct"], [main, "through the proxy"]]) {
      const url = base + path;
      await runWrk({
        url,
        threads: THREADS,
        connections: CONNECTIONS,
        duration: WARMUP,
        signal: ctx.signal,
      });
      const { report } = await runWrk({
        url,
        threads: THREADS,
        connections: CONNECTIONS,
        duration: ctx.duration,
        signal: ctx.signal,
      });
      ctx.log(`${label} ${how}: ${report.requestsPerSec.toFixed(0)} req/s`);
      rates.push(report.requestsPerSec);
      const bad = report.non2xx + Object.values(report.socketErrors).reduce((a, b) => a + b, 0);
      figures.push({
        name: `GET ${path} (${label}) ${how}`,
        value: Math.round(report.requestsPerSec),
        unit: "req/s",
        note: `${load}; p50 ${report.percentilesMs["50"] ?? "?"} ms, p99 ${
          report.percentilesMs["99"] ?? "?"
        } ms`,
        flag: bad > 0 ? `${bad} non-2xx answers or socket errors` : undefined,
      });
    }
    const share = rates[1] / rates[0];
    figures.push({
      name: `GET ${path}: proxied share of direct`,
      value: Math.round(share * 1000) / 10,
      unit: "%",
      note: `target >= ${TARGET_SHARE * 100} %`,
      flag: share < TARGET_SHARE ? `below the target of ${TARGET_SHARE * 100} %` : undefined,
    });
  }
  const mem = await processMemory(pid);
  figures.push({
    name: "peer peak RSS",
    value: mem.peakKiB === null ? null : Math.round(mem.peakKiB / 1024),
    unit: "MiB",
    note: "VmHWM after all load",
  });
  notes.push("the app and the proxy run in the same peer process; wrk shares the 2 cores");
  return { figures, notes };
}
