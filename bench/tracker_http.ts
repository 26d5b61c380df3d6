/**
 * Tracker HTTP throughput: a real tracker child process on 127.0.0.1 with 50
 * registered peers, loaded by `wrk` with `GET /peers` (the listing every peer
 * polls) and `POST /peers` (the heartbeat every peer sends), plus the tracker's
 * peak resident memory over the whole run.
 *
 * Each load phase gets a short warm-up that is not counted, so the JIT and the
 * first registrations of the heartbeat set are out of the figures.
 *
 * @module
 */
import type { RegisterPeerRequest } from "../proto/tracker.ts";
import { TrackerClient } from "../peer/tracker_client.ts";
import {
  type BenchContext,
  type Benchmark,
  type BenchOutput,
  BenchSkip,
  type Figure,
  kibToMib,
} from "./_bench.ts";
import { spawnTracker } from "./_tracker.ts";
import { findWrk, luaString, runWrk, type WrkReport } from "./_wrk.ts";

/** Peers registered before any load. */
const REGISTERED = 50;
/** Distinct (host, port) pairs the heartbeat load rotates through. */
const HEARTBEAT_PAIRS = 100;
const THREADS = 2;
const CONNECTIONS = 32;
/** Seconds of unmeasured load before each measured phase. */
const WARMUP = 2;

/** The `tracker_http` benchmark. */
export const trackerHttp: Benchmark = {
  name: "tracker_http",
  description:
    `tracker GET /peers (${REGISTERED} peers) and POST /peers heartbeats under wrk, peak RSS`,
  run,
};

async function run(ctx: BenchContext): Promise<BenchOutput> {
  if (!await findWrk()) {
    throw new BenchSkip(
      "wrk is not installed; get it with `apt-get install wrk` (Debian/Ubuntu) and run again",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-tracker-" });
  try {
    return await measure(ctx, dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function measure(ctx: BenchContext, dir: string): Promise<BenchOutput> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const load = `wrk -t${THREADS} -c${CONNECTIONS} -d${ctx.duration}s`;
  // A peer TTL far longer than the run: nothing expires while it is measured.
  await using tracker = await spawnTracker({
    dir,
    peerTtl: 600,
    signal: ctx.signal,
  });
  ctx.log(`tracker pid ${tracker.pid} listening on ${tracker.url}`);
  const client = new TrackerClient(tracker.url, { timeoutMs: 10_000 });

  for (let i = 0; i < REGISTERED; i++) {
    const r = await client.register(registration("127.0.1.1", 40_000 + i, `peer-${i}`));
    if (!r.created) throw new Error(`Registration ${i} was not new: ${JSON.stringify(r)}`);
  }
  const listing = await client.peers();
  if (listing.length !== REGISTERED) {
    throw new Error(`GET /peers lists ${listing.length} peers, not ${REGISTERED}`);
  }
  const listBytes = new TextEncoder().encode(JSON.stringify({ peers: listing })).length;
  const idle = await tracker.memory();
  ctx.log(`registered ${REGISTERED} peers; GET /peers answers ${listBytes} bytes of JSON`);

  const wrk = (url: string, duration: number, script?: string) =>
    runWrk({
      url,
      threads: THREADS,
      connections: CONNECTIONS,
      duration,
      script,
      signal: ctx.signal,
    });
  let requests = REGISTERED + 1;

  // GET /peers: the listing of 50 peers.
  ctx.log(`GET /peers: ${WARMUP}s warm-up, then ${load}`);
  requests += (await wrk(`${tracker.url}/peers`, WARMUP)).report.requests;
  const get = (await wrk(`${tracker.url}/peers`, ctx.duration)).report;
  requests += get.requests;
  figures.push(...loadFigures(`GET /peers (${REGISTERED} peers)`, get, load));

  // POST /peers: heartbeats of a fixed set of (host, port) pairs, in rotation.
  const script = `${dir}/heartbeat.lua`;
  await Deno.writeTextFile(script, heartbeatScript(HEARTBEAT_PAIRS, THREADS));
  ctx.log(`POST /peers: ${WARMUP}s warm-up (registers the ${HEARTBEAT_PAIRS} pairs), then ${load}`);
  requests += (await wrk(`${tracker.url}/peers`, WARMUP, script)).report.requests;
  const post = (await wrk(`${tracker.url}/peers`, ctx.duration, script)).report;
  requests += post.requests;
  figures.push(...loadFigures(`POST /peers heartbeat (${HEARTBEAT_PAIRS} pairs)`, post, load));

  const after = await client.peers();
  requests++;
  if (after.length !== REGISTERED + HEARTBEAT_PAIRS) {
    notes.push(
      `GET /peers lists ${after.length} peers after the load, not ${REGISTERED + HEARTBEAT_PAIRS}`,
    );
  }

  const mem = await tracker.memory();
  figures.push(
    {
      name: "tracker RSS before load",
      value: kibToMib(idle.rssKiB),
      unit: "MiB",
      note: "VmRSS",
    },
    {
      name: "tracker peak RSS",
      value: kibToMib(mem.peakKiB),
      unit: "MiB",
      note: "VmHWM after all load",
    },
  );

  const t0 = performance.now();
  const status = await tracker.stop();
  const stopSeconds = (performance.now() - t0) / 1000;
  figures.push({
    name: "tracker stop (SIGTERM)",
    value: stopSeconds,
    unit: "s",
    note: `exit status ${status.code}`,
    ...(status.code !== 0
      ? { flag: `exit status ${status.code}${status.signal ? ` (${status.signal})` : ""}` }
      : {}),
  });
  if (status.code !== 0) notes.push(`tracker output:\n${tracker.output()}`);

  const logSize = await fileSize(tracker.log);
  const dbSize = (await fileSize(tracker.db)) + (await fileSize(`${tracker.db}-wal`));
  figures.push(
    {
      name: "activity log written",
      value: logSize / requests,
      unit: "B/req",
      note: `${(logSize / 2 ** 20).toFixed(1)} MiB for ${requests} requests`,
    },
    {
      name: "KV database after run",
      value: dbSize / 2 ** 20,
      unit: "MiB",
      note: "tracker.kv + wal",
    },
  );
  return { figures, notes };
}

/** Figures of one wrk phase: throughput, p50, p99, and the error count that must be 0. */
function loadFigures(label: string, r: WrkReport, load: string): Figure[] {
  const sock = r.socketErrors;
  const sockTotal = sock.connect + sock.read + sock.write + sock.timeout;
  return [
    {
      name: `${label} req/s`,
      value: r.requestsPerSec,
      unit: "req/s",
      note: `${load}, ${r.requests} requests`,
      ...(sockTotal > 0
        ? {
          flag: `socket errors: connect ${sock.connect}, read ${sock.read}, ` +
            `write ${sock.write}, timeout ${sock.timeout}`,
        }
        : {}),
    },
    { name: `${label} p50`, value: r.percentilesMs["50"], unit: "ms" },
    { name: `${label} p99`, value: r.percentilesMs["99"], unit: "ms" },
    {
      name: `${label} non-2xx`,
      value: r.non2xx,
      unit: "count",
      ...(r.non2xx > 0 ? { flag: `${r.non2xx} answers were not 2xx/3xx` } : {}),
    },
  ];
}

/** A registration or heartbeat, as a peer sends it. */
function registration(host: string, port: number, name: string): RegisterPeerRequest {
  return {
    host,
    port,
    name,
    ports: { chunk: port, pingback: 5800, http: 5805, app: 5810 },
    version: "bench",
  };
}

/**
 * A wrk Lua script that POSTs heartbeats of `pairs` fixed (host, port) pairs in
 * rotation; each wrk thread starts at its own offset, so threads do not heartbeat
 * the same pair at the same moment.
 */
export function heartbeatScript(pairs: number, threads: number): string {
  const bodies = Array.from(
    { length: pairs },
    (_, i) =>
      "  " + luaString(JSON.stringify(registration("127.0.0.2", 42_000 + i, `hb-${i}`))) + ",",
  );
  return `-- POST /peers heartbeats; written by bench/tracker_http.ts.
local bodies = {
${bodies.join("\n")}
}
local n = #bodies
local threads = ${threads}
local started = 0

function setup(thread)
  thread:set("offset", started)
  started = started + 1
end

local i = 0
function init(args)
  i = math.floor((offset or 0) * n / threads) % n
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  local body = bodies[i + 1]
  i = (i + 1) % n
  return wrk.format(nil, nil, nil, body)
end
`;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}
