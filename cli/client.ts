/**
 * The client commands (`put`, `get`, `where`, `peers`, `status`, `log`, `discover`): they talk to
 * the running local peer through its control API under `/_p2p/`, as a CLI talks to
 * its daemon. When no peer answers they say so in one line.
 *
 * @module
 */
import type { ActivityRecord } from "../proto/activity.ts";
import type { DiscoveryReport } from "../proto/discovery.ts";
import { jsonLines } from "../proto/lines.ts";
import { fromHex } from "../proto/ids.ts";
import { hasBit } from "../proto/bitfield.ts";
import * as http from "node:http";

/** A failure worth one line, not a stack trace (exit status 1). */
export class ClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClientError";
  }
}

/** The node URL: `--node`, else `$P2P_NODE`, else the local default. */
export function nodeUrl(flag?: string): string {
  return (flag ?? Deno.env.get("P2P_NODE") ?? "http://127.0.0.1:5805").replace(/\/$/, "");
}

async function call(node: string, path: string, init?: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(node + path, init);
  } catch (err) {
    if (err instanceof TypeError) {
      throw new ClientError(
        `No peer is running at ${node} (start one with 'p2p peer', or point --node at one)`,
      );
    }
    throw err;
  }
  if (!res.ok) {
    const text = await res.text();
    let message = text.slice(0, 300);
    try {
      message = JSON.parse(text).error.message ?? message;
    } catch {
      // Not JSON: keep the text.
    }
    throw new ClientError(`${message} (HTTP ${res.status})`);
  }
  return res;
}

/**
 * POSTs a streamed body. Uses node:http rather than fetch: Deno's fetch streaming a
 * request body made the receiving Deno.serve spin (256 MiB: 26 s against 0.8 s).
 */
function upload(url: string, body: ReadableStream<Uint8Array>, size?: number): Promise<Response> {
  const { promise, resolve, reject } = Promise.withResolvers<Response>();
  const req = http.request(url, {
    method: "POST",
    headers: {
      "content-type": "application/octet-stream",
      ...(size === undefined ? {} : { "content-length": String(size) }),
    },
  }, (res) => {
    const stream = new ReadableStream<Uint8Array>({
      start(ctrl) {
        res.on("data", (d: Uint8Array) => ctrl.enqueue(new Uint8Array(d)));
        res.on("end", () => ctrl.close());
        res.on("error", (e: Error) => ctrl.error(e));
      },
    });
    const answer = new Response(stream, { status: res.statusCode ?? 500 });
    if (answer.ok) return resolve(answer);
    answer.text().then((text) => {
      let message = text.slice(0, 300);
      try {
        message = JSON.parse(text).error.message ?? message;
      } catch {
        // Not JSON: keep the text.
      }
      reject(new ClientError(`${message} (HTTP ${answer.status})`));
    }, reject);
  });
  req.on("error", (e: Error & { code?: string }) => {
    reject(
      e.code === "ECONNREFUSED"
        ? new ClientError(
          `No peer is running at ${
            new URL(url).origin
          } (start one with 'p2p peer', or point --node at one)`,
        )
        : e,
    );
  });
  (async () => {
    try {
      for await (const part of body) {
        if (!req.write(part)) await new Promise((r) => req.once("drain", r));
      }
      req.end();
    } catch (e) {
      req.destroy(e as Error);
    }
  })();
  return promise;
}

async function json<T>(node: string, path: string): Promise<T> {
  return await (await call(node, path)).json() as T;
}

/** Reads an NDJSON answer, calling `onEvent` per line; throws on an `error` event. */
async function events(
  res: Response,
  onEvent: (e: Record<string, unknown>) => void,
): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  for await (const e of jsonLines<Record<string, unknown>>(res.body!)) {
    last = e;
    if (last.type === "error") throw new ClientError(String(last.message));
    onEvent(last);
  }
  if (last.type !== "done") throw new ClientError("The peer ended the answer early");
  return last;
}

const err = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s));

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** `p2p put FILE|-`: stores, announces and replicates; prints the payloadId on stdout. */
export async function put(
  node: string,
  file: string,
  opts: { name?: string; json?: boolean },
): Promise<void> {
  let body: ReadableStream<Uint8Array>;
  let size: number | undefined;
  let name = opts.name;
  if (file === "-") {
    body = Deno.stdin.readable;
  } else {
    let f: Deno.FsFile;
    try {
      f = await Deno.open(file);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new ClientError(`File '${file}' does not exist`);
      throw new ClientError(`Cannot read '${file}': ${(e as Error).message}`);
    }
    const info = await f.stat();
    size = info.size;
    if (info.isDirectory) {
      f.close();
      throw new ClientError(`'${file}' is a directory; put takes a file or -`);
    }
    body = f.readable;
    name ??= file.split(/[\\/]/).pop();
  }
  const q = name ? `?name=${encodeURIComponent(name)}` : "";
  const res = await upload(`${node}/_p2p/payloads${q}`, body, size);
  const tty = Deno.stderr.isTerminal();
  const done = await events(res, (e) => {
    if (e.type === "stored" && tty) err(`stored ${mib(Number(e.size))} in ${e.chunks} chunks\n`);
    if (e.type === "replicated" && tty) err(`\rreplicating ${e.done}/${e.chunks}`);
  });
  if (tty) err("\n");
  if (opts.json) console.log(JSON.stringify(done));
  else console.log(done.payloadId);
  const under = Number(done.underReplicated ?? 0);
  if (under > 0) {
    err(`warning: ${under} chunks have fewer than the asked copies on other peers\n`);
  }
}

/** `p2p get ID [-o FILE]`: downloads through the peer, then writes verified bytes. */
export async function get(
  node: string,
  payloadId: string,
  opts: { output?: string; json?: boolean },
): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(payloadId)) {
    throw new ClientError(`Payload id '${payloadId}' must be 64 lowercase hex digits`);
  }
  if (opts.json && !opts.output) {
    throw new ClientError("--json needs -o FILE (stdout carries the bytes)");
  }
  const tty = Deno.stderr.isTerminal();
  const started = performance.now();
  const res = await call(node, `/_p2p/downloads/${payloadId}`, { method: "POST" });
  const done = await events(res, (e) => {
    if (!tty || e.type !== "progress") return;
    const size = Number(e.size);
    const bytes = Number(e.bytes);
    const rate = Number(e.fetchedBytes) / Math.max(0.001, Number(e.seconds));
    const eta = rate > 0 ? (size - bytes) / rate : Infinity;
    const width = 30;
    const filled = Math.round((bytes / Math.max(1, size)) * width);
    err(
      `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${mib(bytes)}/${mib(size)} ` +
        `${mib(rate)}/s ETA ${Number.isFinite(eta) ? eta.toFixed(0) + "s" : "?"} ` +
        `sources ${e.sources}   `,
    );
  });
  if (tty) err("\n");
  const content = await call(node, `/_p2p/payloads/${payloadId}/content`);
  if (opts.output) {
    const tmp = `${opts.output}.p2p-partial`;
    try {
      await Deno.writeFile(tmp, content.body!);
      await Deno.rename(tmp, opts.output);
    } catch (e) {
      await Deno.remove(tmp).catch(() => undefined);
      throw new ClientError(`Cannot write '${opts.output}': ${(e as Error).message}`);
    }
  } else {
    await content.body!.pipeTo(Deno.stdout.writable, { preventClose: true });
  }
  if (opts.json) {
    console.log(JSON.stringify({
      payloadId,
      bytes: done.size,
      fetchedBytes: done.bytes,
      seconds: Math.round(performance.now() - started) / 1000,
      downloadSeconds: done.seconds,
      resumedChunks: done.resumed,
      chunksBySource: done.chunksBySource,
      dropped: done.dropped,
    }));
  }
}

/** `p2p where ID`: a compact map of who holds which chunk positions. */
export async function where(
  node: string,
  payloadId: string,
  opts: { json?: boolean },
): Promise<void> {
  const w = await json<{ chunks: number; rows: Record<string, string | number>[] }>(
    node,
    `/_p2p/payloads/${payloadId}/where`,
  );
  if (opts.json) return console.log(JSON.stringify(w));
  const width = Math.min(64, w.chunks);
  console.log(
    `payload ${payloadId}: ${w.chunks} chunks (each mark = ${
      Math.ceil(w.chunks / width)
    } chunk(s))`,
  );
  for (const r of w.rows) {
    const bits = fromHex(String(r.have));
    let map = "";
    for (let c = 0; c < width; c++) {
      const from = Math.floor((c * w.chunks) / width);
      const to = Math.floor(((c + 1) * w.chunks) / width);
      let held = 0;
      for (let i = from; i < to; i++) if (hasBit(bits, i)) held++;
      map += held === to - from ? "█" : held > 0 ? "▒" : "·";
    }
    const who = `${String(r.peerId).slice(0, 12)} ${String(r.name ?? "").slice(0, 12)}`.padEnd(26);
    console.log(`${who} ${map} ${r.count}/${w.chunks} (${r.via}, ${r.address})`);
  }
}

/** `p2p peers`: the peers this peer knows. */
export async function peers(node: string, opts: { json?: boolean }): Promise<void> {
  const { peers } = await json<{ peers: Record<string, unknown>[] }>(node, "/_p2p/peers");
  if (opts.json) return console.log(JSON.stringify(peers));
  if (peers.length === 0) return console.log("no known peers");
  const rows = peers.map((p) => [
    String(p.peerId).slice(0, 12),
    String(p.name ?? ""),
    `${p.host}:${(p.ports as Record<string, number>).chunk}`,
    (p.sources as string[]).join(","),
    ago(Number(p.lastSeen)),
    p.rttMs === undefined ? "-" : `${p.rttMs} ms`,
    p.stale ? `stale (${p.failures} failed)` : "live",
  ]);
  table(["PEER", "NAME", "ADDRESS", "FOUND BY", "LAST SEEN", "RTT", "STATE"], rows);
}

/** `p2p discover`: the local peer scans a LAN range and reports the peers it identified. */
export async function discover(
  node: string,
  range: string | undefined,
  opts: { json?: boolean },
): Promise<void> {
  const res = await call(node, "/_p2p/discover", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(range === undefined ? {} : { range }),
  });
  const r = await res.json() as DiscoveryReport;
  if (opts.json) return console.log(JSON.stringify(r));
  if (r.devicesError) console.error(`p2p discover: ${r.devicesError}`);
  if (r.found.length > 0) {
    table(
      ["PEER", "NAME", "ADDRESS", "PORTS", "RTT", "CHANGE"],
      r.found.map((p) => [
        p.peerId.slice(0, 12),
        p.name,
        p.host,
        Object.entries(p.ports).map(([k, v]) => `${k} ${v}`).join(", "),
        `${p.rttMs} ms`,
        p.change,
      ]),
    );
  }
  for (const x of r.rejected) console.log(`not a peer: ${x.address}: ${x.reason}`);
  for (const x of r.stale) {
    console.log(`stale: ${x.peerId.slice(0, 12)} at ${x.address}: ${x.reason}`);
  }
  console.log(
    `${r.found.length} peer${r.found.length === 1 ? "" : "s"} identified among ${r.devices} ` +
      `device${r.devices === 1 ? "" : "s"} of ${r.ranges.join(", ")} (${r.probed} probed) in ${
        r.seconds.toFixed(2)
      } s`,
  );
}

/** `p2p status`: this peer. */
export async function status(node: string, opts: { json?: boolean }): Promise<void> {
  const s = await json<Record<string, unknown>>(node, "/_p2p/status");
  if (opts.json) return console.log(JSON.stringify(s));
  const tracker = s.tracker as Record<string, unknown> | null;
  console.log(`peer      ${s.peerId} (${s.name}) p2p ${s.version}`);
  console.log(`ports     ${JSON.stringify(s.ports)} on ${s.host}`);
  console.log(`data      ${s.dataDir}`);
  console.log(
    `tracker   ${
      tracker
        ? `${tracker.url} ${
          tracker.ok ? "ok" : `unreachable: ${tracker.lastError ?? "not yet contacted"}`
        }`
        : "none"
    }`,
  );
  console.log(
    `payloads  ${s.payloads} (${s.completePayloads} complete, ${mib(Number(s.storedBytes))})`,
  );
  console.log(`peers     ${s.knownPeers} known, ${s.connections} connections`);
  const h = s.http as Record<string, number> | undefined;
  if (h) {
    console.log(
      `http      ${h.connections} connections, ${h.requests} requests (${h.forwarded} relayed, ` +
        `${h.failures} failed), ${h.idleUpstream} idle upstream connections`,
    );
  }
  const m = s.memory as { rss: number; heapUsed: number; external: number } | undefined;
  if (m) {
    console.log(
      `memory    ${mib(m.rss)} resident (JS heap ${mib(m.heapUsed)}, buffers ${mib(m.external)})`,
    );
  }
}

/** `p2p log`: this peer's activity, or another peer's (`--peer`), optionally followed. */
export async function log(
  node: string,
  opts: { peer?: string; follow?: boolean; type?: string; limit?: number; json?: boolean },
): Promise<void> {
  const q = new URLSearchParams();
  if (opts.peer) q.set("peer", opts.peer);
  if (opts.type) q.set("type", opts.type);
  if (opts.limit) q.set("limit", String(opts.limit));
  const print = (r: ActivityRecord) => {
    if (opts.json) return console.log(JSON.stringify(r));
    const { id, ts, type, ...rest } = r;
    const fields = Object.entries(rest).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    );
    console.log(`${String(id).padStart(6)} ${ts} ${type.padEnd(16)} ${fields.join(" ")}`);
  };
  if (opts.follow) {
    if (opts.peer) throw new ClientError("--follow works for this peer's log only");
    q.set("follow", "1");
    const res = await call(node, `/_p2p/log?${q}`);
    for await (const r of jsonLines<ActivityRecord>(res.body!)) print(r);
    return;
  }
  const page = await json<{ records: ActivityRecord[] }>(node, `/_p2p/log?${q}`);
  for (const r of page.records) print(r);
}

function ago(ms: number): string {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)}s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)}m ago`;
  return `${(s / 3600).toFixed(1)}h ago`;
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}
