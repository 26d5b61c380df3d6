/**
 * A running peer, the composition root of its parts: it builds them from the opened
 * data directory and the ports bound for it, starts the chunk service and the
 * background loops, reports status and stops everything in order. The parts:
 * `request_handler.ts` (answers to wire requests), `pool.ts` (connections),
 * `scheduler.ts` (every background timer), `tracker_sync.ts` (heartbeat, announce
 * queue, spreading of tracker uploads), `exchange.ts` (seeds, peer exchange),
 * `replication.ts` (`put()`, rendezvous placement), `sourcing.ts` (manifests,
 * sources, `where()`), `downloads.ts` (`get()`), `lan_scan.ts` (`discover()`) and
 * `catalogue.ts` (`networkPayloads()`, `remoteLog()`).
 *
 * Every link, inbound (`service.ts`) or outbound (`pool.ts`), is TLS with the other
 * side's identity and the network key proven (`link_tls.ts`, `proto/link_auth.ts`),
 * or plaintext on loopback with `--insecure-plaintext`. The control API (`control.ts`)
 * and the CLI drive the node; `server.ts` binds the ports and starts it.
 *
 * @module
 */
import type { PeerLog } from "./activity.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { type ChunkService, createChunkService } from "./service.ts";
import { recordServiceEvent } from "./service_events.ts";
import type { DownloadResult, Progress } from "./downloader.ts";
import type { Identity } from "./identity.ts";
import type { PeerTable } from "./peer_table.ts";
import { RateLimiter } from "./rate_limit.ts";
import { TrackerClient } from "./tracker_client.ts";
import { createRequestHandler } from "./request_handler.ts";
import { HttpTunnels, openHttpTunnel } from "./http_tunnel.ts";
import { ConnectionPool } from "./pool.ts";
import { Scheduler } from "./scheduler.ts";
import { TrackerSync } from "./tracker_sync.ts";
import { PeerExchange, selfRecord } from "./exchange.ts";
import { Replication } from "./replication.ts";
import { Sourcing } from "./sourcing.ts";
import { Downloads } from "./downloads.ts";
import { LanScan } from "./lan_scan.ts";
import { NetworkCatalogue } from "./catalogue.ts";
import type { ActivityRecord } from "../proto/activity.ts";
import type {
  NetworkPayloadsAnswer,
  PutProgress,
  PutResult,
  StatusAnswer,
  WhereAnswer,
} from "../proto/control.ts";
import type { DiscoveryReport, ScanProgress } from "../proto/discovery.ts";
import { errorMessage } from "../proto/errors.ts";
import { CHUNK_SIZE } from "../proto/manifest.ts";
import type { HelloHeader, WirePorts } from "../proto/messages.ts";
import { hostPort, isWildcard } from "../lib/net_addr.ts";
import { VERSION } from "../version.ts";
import type { PeerOptions, PeerWiring } from "./options.ts";

export type { PeerOptions, PeerWiring };

/** A running peer. Create with `PeerNode.start()`. */
export class PeerNode {
  readonly opts: PeerOptions;
  readonly identity: Identity;
  readonly store: ChunkStore;
  readonly log: PeerLog;
  readonly table: PeerTable;
  readonly #wiring: PeerWiring;
  readonly #ports: WirePorts;
  readonly #abort = new AbortController();
  readonly #scheduler: Scheduler;
  readonly #service: ChunkService;
  readonly #pool: ConnectionPool;
  readonly #tracker?: TrackerSync;
  readonly #exchange: PeerExchange;
  readonly #replication: Replication;
  readonly #sourcing: Sourcing;
  readonly #downloads: Downloads;
  readonly #scan: LanScan;
  readonly #catalogue: NetworkCatalogue;
  #stopping: Promise<void> | undefined;

  private constructor(opts: PeerOptions, wiring: PeerWiring) {
    const { identity, log, store, table } = wiring.data;
    this.opts = opts;
    this.identity = identity;
    this.log = log;
    this.store = store;
    this.table = table;
    this.#wiring = wiring;
    const chunk = wiring.chunkListener.addr.port;
    const { http, pingback, app } = wiring.ports;
    const ports = Object.entries({ chunk, pingback, http, app }).filter(([, port]) => port);
    const wire = this.#ports = Object.fromEntries(ports) as WirePorts;
    const signal = this.#abort.signal;
    const self = { peerId: identity.peerId, name: opts.name };
    const host = isWildcard(opts.host) ? {} : { host: opts.host };
    const { publicKey } = identity;
    const hello: HelloHeader = { ...self, version: VERSION, ports: wire, ...host, publicKey };
    this.#scheduler = new Scheduler((err) => log.record("error", { message: errorMessage(err) }));
    const handler = createRequestHandler({
      store,
      table,
      log,
      signal,
      selfRecord: selfRecord(identity, { host: opts.host, ports: this.#ports, name: opts.name }),
      ...(opts.maxUploadRate ? { uploadLimit: new RateLimiter(opts.maxUploadRate) } : {}),
      ...(wiring.serveHttp ? { tunnels: new HttpTunnels({ serve: wiring.serveHttp, log }) } : {}),
    });
    const link = { sign: identity.sign, networkKey: opts.networkKey };
    const pool = this.#pool = new ConnectionPool({
      hello: () => hello,
      link: { ...link, plaintext: opts.plaintextLoopback },
      handler,
      table,
      log,
      signal,
    });
    const tracker = opts.tracker
      ? new TrackerClient(opts.tracker, { networkKey: opts.networkKey, identity })
      : undefined;
    this.#sourcing = new Sourcing({
      self: { ...self, address: hostPort(opts.host, chunk) },
      store,
      table,
      log,
      tracker,
      pool,
      release: (bytes) => pool.release(bytes),
    });
    this.#downloads = new Downloads({ store, sourcing: this.#sourcing, log, signal });
    if (tracker) {
      this.#tracker = new TrackerSync({
        tracker,
        registration: { ...hello, port: chunk, ports: { chunk, ...(http ? { http } : {}) } },
        store,
        table,
        log,
        scheduler: this.#scheduler,
        heartbeatMs: opts.heartbeatMs,
        replicas: opts.replicas,
        fetch: (payloadId) => this.#downloads.get(payloadId),
      });
    }
    const announce = (payloadId: string) => this.#tracker?.queue(payloadId);
    this.#exchange = new PeerExchange({ seeds: opts.seeds, table, log, pool });
    const replicas = opts.replicas;
    this.#replication = new Replication({ store, table, log, pool, replicas, announce });
    const pingbackPort = opts.scanPingbackPort ?? pingback;
    const meet = (p: Parameters<PeerExchange["meet"]>[0]) => this.#exchange.meet(p);
    this.#scan = new LanScan({
      self: identity.peerId,
      table,
      log,
      pingbackPort,
      signal,
      networkKey: opts.networkKey,
      meet,
    });
    this.#catalogue = new NetworkCatalogue({ self, store, table, tracker, pool, signal });
    this.#service = createChunkService({
      listener: wiring.chunkListener,
      hello: () => hello,
      link: { ...link, plaintextLoopback: opts.plaintextLoopback },
      handler,
      onEvent: (type, fields) => recordServiceEvent(log, type, fields),
      onConnection: (conn) => {
        pool.noteInbound(conn);
        this.#exchange.inbound(conn).catch(() => undefined);
      },
    });
    store.onChunk(announce);
  }

  /** Builds the node over its opened data and bound ports, serves chunks and starts the background work. */
  static start(opts: PeerOptions, wiring: PeerWiring): PeerNode {
    const node = new PeerNode(opts, wiring);
    const { log, store, table } = node;
    log.record("peer.start", {
      peerId: node.identity.peerId,
      name: opts.name,
      ports: node.#ports,
      payloads: store.list().length,
      knownPeers: table.list().length,
    });
    const scheduler = node.#scheduler;
    scheduler.later(0, () => node.#exchange.contactSeeds());
    node.#tracker?.start();
    const exchangeMs = opts.exchangeMs ?? 30_000;
    scheduler.loop(exchangeMs, async () => (await node.#exchange.round(), exchangeMs));
    if (opts.scan !== undefined) {
      scheduler.loop(0, async () => {
        await node.discover(opts.scan || undefined).catch((err) =>
          log.record("discover.error", { message: errorMessage(err) })
        );
        return opts.scanIntervalMs ?? 300_000;
      });
    }
    return node;
  }

  /** Aborts when the node stops: long-running requests (log followers) end with it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The TCP chunk port. */
  get chunkPort(): number {
    return this.#ports.chunk;
  }

  /**
   * The TLS link port (`service.ts`), once it listens: undefined with
   * `--insecure-plaintext` or when it could not be bound.
   */
  get linkTls(): Promise<number | undefined> {
    return this.#service.ready.then(() => this.#service.tlsPort);
  }

  /** The pingback port, when there is a pingback server. */
  get pingbackPort(): number | undefined {
    return this.#ports.pingback;
  }

  /** Stores a payload from a stream, announces it and pushes each chunk to `replicas` peers. */
  put(
    source: ReadableStream<Uint8Array>,
    name?: string,
    onProgress?: (e: PutProgress) => void,
  ): Promise<PutResult> {
    return this.#replication.put(source, name, onProgress);
  }

  /** Downloads a payload into the store (one run per payload at a time). */
  get(payloadId: string, onProgress?: (p: Progress) => void): Promise<DownloadResult> {
    return this.#downloads.get(payloadId, onProgress);
  }

  /** Removes a payload from the store and from the tracker's holders; the bytes freed. */
  async remove(payloadId: string): Promise<number> {
    const freed = await this.store.remove(payloadId);
    this.#tracker?.withdraw(payloadId);
    return freed;
  }

  /** Who holds which chunk positions: this peer, the tracker's holders, known peers. */
  where(payloadId: string): Promise<WhereAnswer> {
    return this.#sourcing.where(payloadId);
  }

  /** A stream to a proven peer's main HTTP server, inside the link to it (`http_tunnel.ts`). */
  openHttpTunnel(peerId: string): Promise<Deno.Conn> {
    return openHttpTunnel({ table: this.table, pool: this.#pool }, peerId, this.signal);
  }

  /** Another peer's log, asked over TCP with LOG?; `NotFoundError` `unknown_peer` when unknown. */
  remoteLog(peerId: string, since?: number, limit = 100, type?: string): Promise<ActivityRecord[]> {
    return this.#catalogue.remoteLog(peerId, since, limit, type);
  }

  /** The payloads known on the network: held here, by live known peers, by the tracker. */
  networkPayloads(): Promise<NetworkPayloadsAnswer> {
    return this.#catalogue.networkPayloads();
  }

  /** Scans a LAN range (none: this machine's subnets) for peers; one scan at a time. */
  discover(range?: string, onProgress?: (p: ScanProgress) => void): Promise<DiscoveryReport> {
    return this.#scan.discover(range, onProgress);
  }

  /** A summary for `p2p status`. */
  status(): StatusAnswer {
    const payloads = this.store.list();
    const stats = this.#wiring.httpStats;
    const { rss, heapUsed, external } = Deno.memoryUsage();
    return {
      peerId: this.identity.peerId,
      name: this.opts.name,
      version: VERSION,
      ports: {
        ...this.#ports,
        ...(this.#service.tlsPort === undefined ? {} : { tls: this.#service.tlsPort }),
      },
      host: this.opts.host,
      dataDir: this.opts.dataDir,
      tracker: this.#tracker?.state ?? null,
      payloads: payloads.length,
      completePayloads: payloads.filter((p) => p.complete).length,
      storedBytes: payloads.reduce((a, p) => a + Math.min(p.size, p.held * CHUNK_SIZE), 0),
      knownPeers: this.table.list().length,
      connections: this.#service.connections.size + this.#pool.size,
      downloads: this.#downloads.running(),
      ...(stats ? { http: stats() } : {}),
      memory: { rss, heapUsed, external },
    };
  }

  /**
   * Stops: no new timers or connections, in-flight transfers get `graceMs`, the
   * tracker is told we leave, then files and KV close. Idempotent.
   */
  stop(graceMs = 5000): Promise<void> {
    this.#stopping ??= (async () => {
      this.#scheduler.stop();
      await this.#service.stop(graceMs);
      this.#abort.abort(new Error("peer is stopping"));
      await this.#pool.close();
      await this.#tracker?.stop();
      await this.#downloads.settled();
      this.log.record("peer.stop", { peerId: this.identity.peerId });
      this.#wiring.data.close();
    })();
    return this.#stopping;
  }
}
