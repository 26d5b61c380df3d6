/**
 * A running peer: it ties together the identity, the chunk store, the TCP chunk
 * service and its connections to other peers, the known-peers table, the optional
 * tracker, replication, downloads and the activity log. The HTTP control API
 * (`control.ts`) and the CLI drive it.
 *
 * @module
 */
import { PeerLog } from "./activity.ts";
import { ChunkStore } from "./chunk_store.ts";
import {
  connectPeer,
  type PeerConnection,
  RemoteError,
  type RequestHandler,
} from "./connection.ts";
import { download, type DownloadResult, type Progress, type Source } from "./downloader.ts";
import { type Identity, loadIdentity } from "./identity.ts";
import { type KnownPeer, type PeerSource, PeerTable } from "./peer_table.ts";
import { RateLimiter } from "./rate_limit.ts";
import { type ChunkService, startChunkService } from "./service.ts";
import { TrackerClient, TrackerError } from "./tracker_client.ts";
import { assertBitfield, bitfieldCount, bitfieldFromIndices } from "../proto/bitfield.ts";
import { IntegrityError, ProtocolError } from "../proto/errors.ts";
import { BufferPool } from "../proto/bytes.ts";
import { fromHex, PayloadId, toHex } from "../proto/ids.ts";
import { z } from "zod";
import { CHUNK_SIZE, type Manifest, verifyManifest } from "../proto/manifest.ts";
import {
  type HelloHeader,
  MAX_HEADER,
  type Message,
  type MessageInit,
  type WirePeer,
  type WirePorts,
} from "../proto/messages.ts";
import { FIXED_LENGTH } from "../proto/frame.ts";
import {
  DEFAULT_PINGBACK_PORT,
  type DiscoveredPeer,
  type DiscoveryReport,
  formatRange,
  interfaceRanges,
  parseRange,
} from "../proto/discovery.ts";
import { scan } from "./discovery.ts";
import { VERSION } from "../version.ts";

/** Options of a peer; see `p2p peer --help`. */
export interface PeerOptions {
  /** Address the TCP and HTTP servers listen on. */
  host: string;
  /** TCP chunk port; 0 picks a free one. */
  port: number;
  /** HTTP control API port; 0 picks a free one. */
  httpPort: number;
  /** Pingback (LAN discovery) port; 0 picks a free one; undefined: no pingback server. */
  pingbackPort?: number;
  /** Built-in app server port; 0 picks a free one; undefined (and no `app`): no app. */
  appPort?: number;
  /** Base URL of an application server of the user's to proxy to instead of the built-in app. */
  app?: string;
  dataDir: string;
  name: string;
  /** Tracker base URL, when there is one. */
  tracker?: string;
  /** Peers to contact at start (`--peer HOST:PORT`). */
  seeds: { host: string; port: number }[];
  /** Copies pushed to other peers of every chunk this peer puts. */
  replicas: number;
  /** Tracker heartbeat period (default 20 s). */
  heartbeatMs?: number;
  /** Peer exchange period (default 30 s). */
  exchangeMs?: number;
  /** Print activity to stderr as it happens. */
  echo?: boolean;
  /** Cap on the bytes per second this peer serves to others. */
  maxUploadRate?: number;
  /**
   * Scan the LAN at start and every `scanIntervalMs`: a range (CIDR, FIRST-LAST), or
   * `""` for the subnets of this machine's interfaces. Undefined: never scan.
   */
  scan?: string;
  /** Period of `scan` (default 300 s). */
  scanIntervalMs?: number;
  /** Pingback port probed on devices during a scan (default: our own pingback port). */
  scanPingbackPort?: number;
}

/** What `put()` did. */
export interface PutResult {
  payloadId: string;
  size: number;
  chunks: number;
  created: boolean;
  /** Chunk copies pushed per target peer. */
  replicas: Record<string, number>;
  /** Chunks that got fewer copies than asked for. */
  underReplicated: number;
}

/** A payload somewhere on the network, as `networkPayloads()` reports it. */
export interface NetworkPayload {
  payloadId: string;
  name?: string;
  size: number;
  chunks: number;
  /** Peers that hold some of its chunks (this one included). */
  holders: { peerId: string; name?: string; held: number; complete: boolean }[];
}

/** What another peer's `GET /_p2p/payloads` says, as far as it is used here. */
const RemotePayloadList = z.object({
  payloads: z.array(z.object({
    payloadId: PayloadId,
    size: z.number().int().nonnegative(),
    chunks: z.number().int().nonnegative(),
    held: z.number().int().nonnegative(),
    complete: z.boolean(),
    name: z.string().max(255).optional(),
  })).max(10_000),
});

/** One holder of a payload's chunks, as `where()` reports. */
export interface WhereRow {
  peerId: string;
  name?: string;
  address: string;
  have: string;
  count: number;
  via: string;
}

const WILDCARDS = new Set(["0.0.0.0", "::", ""]);

/** A running peer. Create with `PeerNode.start()`. */
export class PeerNode {
  readonly opts: PeerOptions;
  readonly identity: Identity;
  readonly store: ChunkStore;
  readonly log: PeerLog;
  readonly table: PeerTable;
  readonly tracker?: TrackerClient;
  readonly #kv: Deno.Kv;
  #service!: ChunkService;
  /** Outbound connections by "host:port". */
  readonly #pool = new Map<string, Promise<PeerConnection>>();
  /**
   * Buffers that chunk answers on outbound connections are read into, given back by
   * the downloader once each chunk is stored: a download then holds a steady set of
   * buffers instead of leaving one for the garbage collector per chunk.
   */
  readonly #frames = new BufferPool(FIXED_LENGTH + MAX_HEADER + CHUNK_SIZE, 16);
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #announce = new Set<string>();
  readonly #published = new Set<string>();
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  #trackerState: { ok: boolean; lastError?: string; lastContact?: number } = { ok: false };
  #stopping = false;
  readonly #downloads = new Map<string, Promise<DownloadResult>>();
  /** Progress listeners of the running downloads. */
  readonly #progress = new Map<string, Set<(p: Progress) => void>>();
  readonly #abort = new AbortController();
  readonly #uploadLimit?: RateLimiter;
  #spreading: Promise<void> | undefined;

  private constructor(
    opts: PeerOptions,
    identity: Identity,
    store: ChunkStore,
    log: PeerLog,
    kv: Deno.Kv,
    table: PeerTable,
  ) {
    this.opts = opts;
    this.identity = identity;
    this.store = store;
    this.log = log;
    this.#kv = kv;
    this.table = table;
    if (opts.tracker) this.tracker = new TrackerClient(opts.tracker);
    if (opts.maxUploadRate) this.#uploadLimit = new RateLimiter(opts.maxUploadRate);
  }

  /** Opens the data directory, starts the TCP service and background work. */
  static async start(opts: PeerOptions): Promise<PeerNode> {
    await Deno.mkdir(opts.dataDir, { recursive: true });
    const identity = await loadIdentity(opts.dataDir);
    const log = await PeerLog.open(`${opts.dataDir}/activity.jsonl`, { echo: opts.echo });
    const store = await ChunkStore.open(`${opts.dataDir}/store`);
    const kv = await Deno.openKv(`${opts.dataDir}/peers.kv`);
    const table = await PeerTable.open(kv, identity.peerId);
    const node = new PeerNode(opts, identity, store, log, kv, table);
    try {
      await node.#startService();
    } catch (err) {
      store.close();
      log.close();
      kv.close();
      throw err;
    }
    store.onChunk((payloadId) => node.#queueAnnounce(payloadId));
    return node;
  }

  /** Starts background work: seeds, tracker heartbeats, peer exchange. Call once. */
  begin(): void {
    this.log.record("peer.start", {
      peerId: this.identity.peerId,
      name: this.opts.name,
      ports: this.hello().ports,
      payloads: this.store.list().length,
      knownPeers: this.table.list().length,
    });
    this.#background();
  }

  /** Aborts when the node stops: long-running requests (log followers) end with it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The TCP chunk service's address. */
  get chunkAddr(): Deno.NetAddr {
    return this.#service.addr;
  }

  /** The TCP chunk port. */
  get chunkPort(): number {
    return this.#service.addr.port;
  }

  /** HTTP port, once the control server told us (set by `startPeer`). */
  httpPort?: number;
  /** Pingback port, once the pingback server listens (set by `startPeer`). */
  pingbackPort?: number;
  /** Application server port, when there is one (set by `startPeer`). */
  appPort?: number;
  /** Counters of the main HTTP server, once it runs (set by `startPeer`). */
  httpStats?: () => Record<string, number>;

  /** This peer's ports by role, as far as they are known. */
  ports(): WirePorts {
    return {
      chunk: this.chunkPort,
      ...(this.pingbackPort ? { pingback: this.pingbackPort } : {}),
      ...(this.httpPort ? { http: this.httpPort } : {}),
      ...(this.appPort ? { app: this.appPort } : {}),
    };
  }

  /** Our HELLO header. */
  hello(): HelloHeader {
    return {
      peerId: this.identity.peerId,
      name: this.opts.name,
      version: VERSION,
      ports: this.ports(),
      ...(WILDCARDS.has(this.opts.host) ? {} : { host: this.opts.host }),
      publicKey: this.identity.publicKey,
    };
  }

  async #startService(): Promise<void> {
    this.#service = await startChunkService({
      hostname: this.opts.host,
      port: this.opts.port,
      hello: () => this.hello(),
      handler: this.#handler,
      onEvent: (type, fields) => this.log.record(type, fields),
      onConnection: (conn) => this.#sawInbound(conn),
    });
  }

  #sawInbound(conn: PeerConnection): void {
    if (!conn.remoteAddr) return;
    const hello = conn.remote;
    this.table.upsert(
      {
        peerId: hello.peerId,
        host: hello.host ?? conn.remoteAddr.hostname.replace(/^::ffff:/, ""),
        ports: hello.ports,
        name: hello.name,
        publicKey: hello.publicKey,
      },
      "inbound",
    ).catch((err) => this.log.record("error", { during: "peer table", message: String(err) }));
  }

  // ---- serving ----

  readonly #handler: RequestHandler = async (msg: Message, conn: PeerConnection) => {
    const who = conn.remote.peerId;
    switch (msg.type) {
      case "HAVE_REQ": {
        const m = this.store.getManifest(msg.header.payloadId);
        if (!m) {
          throw new ProtocolError("unknown_payload", `No payload '${msg.header.payloadId}' here`);
        }
        this.log.record("query.have", { from: who, payloadId: msg.header.payloadId });
        return {
          type: "HAVE",
          requestId: msg.requestId,
          header: { payloadId: msg.header.payloadId, chunkCount: m.chunks.length },
          body: this.store.have(msg.header.payloadId),
        };
      }
      case "GET_CHUNK": {
        const { payloadId, index } = msg.header;
        if (!this.store.has(payloadId, index)) {
          throw new ProtocolError(
            "not_held",
            `Chunk '${index}' of '${payloadId}' is not held here`,
          );
        }
        const body = await this.store.readChunk(payloadId, index);
        if (this.#uploadLimit) {
          await this.#uploadLimit.take(
            body.length,
            AbortSignal.any([this.#abort.signal, closedSignal(conn)]),
          );
        }
        this.log.record("chunk.sent", { to: who, payloadId, index, bytes: body.length });
        return { type: "CHUNK", requestId: msg.requestId, header: { payloadId, index }, body };
      }
      case "PUT_CHUNK": {
        const { payloadId, index } = msg.header;
        if (!this.store.getManifest(payloadId)) await this.#learnManifest(payloadId, conn);
        try {
          await this.store.writeChunk(payloadId, index, msg.body);
        } catch (err) {
          if (err instanceof IntegrityError) {
            this.log.record("chunk.rejected", { from: who, payloadId, index, reason: err.message });
            throw new ProtocolError("integrity", err.message);
          }
          throw err;
        }
        this.log.record("chunk.received", {
          from: who,
          payloadId,
          index,
          bytes: msg.body.length,
          via: "push",
        });
        return { type: "PUT_OK", requestId: msg.requestId, header: { payloadId, index } };
      }
      case "MANIFEST_REQ": {
        const m = this.store.getManifest(msg.header.payloadId);
        if (!m) {
          throw new ProtocolError("unknown_payload", `No payload '${msg.header.payloadId}' here`);
        }
        this.log.record("query.manifest", { from: who, payloadId: msg.header.payloadId });
        const name = this.store.payload(msg.header.payloadId)?.name;
        return manifestMessage(msg.requestId, msg.header.payloadId, m, name);
      }
      case "PEERS_REQ": {
        const limit = msg.header.limit ?? 100;
        // Stale peers (the last attempt to reach them failed) are not passed on.
        const live = this.table.list().filter((p) => p.failures === 0);
        const peers: WirePeer[] = live.slice(0, limit).map((p) => ({
          peerId: p.peerId,
          host: p.host,
          ports: p.ports,
          ...(p.name ? { name: p.name } : {}),
          lastSeen: p.lastSeen,
        }));
        this.log.record("query.peers", { from: who, count: peers.length });
        return { type: "PEERS", requestId: msg.requestId, header: { peers } };
      }
      case "LOG_REQ": {
        const page = this.log.query({
          since: msg.header.since,
          limit: msg.header.limit ?? 100,
          type: msg.header.type,
        });
        this.log.record("query.log", { from: who, count: page.records.length });
        return { type: "LOG", requestId: msg.requestId, header: { records: page.records } };
      }
      case "PING":
        return { type: "PONG", requestId: msg.requestId, header: { ts: msg.header.ts } };
      default:
        throw new ProtocolError("unsupported", `Cannot answer '${msg.type}'`);
    }
  };

  /** Asks the peer that pushes chunks of an unknown payload for its manifest, and verifies it. */
  async #learnManifest(payloadId: string, conn: PeerConnection): Promise<Manifest> {
    const res = await conn.request({ type: "MANIFEST_REQ", header: { payloadId } });
    const m = manifestFrom(res);
    const name = res.type === "MANIFEST" ? res.header.name : undefined;
    await this.store.addManifest(payloadId, m, name ? { name } : undefined);
    return m;
  }

  // ---- connections ----

  /** An open connection to a peer (reused while it lasts). */
  connect(host: string, port: number): Promise<PeerConnection> {
    const key = `${host}:${port}`;
    let conn = this.#pool.get(key);
    if (!conn) {
      conn = (async () => {
        const started = performance.now();
        const c = await connectPeer({ hostname: host, port }, {
          hello: this.hello(),
          handler: this.#handler,
          connectTimeoutMs: 3000,
          framePool: this.#frames,
          signal: this.#abort.signal,
        });
        const rtt = performance.now() - started;
        c.closed.then(() => {
          if (this.#pool.get(key) === conn) this.#pool.delete(key);
        });
        await this.table.upsert(
          {
            peerId: c.remote.peerId,
            host,
            ports: c.remote.ports,
            name: c.remote.name,
            publicKey: c.remote.publicKey,
          },
          "seed",
        ).catch(() => undefined);
        await this.table.seen(c.remote.peerId, rtt);
        return c;
      })();
      this.#pool.set(key, conn);
      conn.catch(() => {
        if (this.#pool.get(key) === conn) this.#pool.delete(key);
      });
    }
    return conn;
  }

  /** A connection to a known peer by id, or undefined when it cannot be reached. */
  async connectKnown(p: KnownPeer): Promise<PeerConnection | undefined> {
    try {
      return await this.connect(p.host, p.ports.chunk);
    } catch (err) {
      await this.table.failed(p.peerId);
      this.log.record("conn.fail", {
        peerId: p.peerId,
        address: `${p.host}:${p.ports.chunk}`,
        message: String(err),
      });
      return undefined;
    }
  }

  // ---- background: tracker, seeds, exchange ----

  #later(ms: number, fn: () => Promise<void>): void {
    if (this.#stopping) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn().catch((err) => this.log.record("error", { message: String(err) }));
    }, ms);
    this.#timers.add(t);
  }

  #background(): void {
    this.#later(0, () => this.#contactSeeds());
    if (this.tracker) this.#later(0, () => this.#trackerLoop(0));
    this.#later(this.opts.exchangeMs ?? 30_000, () => this.#exchangeLoop());
    if (this.opts.scan !== undefined) this.#later(0, () => this.#scanLoop());
  }

  async #scanLoop(): Promise<void> {
    try {
      await this.discover(this.opts.scan || undefined);
    } catch (err) {
      this.log.record("discover.error", { message: (err as Error).message });
    }
    this.#later(this.opts.scanIntervalMs ?? 300_000, () => this.#scanLoop());
  }

  /**
   * Finds the peers of a LAN range (none: the subnets of this machine's interfaces):
   * lists its devices with npm:local-devices, probes their pingback ports and those of
   * the peers already known, and records what it learns: verified peers are added or
   * updated (source `scan`), known peers that stay silent are marked stale. Runs one
   * at a time.
   */
  discover(rangeText?: string): Promise<DiscoveryReport> {
    const run = this.#discovering.then(() => this.#discover(rangeText));
    this.#discovering = run.catch(() => undefined);
    return run;
  }

  #discovering: Promise<unknown> = Promise.resolve();

  async #discover(rangeText?: string): Promise<DiscoveryReport> {
    const started = performance.now();
    const ranges = rangeText !== undefined
      ? [parseRange(rangeText)]
      : interfaceRanges(Deno.networkInterfaces());
    if (ranges.length === 0) {
      throw new RangeError(
        "Nothing to scan: no range given and no IPv4 interface other than loopback",
      );
    }
    const rangeNames = ranges.map(formatRange);
    this.log.record("discover.start", { ranges: rangeNames });
    const known = this.table.list().filter((p) => p.ports.pingback).map((p) => ({
      host: p.host,
      port: p.ports.pingback!,
      peerId: p.peerId,
    }));
    const result = await scan({
      ranges,
      known,
      self: this.identity.peerId,
      pingbackPort: this.opts.scanPingbackPort ?? this.pingbackPort ?? DEFAULT_PINGBACK_PORT,
      signal: this.#abort.signal,
    });
    const found: DiscoveredPeer[] = [];
    for (const r of result.found) {
      const a = r.answer;
      const old = this.table.get(a.peerId);
      const change = !old
        ? "new"
        : old.host !== r.host || old.ports.chunk !== a.ports.chunk
        ? "moved"
        : "known";
      await this.table.upsert(
        { peerId: a.peerId, host: r.host, ports: a.ports, name: a.name, publicKey: a.publicKey },
        "scan",
      );
      await this.table.seen(a.peerId, r.rttMs);
      found.push({
        peerId: a.peerId,
        name: a.name,
        host: r.host,
        ports: a.ports,
        rttMs: r.rttMs,
        change,
      });
      this.log.record("discover.peer", {
        peerId: a.peerId,
        address: `${r.host}:${a.ports.chunk}`,
        change,
        rttMs: r.rttMs,
      });
    }
    for (const r of result.rejected) this.log.record("discover.reject", r);
    for (const s of result.silent) {
      await this.table.failed(s.peerId);
      this.log.record("discover.stale", s);
    }
    const report: DiscoveryReport = {
      ranges: rangeNames,
      devices: result.devices,
      probed: result.probed,
      found,
      rejected: result.rejected,
      stale: result.silent,
      ...(result.devicesError ? { devicesError: result.devicesError } : {}),
      seconds: Math.round(performance.now() - started) / 1000,
    };
    this.log.record("discover.done", {
      ranges: rangeNames,
      devices: report.devices,
      probed: report.probed,
      found: found.length,
      rejected: report.rejected.length,
      stale: report.stale.length,
      seconds: report.seconds,
      ...(report.devicesError ? { devicesError: report.devicesError } : {}),
    });
    return report;
  }

  async #contactSeeds(): Promise<void> {
    for (const seed of this.opts.seeds) {
      try {
        const c = await this.connect(seed.host, seed.port);
        await this.#exchangeWith(c);
      } catch (err) {
        this.log.record("seed.fail", {
          address: `${seed.host}:${seed.port}`,
          message: String(err),
        });
      }
    }
    // Known peers from earlier runs: say hello so the table stays fresh.
    for (const p of this.table.list().slice(0, 8)) {
      if (this.opts.seeds.some((s) => s.host === p.host && s.port === p.ports.chunk)) continue;
      await this.connectKnown(p);
    }
  }

  /** Peer exchange with one connection: learn the peers it knows. */
  async #exchangeWith(c: PeerConnection): Promise<number> {
    const res = await c.request({ type: "PEERS_REQ", header: { limit: 200 } }, { timeoutMs: 5000 });
    if (res.type !== "PEERS") return 0;
    let n = 0;
    for (const p of res.header.peers) {
      if (
        await this.table.upsert(
          { peerId: p.peerId, host: p.host, ports: p.ports, name: p.name },
          "exchange",
        )
      ) n++;
    }
    this.log.record("exchange", { with: c.remote.peerId, learned: n });
    return n;
  }

  async #exchangeLoop(): Promise<void> {
    const peers = this.table.list().sort(() => Math.random() - 0.5).slice(0, 3);
    for (const p of peers) {
      const c = await this.connectKnown(p);
      if (c) await this.#exchangeWith(c).catch(() => undefined);
    }
    await this.table.ageOut(24 * 3600_000);
    this.#later(this.opts.exchangeMs ?? 30_000, () => this.#exchangeLoop());
  }

  async #trackerLoop(failures: number): Promise<void> {
    const tracker = this.tracker!;
    let next = this.opts.heartbeatMs ?? 20_000;
    try {
      const res = await tracker.register({
        port: this.chunkPort,
        peerId: this.identity.peerId,
        name: this.opts.name,
        ports: { chunk: this.chunkPort, ...(this.httpPort ? { http: this.httpPort } : {}) },
        publicKey: this.identity.publicKey,
        version: VERSION,
        ...(WILDCARDS.has(this.opts.host) ? {} : { host: this.opts.host }),
      });
      if (!this.#trackerState.ok || failures > 0) {
        this.log.record("tracker.register", { url: tracker.url, created: res.created });
      }
      this.#trackerState = { ok: true, lastContact: Date.now() };
      next = Math.min(next, res.ttlSeconds * 1000 / 3);
      const livePeers = await tracker.peers();
      for (const p of livePeers) {
        await this.table.upsert(
          {
            peerId: p.peerId,
            host: p.host,
            ports: { chunk: p.port, ...p.ports },
            name: p.name,
            publicKey: p.publicKey,
          },
          "tracker",
        );
      }
      if (failures > 0 || this.#published.size === 0) {
        for (const p of this.store.list()) this.#announce.add(p.payloadId);
      }
      await this.#flushAnnouncements();
      this.#spreadFromTracker(livePeers.map((p) => p.peerId));
      failures = 0;
    } catch (err) {
      failures++;
      next = Math.min(30_000, 1000 * 2 ** (failures - 1));
      this.#trackerState = { ...this.#trackerState, ok: false, lastError: (err as Error).message };
      this.log.record("tracker.error", {
        url: tracker.url,
        message: (err as Error).message,
        retryInMs: next,
      });
    }
    this.#later(next, () => this.#trackerLoop(failures));
  }

  /**
   * Payloads uploaded to the tracker are spread to peers like a `put`: for each
   * payload whose bytes the tracker keeps, the `replicas` live peers ranked highest
   * by rendezvous hashing fetch it. Runs one download at a time in the background.
   */
  #spreadFromTracker(livePeerIds: string[]): void {
    if (this.#spreading || !this.tracker || this.opts.replicas <= 0) return;
    const tracker = this.tracker;
    const self = this.identity.peerId;
    const ids = livePeerIds.includes(self) ? livePeerIds : [...livePeerIds, self];
    this.#spreading = (async () => {
      const page = await tracker.payloads();
      for (const p of page.payloads) {
        if (this.#stopping) break;
        if (!p.stored || this.store.payload(p.payloadId)?.complete) continue;
        const chosen = [...ids]
          .sort((a, b) => rendezvous(p.payloadId, -1, b) - rendezvous(p.payloadId, -1, a))
          .slice(0, this.opts.replicas);
        if (!chosen.includes(self)) continue;
        this.log.record("replicate.pull", {
          payloadId: p.payloadId,
          size: p.size,
          from: "tracker",
        });
        await this.get(p.payloadId).catch(() => undefined);
      }
    })().catch((err) => {
      this.log.record("tracker.error", { during: "spread", message: (err as Error).message });
    }).finally(() => {
      this.#spreading = undefined;
    });
  }

  #queueAnnounce(payloadId: string): void {
    if (!this.tracker) return;
    this.#announce.add(payloadId);
    // Coalesce the chunks of one burst into one announcement, sent at once.
    this.#announceTimer ??= setTimeout(() => {
      this.#announceTimer = undefined;
      this.#flushAnnouncements().catch((err) =>
        this.log.record("tracker.error", { message: String(err) })
      );
    }, 50);
  }

  async #flushAnnouncements(): Promise<void> {
    const tracker = this.tracker;
    if (!tracker || this.#stopping) return;
    for (const payloadId of [...this.#announce]) {
      const m = this.store.getManifest(payloadId);
      if (!m) {
        this.#announce.delete(payloadId);
        continue;
      }
      try {
        if (!this.#published.has(payloadId)) {
          await tracker.publish(payloadId, m, this.store.payload(payloadId)?.name);
          this.#published.add(payloadId);
        }
        const bits = this.store.have(payloadId);
        this.#announce.delete(payloadId);
        const res = await tracker.announce(payloadId, this.identity.peerId, bits);
        this.log.record("tracker.announce", { payloadId, count: res.count });
      } catch (err) {
        // Kept in the set: retried with the next heartbeat.
        if (err instanceof TrackerError && err.code === "unknown_peer") {
          this.#trackerState.ok = false;
        }
        this.log.record("tracker.error", {
          during: "announce",
          payloadId,
          message: (err as Error).message,
        });
        return;
      }
    }
  }

  // ---- put: import, announce, replicate ----

  /** Stores a payload from a stream, announces it and pushes each chunk to `replicas` peers. */
  async put(
    source: ReadableStream<Uint8Array>,
    name?: string,
    onProgress?: (e: Record<string, unknown>) => void,
  ): Promise<PutResult> {
    const { payloadId, manifest, created } = await this.store.importStream(source, { name });
    this.log.record("payload.put", {
      payloadId,
      size: manifest.size,
      chunks: manifest.chunks.length,
      name,
    });
    onProgress?.({
      type: "stored",
      payloadId,
      size: manifest.size,
      chunks: manifest.chunks.length,
    });
    this.#queueAnnounce(payloadId);
    const rep = await this.replicate(payloadId, this.opts.replicas, onProgress);
    return { payloadId, size: manifest.size, chunks: manifest.chunks.length, created, ...rep };
  }

  /**
   * Pushes each chunk of a payload to `replicas` other live peers, chosen per chunk by
   * rendezvous hashing, so copies spread evenly and no single peer's loss loses a chunk.
   */
  async replicate(
    payloadId: string,
    replicas: number,
    onProgress?: (e: Record<string, unknown>) => void,
  ): Promise<{ replicas: Record<string, number>; underReplicated: number }> {
    const m = this.store.getManifest(payloadId)!;
    const counts: Record<string, number> = {};
    if (replicas <= 0) return { replicas: counts, underReplicated: 0 };
    // Live candidates: the known peers we can connect to now.
    const live: { peer: KnownPeer; conn: PeerConnection }[] = [];
    for (const p of this.table.list()) {
      const conn = await this.connectKnown(p);
      if (conn) live.push({ peer: p, conn });
    }
    let under = 0;
    let done = 0;
    const queue = m.chunks.map((_, i) => i);
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        const ranked = [...live].sort((a, b) =>
          rendezvous(payloadId, i, b.peer.peerId) - rendezvous(payloadId, i, a.peer.peerId)
        );
        let copies = 0;
        const body = await this.store.readChunk(payloadId, i);
        for (const target of ranked) {
          if (copies >= replicas) break;
          try {
            const res = await target.conn.request({
              type: "PUT_CHUNK",
              header: { payloadId, index: i },
              body,
            }, { timeoutMs: 15_000 });
            if (res.type !== "PUT_OK") continue;
            copies++;
            counts[target.peer.peerId] = (counts[target.peer.peerId] ?? 0) + 1;
            this.log.record("chunk.pushed", { to: target.peer.peerId, payloadId, index: i });
          } catch (err) {
            this.log.record("replicate.fail", {
              to: target.peer.peerId,
              payloadId,
              index: i,
              message: String(err),
            });
          }
        }
        if (copies < replicas) under++;
        onProgress?.({
          type: "replicated",
          index: i,
          copies,
          done: ++done,
          chunks: m.chunks.length,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, queue.length) }, worker));
    this.log.record("replicate.done", { payloadId, targets: counts, underReplicated: under });
    return { replicas: counts, underReplicated: under };
  }

  // ---- get ----

  /** The verified manifest of a payload: from the store, the tracker or a known peer. */
  async manifest(payloadId: string): Promise<Manifest> {
    const held = this.store.getManifest(payloadId);
    if (held) return held;
    const errors: string[] = [];
    if (this.tracker) {
      try {
        const r = await this.tracker.manifest(payloadId);
        const m = { size: r.size, chunkSize: r.chunkSize, chunks: r.chunks };
        await verifyManifest(payloadId, m);
        await this.store.addManifest(payloadId, m, { name: r.name });
        return m;
      } catch (err) {
        errors.push(`tracker: ${(err as Error).message}`);
      }
    }
    for (const p of this.table.list()) {
      const c = await this.connectKnown(p);
      if (!c) continue;
      try {
        const res = await c.request({ type: "MANIFEST_REQ", header: { payloadId } }, {
          timeoutMs: 5000,
        });
        const m = manifestFrom(res);
        await verifyManifest(payloadId, m);
        const name = res.type === "MANIFEST" ? res.header.name : undefined;
        await this.store.addManifest(payloadId, m, name ? { name } : undefined);
        return m;
      } catch (err) {
        errors.push(`${p.peerId.slice(0, 8)}: ${(err as Error).message}`);
      }
    }
    throw new Error(
      `Cannot find the manifest of payload '${payloadId}'` +
        (errors.length ? ` (${errors.slice(0, 3).join("; ")})` : ": no tracker and no known peer"),
    );
  }

  /** Sources for a payload: the tracker's holders, every known peer that answers HAVE?, the tracker. */
  async sources(payloadId: string, m: Manifest): Promise<Source[]> {
    const out = new Map<string, Source>();
    const peerSource = (peerId: string, conn: PeerConnection, have: Uint8Array): Source => ({
      id: peerId,
      have,
      fetch: async (index, signal) => {
        const res = await conn.request({ type: "GET_CHUNK", header: { payloadId, index } }, {
          signal,
        });
        if (res.type !== "CHUNK") {
          throw new ProtocolError("unexpected", `Expected CHUNK, got ${res.type}`);
        }
        return res.body;
      },
      release: (bytes) => this.#frames.release(bytes),
    });
    const ask = async (peerId: string, host: string, port: number) => {
      if (out.has(peerId) || peerId === this.identity.peerId) return;
      try {
        const conn = await this.connect(host, port);
        const res = await conn.request({ type: "HAVE_REQ", header: { payloadId } }, {
          timeoutMs: 5000,
        });
        if (res.type !== "HAVE") return;
        assertBitfield(res.body, m.chunks.length);
        if (bitfieldCount(res.body, m.chunks.length) > 0) {
          out.set(conn.remote.peerId, peerSource(conn.remote.peerId, conn, res.body));
        }
      } catch (err) {
        if (!(err instanceof RemoteError)) {
          this.log.record("conn.fail", {
            peerId,
            address: `${host}:${port}`,
            message: String(err),
          });
        }
      }
    };
    const asks: Promise<void>[] = [];
    let trackerHolds = false;
    if (this.tracker) {
      try {
        const holders = await this.tracker.holders(payloadId);
        trackerHolds = holders.tracker.holds;
        for (const h of holders.peers) asks.push(ask(h.peerId, h.host, h.ports?.chunk ?? h.port));
      } catch (err) {
        this.log.record("tracker.error", {
          during: "holders",
          payloadId,
          message: (err as Error).message,
        });
      }
    }
    for (const p of this.table.list()) asks.push(ask(p.peerId, p.host, p.ports.chunk));
    await Promise.all(asks);
    if (trackerHolds && this.tracker) {
      const tracker = this.tracker;
      out.set("tracker", {
        id: "tracker",
        have: bitfieldFromIndices(m.chunks.length, m.chunks.map((_, i) => i)),
        fetch: (index, signal) => tracker.chunk(payloadId, index, signal),
      });
    }
    return [...out.values()];
  }

  /** Downloads a payload into the store (one run per payload at a time). */
  get(payloadId: string, onProgress?: (p: Progress) => void): Promise<DownloadResult> {
    // Every caller gets the progress, also one that joins a running download.
    if (onProgress) {
      let set = this.#progress.get(payloadId);
      if (!set) this.#progress.set(payloadId, set = new Set());
      set.add(onProgress);
    }
    const running = this.#downloads.get(payloadId);
    if (running) return running;
    const run = (async () => {
      const m = await this.manifest(payloadId);
      this.log.record("download.start", { payloadId, size: m.size, chunks: m.chunks.length });
      try {
        const res = await download({
          payloadId,
          manifest: m,
          store: this.store,
          findSources: () => this.sources(payloadId, m),
          onProgress: (p) => {
            for (const f of this.#progress.get(payloadId) ?? []) f(p);
          },
          onChunk: (index, source) =>
            this.log.record("chunk.received", { from: source, payloadId, index, via: "download" }),
          onDrop: (source, reason) =>
            this.log.record("download.drop", { payloadId, source, reason }),
          signal: this.#abort.signal,
        });
        this.log.record("download.done", {
          payloadId,
          bytes: res.bytes,
          seconds: Math.round(res.seconds * 1000) / 1000,
          resumed: res.resumed,
          chunksBySource: res.chunksBySource,
        });
        return res;
      } catch (err) {
        this.log.record("download.fail", { payloadId, message: (err as Error).message });
        throw err;
      }
    })();
    this.#downloads.set(payloadId, run);
    run.finally(() => {
      this.#downloads.delete(payloadId);
      this.#progress.delete(payloadId);
    }).catch(() => undefined);
    return run;
  }

  /** Who holds which chunk positions: this peer, the tracker's holders, known peers. */
  async where(payloadId: string): Promise<{ chunks: number; rows: WhereRow[] }> {
    const m = await this.manifest(payloadId);
    const n = m.chunks.length;
    const rows = new Map<string, WhereRow>();
    const add = (
      peerId: string,
      name: string | undefined,
      address: string,
      bits: Uint8Array,
      via: string,
    ) => {
      if (!rows.has(peerId)) {
        rows.set(peerId, {
          peerId,
          ...(name ? { name } : {}),
          address,
          have: toHex(bits),
          count: bitfieldCount(bits, n),
          via,
        });
      }
    };
    add(
      this.identity.peerId,
      this.opts.name,
      `${this.opts.host}:${this.chunkPort}`,
      this.store.have(payloadId),
      "self",
    );
    for (const s of await this.sources(payloadId, m)) {
      const known = this.table.get(s.id);
      add(
        s.id,
        known?.name,
        known ? `${known.host}:${known.ports.chunk}` : this.tracker?.url ?? "",
        s.have,
        s.id === "tracker" ? "tracker" : "HAVE?",
      );
    }
    return { chunks: n, rows: [...rows.values()] };
  }

  /** The log of another peer, asked over TCP with LOG?. */
  async remoteLog(
    peerId: string,
    since?: number,
    limit = 100,
    type?: string,
  ): Promise<Record<string, unknown>[]> {
    const p = this.table.get(peerId);
    if (!p) {
      throw new RangeError(`Unknown peer '${peerId}': not in this peer's table (see p2p peers)`);
    }
    const c = await this.connect(p.host, p.ports.chunk);
    const header = { limit, ...(since === undefined ? {} : { since }), ...(type ? { type } : {}) };
    const res = await c.request({ type: "LOG_REQ", header }, { timeoutMs: 5000 });
    if (res.type !== "LOG") throw new ProtocolError("unexpected", `Expected LOG, got ${res.type}`);
    return res.header.records;
  }

  /**
   * The payloads known on the network: those held here, those each live known peer
   * holds (asked over HTTP on its control API, 1.5 s each, all at once) and those the
   * tracker lists. Peers that do not answer are listed in `errors`.
   */
  async networkPayloads(): Promise<{
    payloads: NetworkPayload[];
    errors: { source: string; message: string }[];
  }> {
    const byId = new Map<string, NetworkPayload>();
    const errors: { source: string; message: string }[] = [];
    const add = (
      p: { payloadId: string; size: number; chunks: number; name?: string },
      holder?: NetworkPayload["holders"][number],
    ) => {
      let e = byId.get(p.payloadId);
      if (!e) {
        e = { payloadId: p.payloadId, size: p.size, chunks: p.chunks, holders: [] };
        byId.set(p.payloadId, e);
      }
      if (p.name && !e.name) e.name = p.name;
      if (holder) e.holders.push(holder);
    };
    for (const p of this.store.list()) {
      add(p, {
        peerId: this.identity.peerId,
        name: this.opts.name,
        held: p.held,
        complete: p.complete,
      });
    }
    const peers = this.table.list().filter((p) => p.failures === 0 && p.ports.http).slice(0, 32);
    await Promise.all([
      ...peers.map(async (peer) => {
        try {
          const host = peer.host.includes(":") ? `[${peer.host}]` : peer.host;
          const res = await fetch(`http://${host}:${peer.ports.http}/_p2p/payloads`, {
            signal: AbortSignal.any([AbortSignal.timeout(1500), this.#abort.signal]),
          });
          if (!res.ok) {
            await res.body?.cancel();
            throw new Error(`HTTP ${res.status}`);
          }
          const list = RemotePayloadList.parse(await res.json());
          for (const p of list.payloads) {
            add(p, { peerId: peer.peerId, name: peer.name, held: p.held, complete: p.complete });
          }
        } catch (err) {
          errors.push({ source: peer.peerId, message: (err as Error).message });
        }
      }),
      (async () => {
        if (!this.tracker) return;
        try {
          for (const p of (await this.tracker.payloads()).payloads) add(p);
        } catch (err) {
          errors.push({ source: "tracker", message: (err as Error).message });
        }
      })(),
    ]);
    const payloads = [...byId.values()].sort((a, b) =>
      b.holders.length - a.holders.length || a.payloadId.localeCompare(b.payloadId)
    );
    return { payloads, errors };
  }

  /** A summary for `p2p status`. */
  status(): Record<string, unknown> {
    const payloads = this.store.list();
    return {
      peerId: this.identity.peerId,
      name: this.opts.name,
      version: VERSION,
      ports: this.ports(),
      host: this.opts.host,
      dataDir: this.opts.dataDir,
      tracker: this.tracker ? { url: this.tracker.url, ...this.#trackerState } : null,
      payloads: payloads.length,
      completePayloads: payloads.filter((p) => p.complete).length,
      storedBytes: payloads.reduce((a, p) => a + Math.min(p.size, p.held * CHUNK_SIZE), 0),
      knownPeers: this.table.list().length,
      connections: this.#service.connections.size + this.#pool.size,
      downloads: [...this.#downloads.keys()],
      ...(this.httpStats ? { http: this.httpStats() } : {}),
      memory: (({ rss, heapUsed, external }) => ({ rss, heapUsed, external }))(Deno.memoryUsage()),
    };
  }

  /**
   * Stops: no new connections, in-flight transfers get `graceMs`, the tracker is told
   * we leave, then files and KV close. Idempotent.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    clearTimeout(this.#announceTimer);
    await this.#service.stop(graceMs);
    this.#abort.abort(new Error("peer is stopping"));
    for (const c of this.#pool.values()) {
      c.then((conn) => conn.close("peer stopping"), () => undefined);
    }
    await Promise.allSettled([...this.#pool.values()].map((c) => c.then((conn) => conn.closed)));
    if (this.tracker) {
      await this.tracker.unregister(this.identity.peerId).catch((err) =>
        this.log.record("tracker.error", { during: "unregister", message: String(err) })
      );
    }
    await Promise.allSettled([...this.#downloads.values(), this.#spreading]);
    this.log.record("peer.stop", { peerId: this.identity.peerId });
    this.store.close();
    this.log.close();
    this.#kv.close();
  }
}

const closeSignals = new WeakMap<PeerConnection, AbortSignal>();

/** A signal that aborts when the connection closes. */
function closedSignal(conn: PeerConnection): AbortSignal {
  let signal = closeSignals.get(conn);
  if (!signal) {
    const ctrl = new AbortController();
    conn.closed.then(() => ctrl.abort(new Error("connection closed")));
    signal = ctrl.signal;
    closeSignals.set(conn, signal);
  }
  return signal;
}

/** A MANIFEST message for a manifest. */
function manifestMessage(
  requestId: number,
  payloadId: string,
  m: Manifest,
  name?: string,
): MessageInit {
  const body = new Uint8Array(m.chunks.length * 32);
  m.chunks.forEach((h, i) => body.set(fromHex(h), i * 32));
  return {
    type: "MANIFEST",
    requestId,
    header: { payloadId, size: m.size, chunkSize: m.chunkSize, ...(name ? { name } : {}) },
    body,
  };
}

/** The manifest carried by a MANIFEST answer. */
function manifestFrom(res: Message): Manifest {
  if (res.type !== "MANIFEST") {
    throw new ProtocolError("unexpected", `Expected MANIFEST, got ${res.type}`);
  }
  const chunks: string[] = [];
  for (let i = 0; i < res.body.length; i += 32) chunks.push(toHex(res.body.subarray(i, i + 32)));
  return { size: res.header.size, chunkSize: res.header.chunkSize, chunks };
}

/** Rendezvous (highest random weight) score of a peer for one chunk: FNV-1a, 32 bits. */
export function rendezvous(payloadId: string, index: number, peerId: string): number {
  let h = 0x811c9dc5;
  const s = `${payloadId}:${index}:${peerId}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche so nearby inputs spread.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

export type { PeerSource };
