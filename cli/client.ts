/**
 * The client commands (`put`, `get`, `where`, `peers`, `status`, `log`, `discover`,
 * `login`): they
 * talk to the running local peer through its control API under `/_p2p/`
 * (`peer/control_client.ts`, every answer parsed with `proto/control.ts`), as a CLI
 * talks to its daemon. When no peer answers they say so in one line.
 *
 * Each request carries the peer's control token: `--token`, else `$P2P_TOKEN`, else
 * the token file of the running peer whose URL is the node's, from the per-user
 * registry of running peers (`lib/peer_registry.ts`), so a peer the same user started
 * on this machine needs no flag whatever its `--data-dir`.
 *
 * @module
 */
import {
  type ActivityRecord,
  type DiscoverProgress,
  type DiscoveryReport,
  type PeerSource,
  shortId,
} from "../proto/control.ts";
import { humanMessage } from "./errors.ts";
import {
  P2pError,
  type P2pErrorOptions,
  PeerTimeoutError,
  ProtocolError,
} from "../proto/errors.ts";
import { ControlClient, ControlError, PeerUnreachableError } from "../peer/control_client.ts";
import { findPeer, registryDir } from "../lib/peer_registry.ts";
import { defaultDataDir } from "./options.ts";
import { ago, chunkMap, isoTimes, logLine, mib, size, tableLines } from "./format.ts";
import { discoverProgress } from "./progress.ts";

/** A failure worth one line, not a stack trace (exit status 1). */
export class ClientError extends P2pError {
  constructor(message: string, options?: P2pErrorOptions & { code?: string }) {
    super(options?.code ?? "client_error", message, options);
  }
}

/** The node URL: `--node`, else `$P2P_NODE`, else the local default. */
export function nodeUrl(flag?: string): string {
  return (flag ?? Deno.env.get("P2P_NODE") ?? "http://127.0.0.1:5805").replace(/\/$/, "");
}

/** The peer a client command talks to: its URL and control token. */
export interface PeerTarget {
  /** The main HTTP server's base URL. */
  url: string;
  /** The control token, when one was found. */
  token?: string;
  /** Where the token came from (`--token`, `P2P_TOKEN`, a token file), for messages. */
  source?: string;
}

/**
 * The peer at `--node` (else `$P2P_NODE`, else the local default) and its token:
 * `--token`, else `$P2P_TOKEN`, else the token file of the running peer at that URL
 * in the registry under `home` (the user's p2p data directory).
 */
export async function peerTarget(
  nodeFlag?: string,
  tokenFlag?: string,
  home: string = defaultDataDir(),
): Promise<PeerTarget> {
  const url = nodeUrl(nodeFlag);
  if (tokenFlag?.trim()) return { url, token: tokenFlag.trim(), source: "--token" };
  const env = Deno.env.get("P2P_TOKEN")?.trim();
  if (env) return { url, token: env, source: "P2P_TOKEN" };
  const entry = await findPeer(registryDir(home), url).catch(() => undefined);
  if (entry) {
    try {
      const token = (await Deno.readTextFile(entry.tokenFile)).trim();
      if (token) return { url, token, source: entry.tokenFile };
    } catch {
      // Unreadable: as if there were none.
    }
  }
  return { url };
}

/** Codes of a control answer that broke off: the local peer went away mid-answer. */
const LOST = new Set(["stream_broken", "ended_early"]);

/**
 * Runs `f` with a client of the peer at `node`; what goes wrong becomes a
 * `ClientError` of one line: no peer there, no token or a wrong one, the connection
 * lost mid-answer, or the peer's own error.
 */
export async function withPeer<T>(
  node: PeerTarget,
  f: (client: ControlClient) => Promise<T>,
): Promise<T> {
  try {
    return await f(new ControlClient(node.url, node.token ? { token: node.token } : {}));
  } catch (err) {
    if (err instanceof PeerUnreachableError) {
      throw new ClientError(
        `No peer is running at ${node.url} (start one with 'p2p peer', or point --node at one)`,
        { code: err.code, cause: err },
      );
    }
    if (err instanceof ControlError && err.httpStatus === 401) {
      throw new ClientError(
        node.token === undefined
          ? `No token for the peer at ${node.url}: start it as this user, or pass --token / P2P_TOKEN`
          : `The peer at ${node.url} refused the token from ${node.source}: pass its own with --token / P2P_TOKEN`,
        { code: err.code, cause: err, status: 401 },
      );
    }
    if (err instanceof ControlError && LOST.has(err.code)) {
      throw new ClientError(
        `Lost the connection to the local peer at ${node.url} (did it stop?); start it ` +
          "again, then run the same command to resume",
        { code: "peer_lost", cause: err },
      );
    }
    if (err instanceof ControlError) {
      throw new ClientError(err.message, {
        code: err.code,
        cause: err,
        ...(err.status === undefined ? {} : { status: err.status }),
      });
    }
    if (err instanceof ProtocolError || err instanceof PeerTimeoutError) {
      throw new ClientError(err.message, { code: err.code, cause: err });
    }
    throw err;
  }
}

/** Records `p2p log` prints when no `--limit` is given (the control API's default). */
const DEFAULT_LOG_LIMIT = 100;

const encoder = new TextEncoder();
const err = (s: string) => Deno.stderr.writeSync(encoder.encode(s));

/** How a holder in `where` was learnt, in words. */
const VIA: Record<string, string> = { self: "this peer", "HAVE?": "asked", tracker: "tracker" };

/** `p2p where REF`: a compact map of who holds which chunk positions. */
export async function where(
  node: PeerTarget,
  ref: string,
  opts: { json?: boolean },
): Promise<void> {
  const w = await withPeer(node, (client) => client.where(ref));
  if (opts.json) return console.log(JSON.stringify(w));
  const width = Math.min(64, w.chunks);
  const per = Math.ceil(w.chunks / Math.max(1, width));
  console.log(
    `payload ${shortId(w.payloadId ?? ref)}: ${w.chunks} chunk${w.chunks === 1 ? "" : "s"}` +
      (per > 1 ? ` (each mark = ${per} chunks)` : ""),
  );
  for (const r of w.rows) {
    const who = `${shortId(r.peerId)} ${(r.name ?? "").slice(0, 12)}`.padEnd(26);
    console.log(
      `${who} ${chunkMap(r.have, w.chunks, width)} ${r.count}/${w.chunks} (${
        VIA[r.via] ?? r.via
      }, ${r.address})`,
    );
  }
}

/** How a peer came to be known, in words. */
const FOUND: Record<PeerSource, string> = {
  seed: "--peer",
  tracker: "tracker",
  exchange: "told by a peer",
  inbound: "connected here",
  scan: "LAN scan",
};

/** `p2p peers`: the peers this peer knows. */
export async function peers(node: PeerTarget, opts: { json?: boolean }): Promise<void> {
  const { peers } = await withPeer(node, (client) => client.peers());
  if (opts.json) {
    return console.log(JSON.stringify(peers.map((p) => isoTimes(p, ["firstSeen", "lastSeen"]))));
  }
  if (peers.length === 0) {
    return console.log("no known peers (find some with p2p discover, or start with --peer)");
  }
  const rows = peers.map((p) => [
    shortId(p.peerId),
    p.name ?? "",
    `${p.host}:${p.ports.chunk}`,
    p.sources.map((s) => FOUND[s]).join(", "),
    ago(p.lastSeen),
    p.rttMs === undefined ? "-" : `${p.rttMs} ms`,
    p.stale ? `stale (${p.failures} failed)` : "live",
  ]);
  table(["PEER", "NAME", "ADDRESS", "HOW FOUND", "LAST SEEN", "RTT", "STATE"], rows);
}

/**
 * Runs a scan with a bar of its probes on stderr (a terminal only: elsewhere the scan
 * is asked without progress, as one JSON answer).
 */
async function drawScan<T>(
  what: string,
  run: (onProgress?: (p: DiscoverProgress) => void) => Promise<T>,
): Promise<T> {
  if (!Deno.stderr.isTerminal()) return await run();
  const display = discoverProgress(what);
  err(`scanning ${what}: listing devices…\r`);
  try {
    return await run((p) => display.update(p));
  } finally {
    display.stop();
  }
}

/** Why a scan found no peer, in words: what it probed and what is listed. */
export function emptyScanWords(r: DiscoveryReport): string | undefined {
  if (r.found.length > 0 || r.devicesError) return undefined;
  const ranges = r.ranges.join(", ");
  if (r.devices === 0) {
    return `No device of ${ranges} answered the ARP sweep, so none was asked: only devices ` +
      "that answer it are probed. Check the range (is this machine on it?); some networks " +
      "(guest Wi-Fi, client isolation) hide devices from each other.";
  }
  return `None of the ${r.devices} device${r.devices === 1 ? "" : "s"} that answered runs a ` +
    "p2p peer answering on its pingback port, or their network key differs (see 'not a peer' " +
    "above). Start 'p2p peer' there, with the same --network-key-file.";
}

/** `p2p discover`: the local peer scans a LAN range and reports the peers it identified. */
export async function discover(
  node: PeerTarget,
  range: string | undefined,
  opts: { json?: boolean },
): Promise<void> {
  const scanned = range ?? "this machine's subnets";
  const r = await withPeer(
    node,
    (client) => drawScan(scanned, (onProgress) => client.discover(range, { onProgress })),
  );
  if (opts.json) return console.log(JSON.stringify(r));
  if (r.devicesError) {
    console.error(`p2p: cannot list the devices: ${humanMessage(r.devicesError)}`);
  }
  if (r.found.length > 0) {
    table(
      ["PEER", "NAME", "ADDRESS", "PORTS", "RTT", "CHANGE"],
      r.found.map((p) => [
        shortId(p.peerId),
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
    console.log(`stale: ${shortId(x.peerId)} at ${x.address}: ${x.reason}`);
  }
  console.log(
    `${r.found.length} peer${r.found.length === 1 ? "" : "s"} identified among ${r.devices} ` +
      `device${r.devices === 1 ? "" : "s"} of ${r.ranges.join(", ")} (${r.probed} probed) in ${
        r.seconds.toFixed(2)
      } s`,
  );
  const why = emptyScanWords(r);
  if (why) console.log(why);
}

/** `p2p login`: prints a new one-time link that logs a browser in to the peer's web app. */
export async function login(node: PeerTarget, opts: { json?: boolean }): Promise<void> {
  const link = await withPeer(node, (client) => client.loginLink());
  const url = `${node.url}${link.path}`;
  if (opts.json) {
    return console.log(JSON.stringify({ url, expiresAt: new Date(link.expiresAt).toISOString() }));
  }
  console.log(url);
  err(`open it in a browser within 10 minutes; it works once\n`);
}

/** `p2p status`: this peer. */
export async function status(node: PeerTarget, opts: { json?: boolean }): Promise<void> {
  const s = await withPeer(node, (client) => client.status());
  if (opts.json) {
    const tracker = s.tracker && isoTimes(s.tracker, ["lastContact"]);
    return console.log(JSON.stringify({ ...s, tracker }));
  }
  const t = s.tracker;
  const ports = Object.entries(s.ports).map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`peer      ${shortId(s.peerId)} (${s.name}) p2p ${s.version}`);
  console.log(`ports     ${ports} on ${s.host}`);
  console.log(`data      ${s.dataDir}`);
  const lost = t?.lastError ? humanMessage(t.lastError) : "not yet contacted";
  console.log(`tracker   ${t ? `${t.url} ${t.ok ? "ok" : `unreachable: ${lost}`}` : "none"}`);
  console.log(`payloads  ${s.payloads} (${s.completePayloads} complete, ${size(s.storedBytes)})`);
  if (s.store) {
    console.log(
      `store     ${size(s.store.usedBytes)} on disk, room for ${
        size(Math.max(0, s.store.capacityBytes - s.store.usedBytes))
      } more`,
    );
  }
  console.log(`peers     ${s.knownPeers} known, ${s.connections} connections`);
  const h = s.http;
  if (h) {
    console.log(
      `http      ${h.connections} connections, ${h.requests} requests (${h.forwarded} relayed, ` +
        `${h.failures} failed), ${h.idleUpstream} idle upstream connections`,
    );
  }
  const m = s.memory;
  console.log(
    `memory    ${mib(m.rss)} resident (JS heap ${mib(m.heapUsed)}, buffers ${mib(m.external)})`,
  );
}

/** `p2p log`: this peer's activity, or another peer's (`--peer`), optionally followed. */
export async function log(
  node: PeerTarget,
  opts: { peer?: string; follow?: boolean; type?: string; limit?: number; json?: boolean },
): Promise<void> {
  const query = {
    ...(opts.peer ? { peer: opts.peer } : {}),
    ...(opts.type ? { type: opts.type } : {}),
    ...(opts.limit ? { limit: opts.limit } : {}),
  };
  const print = (r: ActivityRecord) => {
    console.log(opts.json ? JSON.stringify(r) : logLine(r));
  };
  if (opts.follow) {
    if (opts.peer) throw new ClientError("--follow works for this peer's log only");
    await withPeer(node, async (client) => {
      for await (const r of client.followLog(query)) print(r);
    });
    return;
  }
  const page = await withPeer(node, (client) => client.log(query));
  for (const r of page.records) print(r);
  const limit = opts.limit ?? DEFAULT_LOG_LIMIT;
  if (page.records.length >= limit && !opts.json) {
    err(
      `(the newest ${limit === 1 ? "record" : `${limit} records`}; --limit takes up to 1000, ` +
        "--follow keeps printing new ones)\n",
    );
  }
}

function table(head: string[], rows: string[][]): void {
  for (const line of tableLines(head, rows)) console.log(line);
}
