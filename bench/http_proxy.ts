/**
 * Reverse proxy throughput: `wrk` asks an application server directly and through
 * a peer's main HTTP server (its reverse proxy), in one run, for the same URLs. The
 * figure is the proxied rate as a share of the direct one (target: at least 70 %).
 *
 * Apps measured, all on loopback:
 * - the peer's built-in web app (`GET /`, 10 KiB from memory, in the peer process);
 * - an app process of its own (`bench/_app_upstream.ts`) behind a second peer
 *   started with `--app`: `GET /static` (10 KiB from memory, the cheapest answer a
 *   Deno server gives) and `GET /work` (a SHA-256 over 256 KiB first, about what a
 *   small dynamic page costs);
 * - the same app process behind nginx (one worker, upstream keep-alive), when nginx
 *   is installed: what a C proxy reaches on this machine, as a reference.
 *
 * wrk shares the two cores with the proxy and the app. Each phase gets an
 * unmeasured warm-up.
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
  startNginx,
  which,
} from "./_bench.ts";
import { type ListeningChild, spawnListening } from "./_tracker.ts";
import { findWrk, runWrk } from "./_wrk.ts";
import { viaToken } from "../peer/gateway.ts";

const THREADS = 2;
const CONNECTIONS = 32;
const WARMUP = 2;
const TARGET_SHARE = 0.7;
/** The peer's startup line: group 1 its main server, group 2 its app server, 3 its id. */
const PEER_LISTENING =
  /listening: .*?, http (http:\/\/[\d.]+:\d+)(?:.*?, app (http:\/\/[\d.]+:\d+) \()?/;
/** The peer's id, on the same line. */
const PEER_ID = /p2p peer ([0-9a-f]{40}) /;
const APP_LISTENING = /listening on (http:\/\/[\d.]+:\d+) \(/;

/** The `http_proxy` benchmark. */
export const httpProxy: Benchmark = {
  name: "http_proxy",
  description: "requests/s to an app through the peer's reverse proxy vs directly (and nginx)",
  run,
};

async function run(ctx: BenchContext): Promise<BenchOutput> {
  if (!await findWrk()) {
    throw new BenchSkip("wrk is not installed; get it with `apt-get install wrk` and run again");
  }
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-proxy-" });
  const children: ListeningChild[] = [];
  try {
    const app = await spawnListening({
      script: "bench/_app_upstream.ts",
      args: ["127.0.0.1"],
      ready: APP_LISTENING,
      urlGroup: 1,
      what: "Bench app",
      signal: ctx.signal,
    });
    children.push(app);
    const builtin = await startPeer(ctx, dir, "127.0.0.2", []);
    children.push(builtin);
    const fronting = await startPeer(ctx, dir, "127.0.0.3", ["--app", app.match[1]]);
    children.push(fronting);
    const appUrl = app.match[1];
    const cases = [
      {
        what: "built-in app GET / (10 KiB)",
        direct: builtin.match[2] + "/",
        proxied: builtin.match[1] + "/",
        // The app port redirects what did not come through the main server: the
        // direct load names the main server's Via entry, as the proxy does.
        script: await viaScript(dir, builtin),
      },
      {
        what: "app process GET /static (10 KiB)",
        direct: appUrl + "/static",
        proxied: fronting.match[1] + "/static",
      },
      {
        what: "app process GET /work (SHA-256 of 256 KiB)",
        direct: appUrl + "/work",
        proxied: fronting.match[1] + "/work",
      },
    ];
    const figures: Figure[] = [];
    const notes: string[] = [
      "the built-in app runs in the peer process; the app process is separate; wrk shares the 2 cores",
    ];
    const directRates = new Map<string, number>();
    for (const c of cases) {
      const direct = await measure(ctx, c.direct, "script" in c ? c.script : undefined);
      const proxied = await measure(ctx, c.proxied);
      directRates.set(c.direct, direct.rate);
      ctx.log(
        `${c.what}: direct ${direct.rate.toFixed(0)}, proxied ${proxied.rate.toFixed(0)} req/s`,
      );
      figures.push(...rows(c.what, direct, proxied, "p2p proxy"));
    }
    const nginx = await which("nginx");
    if (nginx) {
      const ref = await nginxReference(ctx, nginx, dir, appUrl);
      try {
        for (const path of ["/static", "/work"]) {
          const proxied = await measure(ctx, ref.url + path);
          const direct = directRates.get(appUrl + path)!;
          const share = proxied.rate / direct;
          ctx.log(`nginx reference ${path}: ${proxied.rate.toFixed(0)} req/s`);
          figures.push({
            name: `reference: nginx in front of the app process, GET ${path}`,
            value: Math.round(share * 1000) / 10,
            unit: "%",
            note: `${Math.round(proxied.rate)} req/s against ${Math.round(direct)} direct; ` +
              "1 worker, upstream keep-alive",
          });
        }
      } finally {
        await ref.stop();
      }
    } else {
      notes.push("nginx is not installed: no reference proxy (apt-get install nginx)");
    }
    for (const [name, child] of [["built-in app", builtin], ["--app", fronting]] as const) {
      const mem = await processMemory(child.child.pid);
      figures.push({
        name: `peer (${name}) peak RSS`,
        value: mem.peakKiB === null ? null : Math.round(mem.peakKiB / 1024),
        unit: "MiB",
        note: "VmHWM after all load",
      });
    }
    return { figures, notes };
  } finally {
    for (const c of children.reverse()) await c.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function startPeer(
  ctx: BenchContext,
  dir: string,
  host: string,
  extra: string[],
): Promise<ListeningChild> {
  return spawnListening({
    args: [
      "peer",
      "--host",
      host,
      ...["--port", "0", "--http-port", "0", "--pingback-port", "0", "--app-port", "0"],
      ...["--data-dir", `${dir}/peer-${host}`, "--name", "bench", "--replicas", "0"],
      // wrk sends thousands of requests a second from one address: the default
      // per-address rate would answer most of them 429.
      ...["--rate-limit", "0"],
      ...extra,
    ],
    ready: PEER_LISTENING,
    urlGroup: 1,
    what: `Peer on ${host}`,
    signal: ctx.signal,
  });
}

interface Rate {
  rate: number;
  p50: number;
  p99: number;
  bad: number;
}

/** wrk against `url`: a warm-up, then the measured run. */
/** A wrk script that sends the peer's own `Via` entry (see `peer/app_server.ts`). */
async function viaScript(dir: string, peer: ListeningChild): Promise<string> {
  const id = PEER_ID.exec(peer.match.input ?? "")?.[1];
  if (!id) throw new Error(`No peer id in '${peer.match.input}'`);
  const path = `${dir}/via.lua`;
  await Deno.writeTextFile(path, `wrk.headers["Via"] = "${viaToken(id)}"\n`);
  return path;
}

async function measure(ctx: BenchContext, url: string, script?: string): Promise<Rate> {
  const opts = {
    url,
    threads: THREADS,
    connections: CONNECTIONS,
    signal: ctx.signal,
    ...(script ? { script } : {}),
  };
  await runWrk({ ...opts, duration: WARMUP });
  const { report } = await runWrk({ ...opts, duration: ctx.duration });
  return {
    rate: report.requestsPerSec,
    p50: report.percentilesMs["50"] ?? NaN,
    p99: report.percentilesMs["99"] ?? NaN,
    bad: report.non2xx + Object.values(report.socketErrors).reduce((a, b) => a + b, 0),
  };
}

function rows(what: string, direct: Rate, proxied: Rate, proxy: string): Figure[] {
  const load = `wrk -t${THREADS} -c${CONNECTIONS}`;
  const latency = (r: Rate) => `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`;
  const flag = (r: Rate) => r.bad > 0 ? `${r.bad} non-2xx answers or socket errors` : undefined;
  const share = proxied.rate / direct.rate;
  return [
    {
      name: `${what} direct`,
      value: Math.round(direct.rate),
      unit: "req/s",
      note: `${load}; ${latency(direct)}`,
      flag: flag(direct),
    },
    {
      name: `${what} through the ${proxy}`,
      value: Math.round(proxied.rate),
      unit: "req/s",
      note: `${load}; ${latency(proxied)}`,
      flag: flag(proxied),
    },
    {
      name: `${what}: proxied share of direct`,
      value: Math.round(share * 1000) / 10,
      unit: "%",
      note: `target >= ${TARGET_SHARE * 100} %`,
      flag: share < TARGET_SHARE ? `below the target of ${TARGET_SHARE * 100} %` : undefined,
    },
  ];
}

/** nginx with one worker proxying 127.0.0.1:PORT to the app, until `stop()`. */
async function nginxReference(ctx: BenchContext, nginx: string, dir: string, app: string) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const server = await startNginx(
    nginx,
    dir,
    `  upstream app { server ${new URL(app).host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`,
  );
  const url = `http://127.0.0.1:${port}`;
  // Ready once it answers.
  for (let i = 0; i < 50; i++) {
    ctx.signal.throwIfAborted();
    try {
      await (await fetch(url + "/static")).arrayBuffer();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, stop: () => server.stop() };
}
