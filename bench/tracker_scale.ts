/**
 * The cost of one peer heartbeat as the network grows: one tracker child process
 * with 100, then 1,000, then 10,000 registered peers, each measured peer
 * heartbeating as a real peer does (`peer/tracker_sync.ts`): a signed `POST /peers`,
 * then `GET /peers?numwant=50&since=VERSION` with the version of its last listing.
 * Before each measured phase every measured peer fetched its first listing (a sample),
 * as a peer does at its first beat; the phase is the steady state that follows.
 *
 * Reported per size: bytes on the wire per heartbeat (both requests and both answers,
 * heads included, counted on the client's sockets) and the tracker's CPU-seconds per
 * heartbeat (`/proc/PID/stat` before and after the phase, so background work such
 * as the activity log counts too); then the ratios of 1,000 and 10,000 to 100
 * (the issue's target: at most 1.5×), and the tracker's CPU use with 10,000 peers
 * heartbeating every 20 s (target: under 1 core). Every phase sends its heartbeats
 * at that rate, 500 a second, as peers would (not as fast as the tracker answers,
 * which would batch more of them into each KV commit than real peers do), so at
 * 10,000 peers the CPU use is measured, not computed.
 *
 * Registrations and heartbeats are signed before the phase that sends them (each
 * signature must be fresh: the tracker takes `signedAt` within 60 s of its clock).
 * The client speaks HTTP/1.1 on raw keep-alive sockets, with the headers a peer's
 * `fetch()` sends, so it counts every byte and costs the shared CPU little.
 *
 * @module
 */
import { gunzipSync } from "node:zlib";
import { signedRegistration, type TestIdentity, testIdentity } from "../tracker/_test_setup.ts";
import {
  type BenchContext,
  type Benchmark,
  type BenchOutput,
  type Figure,
  processCpuSeconds,
} from "./_bench.ts";
import { spawnTracker } from "./_tracker.ts";
import type { RegisterPeerRequest } from "../proto/tracker.ts";

/** Network sizes measured, in order (the tracker keeps its peers from one to the next). */
const SIZES = [100, 1_000, 10_000];
/** Heartbeats measured at each size. */
const HEARTBEATS = 3_000;
/** Heartbeat period of a peer (its default). */
const PERIOD_S = 20;
/** Heartbeats a second the tracker gets, at every size: 10,000 peers every 20 s. */
const RATE = 10_000 / PERIOD_S;
/** What a peer asks for (`NUMWANT` of `peer/tracker_sync.ts`). */
const NUMWANT = 50;
/** Client connections (the tracker takes 64 per address). */
const CONNECTIONS = 16;

/** The `tracker_scale` benchmark. */
export const trackerScale: Benchmark = {
  name: "tracker_scale",
  description: `cost of one peer heartbeat at ${
    SIZES.map((n) => n.toLocaleString("en-US")).join(", ")
  } peers on one tracker`,
  run,
};

/** One simulated peer: its identity, port and the listing version it last saw. */
interface SimPeer {
  id: TestIdentity;
  port: number;
  version?: number;
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-scale-" });
  try {
    return await measure(ctx, dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function measure(ctx: BenchContext, dir: string): Promise<BenchOutput> {
  await using tracker = await spawnTracker({ dir, peerTtl: 600, signal: ctx.signal });
  ctx.log(`tracker pid ${tracker.pid} listening on ${tracker.url}`);
  const { hostname, port } = new URL(tracker.url);
  const conns = await Promise.all(
    Array.from({ length: CONNECTIONS }, () => Http1.connect(hostname, Number(port))),
  );
  try {
    const peers: SimPeer[] = [];
    const rows: Row[] = [];
    for (const size of SIZES) {
      ctx.signal.throwIfAborted();
      const t0 = performance.now();
      const fresh = await Promise.all(
        Array.from({ length: size - peers.length }, async (_, i) => ({
          id: await testIdentity(),
          port: 20_000 + peers.length + i,
        })),
      );
      const signed = await Promise.all(fresh.map((p) => sign(p, Date.now())));
      ctx.log(`${size} peers: signed ${fresh.length} registrations in ${since(t0)}`);
      await spread(conns, signed, (c, body) => c.request("POST", "/peers", body));
      peers.push(...fresh);
      // The measured peers: distinct ones where the network has enough.
      const chosen = Array.from({ length: HEARTBEATS }, (_, i) => peers[i % peers.length]);
      const first = [...new Set(chosen)];
      await spread(conns, first, async (c, p) => {
        p.version = listingVersion(await c.request("GET", `/peers?numwant=${NUMWANT}`));
      });
      // Each peer's k-th heartbeat of the phase, signed in order.
      const base = Date.now();
      const rounds = new Map<SimPeer, number>();
      const beats = await Promise.all(chosen.map((p) => {
        const k = rounds.get(p) ?? 0;
        rounds.set(p, k + 1);
        return sign(p, base + 1 + k).then((body) => ({ p, body }));
      }));
      ctx.log(`${size} peers: registered, first listings fetched; ${HEARTBEATS} heartbeats`);
      const cpu0 = await processCpuSeconds(tracker.pid);
      const sent0 = conns.reduce((n, c) => n + c.sent, 0);
      const read0 = conns.reduce((n, c) => n + c.read, 0);
      const t1 = performance.now();
      await paced(conns, beats, async (c, { p, body }) => {
        await c.request("POST", "/peers", body);
        const q = `/peers?numwant=${NUMWANT}${p.version ? `&since=${p.version}` : ""}`;
        p.version = listingVersion(await c.request("GET", q));
      });
      const seconds = (performance.now() - t1) / 1000;
      const cpu1 = await processCpuSeconds(tracker.pid);
      const req = (conns.reduce((n, c) => n + c.sent, 0) - sent0) / HEARTBEATS;
      const ans = (conns.reduce((n, c) => n + c.read, 0) - read0) / HEARTBEATS;
      if (cpu0 === null || cpu1 === null) throw new Error("Cannot read the tracker's CPU time");
      const cpu = cpu1 - cpu0;
      rows.push({
        size,
        bytes: req + ans,
        cpu: cpu / HEARTBEATS,
        req,
        ans,
        cores: cpu / seconds,
        rate: HEARTBEATS / seconds,
      });
      ctx.log(
        `${size} peers: ${HEARTBEATS} heartbeats in ${seconds.toFixed(1)} s, tracker CPU ${
          cpu.toFixed(2)
        } s`,
      );
    }
    return { figures: figuresOf(rows) };
  } finally {
    for (const c of conns) c.close();
  }
}

function since(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

/** A peer's registration or heartbeat body, signed at `signedAt`. */
async function sign(p: { id: TestIdentity; port: number }, signedAt: number): Promise<string> {
  const fields: Omit<RegisterPeerRequest, "peerId" | "publicKey" | "signedAt" | "signature"> = {
    host: "127.0.2.1",
    port: p.port,
    name: `sim-${p.port}`,
    ports: { chunk: p.port, pingback: 5800, http: 5805, app: 5810 },
    version: "bench",
  };
  return JSON.stringify(await signedRegistration(p.id, fields, signedAt));
}

/** Runs `fn` over `items` with each connection taking the next item when free. */
async function spread<T>(
  conns: Http1[],
  items: T[],
  fn: (c: Http1, item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(conns.map(async (c) => {
    while (next < items.length) await fn(c, items[next++]);
  }));
}

/**
 * Sends `beats` at `RATE` a second, in order, each on the next free connection; a
 * peer's heartbeat waits for its previous one (its `signedAt` and `since` follow).
 */
async function paced<T extends { p: SimPeer }>(
  conns: Http1[],
  beats: T[],
  fn: (c: Http1, beat: T) => Promise<void>,
): Promise<void> {
  const t0 = performance.now();
  const chains = new Map<SimPeer, Promise<void>>();
  let next = 0;
  await Promise.all(conns.map(async (c) => {
    while (next < beats.length) {
      const i = next++;
      const wait = t0 + i * 1000 / RATE - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const beat = beats[i];
      const before = chains.get(beat.p);
      const done = Promise.withResolvers<void>();
      chains.set(beat.p, done.promise);
      try {
        await before;
        await fn(c, beat);
      } finally {
        done.resolve();
      }
    }
  }));
}

/** The `version` of a `GET /peers` answer. */
function listingVersion(body: string): number | undefined {
  const v = (JSON.parse(body) as { version?: unknown }).version;
  return typeof v === "number" ? v : undefined;
}

/** What one size measured: per heartbeat, and the tracker's CPU use and the rate kept. */
export interface Row {
  size: number;
  /** Bytes on the wire per heartbeat, sent and received, and their sum. */
  req: number;
  ans: number;
  bytes: number;
  /** Tracker CPU-seconds per heartbeat. */
  cpu: number;
  /** Tracker CPU-seconds per second of the phase. */
  cores: number;
  /** Heartbeats a second the phase kept. */
  rate: number;
}

/** The figures of the measured sizes (the first is the reference). */
export function figuresOf(rows: Row[]): Figure[] {
  const figures: Figure[] = [];
  const label = (n: number) => n.toLocaleString("en-US");
  for (const r of rows) {
    figures.push(
      {
        name: `heartbeat bytes at ${label(r.size)} peers`,
        value: r.bytes,
        unit: "B",
        note: `requests ${Math.round(r.req)} B + answers ${Math.round(r.ans)} B, heads included`,
      },
      {
        name: `tracker CPU per heartbeat at ${label(r.size)} peers`,
        value: r.cpu * 1000,
        unit: "ms",
        note: `POST /peers + GET /peers?numwant=${NUMWANT}&since=…, ${HEARTBEATS} heartbeats`,
      },
    );
  }
  const [base] = rows;
  for (const r of rows.slice(1)) {
    figures.push(
      {
        name: `heartbeat bytes at ${label(r.size)} vs ${label(base.size)} peers`,
        value: r.bytes / base.bytes,
        unit: "x",
        target: { max: 1.5 },
        reference: `bytes per heartbeat at ${label(base.size)} peers`,
      },
      {
        name: `tracker CPU per heartbeat at ${label(r.size)} vs ${label(base.size)} peers`,
        value: r.cpu / base.cpu,
        unit: "x",
        target: { max: 1.5 },
        reference: `tracker CPU per heartbeat at ${label(base.size)} peers`,
      },
    );
  }
  const last = rows.at(-1)!;
  const kept = last.rate >= RATE * 0.95;
  figures.push({
    name: `tracker CPU with ${label(last.size)} peers heartbeating every ${PERIOD_S} s`,
    value: last.cores,
    unit: "cores",
    note: `CPU-seconds per second at ${Math.round(last.rate)} heartbeats/s`,
    target: { max: 1 },
    ...(kept ? {} : {
      flag: `the load kept ${
        Math.round(last.rate)
      } heartbeats/s, not ${RATE}: the tracker fell behind`,
    }),
  });
  return figures;
}

/**
 * A minimal HTTP/1.1 client on one keep-alive connection: one request at a time,
 * answers with `Content-Length` (what the tracker sends). Counts bytes both ways.
 */
export class Http1 {
  readonly #conn: Deno.TcpConn;
  readonly #host: string;
  #buf: Uint8Array = new Uint8Array(0);
  sent = 0;
  read = 0;

  private constructor(conn: Deno.TcpConn, host: string) {
    this.#conn = conn;
    this.#host = host;
  }

  static async connect(hostname: string, port: number): Promise<Http1> {
    return new Http1(await Deno.connect({ hostname, port }), `${hostname}:${port}`);
  }

  /** Sends one request and resolves with the answer's body; throws on a status ≥ 400. */
  async request(method: string, path: string, body?: string): Promise<string> {
    const payload = body === undefined ? undefined : encoder.encode(body);
    const head = `${method} ${path} HTTP/1.1\r\nHost: ${this.#host}\r\n${FETCH_HEADERS}` +
      (payload ? `Content-Type: application/json\r\nContent-Length: ${payload.length}\r\n` : "") +
      "\r\n";
    const bytes = encoder.encode(head);
    const out = payload ? concat(bytes, payload) : bytes;
    for (let off = 0; off < out.length;) off += await this.#conn.write(out.subarray(off));
    this.sent += out.length;
    const headEnd = await this.#until((b) => indexOfCrlf2(b));
    const headText = decoder.decode(this.#buf.subarray(0, headEnd));
    const status = Number(headText.slice(9, 12));
    const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headText)?.[1] ?? NaN);
    if (!Number.isFinite(len)) throw new Error(`Answer without Content-Length: ${headText}`);
    await this.#until((b) => b.length >= headEnd + 4 + len ? headEnd + 4 + len : -1);
    const total = headEnd + 4 + len;
    // Counted as sent (gzipped, for the samples kept ready), read as text.
    const raw = this.#buf.subarray(headEnd + 4, total);
    const text = decoder.decode(
      /\r\ncontent-encoding:\s*gzip/i.test(headText) ? gunzipSync(raw) : raw,
    );
    this.#buf = this.#buf.slice(total);
    this.read += total;
    if (status >= 400) throw new Error(`${method} ${path} answered ${status}: ${text}`);
    return text;
  }

  /** Reads until `found` returns an index ≥ 0 for the buffer; returns it. */
  async #until(found: (b: Uint8Array) => number): Promise<number> {
    for (;;) {
      const at = found(this.#buf);
      if (at >= 0) return at;
      const chunk = new Uint8Array(64 * 1024);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("The tracker closed the connection");
      this.#buf = concat(this.#buf, chunk.subarray(0, n));
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** The headers Deno's fetch() (a peer's tracker client) adds to every request. */
const FETCH_HEADERS = "Accept: */*\r\nAccept-Encoding: gzip,br\r\nAccept-Language: *\r\n" +
  `User-Agent: Deno/${Deno.version.deno}\r\n`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Index of the first `\r\n\r\n`, or -1. */
function indexOfCrlf2(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
