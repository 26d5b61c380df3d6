/**
 * The peer's side of the tracker: a heartbeat that registers the peer (every
 * `heartbeatMs`, at least three times per the tracker's TTL; backing off 1, 2, 4 … 30
 * s while the tracker fails), takes the peers the tracker lists into the table and
 * flushes the announce queue. The first beat asks for a sample of `NUMWANT` live
 * peers; each later one passes the `version` of the last answer and gets only the
 * peers that changed since and the ids of those gone, so a heartbeat costs the same
 * in a network of 10,000 peers as in one of 100 (`PeerList` in `proto/tracker.ts`).
 * The ids learned so far (at most `MAX_LIVE`) are this peer's view of the network.
 *
 * Also here: the announce queue, which coalesces the chunks of one burst into one
 * announcement per payload (published first), kept for the next heartbeat when the
 * tracker fails; withdrawals, which tell the tracker (signed) that this peer holds no
 * chunk of a payload it removed, queued and retried alike; and the spreading of
 * payloads uploaded to the tracker: the `replicas` peers of the view ranked highest
 * by rendezvous fetch each one.
 *
 * A listed peer is taken into the table only when its registration, as the tracker
 * passes it on, is signed by that peer (`verifyRegistration()`): a tracker cannot
 * make up peers or move them, and an address is still only learned, not trusted.
 *
 * @module
 */
import type { ChunkStore } from "./chunk_store.ts";
import type { PeerLog } from "./activity.ts";
import type { PeerTable } from "./peer_table.ts";
import type { Scheduler } from "./scheduler.ts";
import { type TrackerClient, TrackerError, type UnsignedRegistration } from "./tracker_client.ts";
import { rankByRendezvous } from "./replication.ts";
import { errorMessage } from "../proto/errors.ts";
import type { PeerInfo } from "../proto/tracker.ts";
import { verifyRegistration } from "../proto/tracker_auth.ts";

/** Wait before an announcement goes out, so one burst of chunks makes one call. */
const COALESCE_MS = 50;
/** Longest wait between tries while the tracker fails. */
const MAX_BACKOFF_MS = 30_000;
/** Peers asked of the tracker at a time. */
export const NUMWANT = 50;
/** Live peers this peer keeps in its view of the network (the oldest learned go first). */
export const MAX_LIVE = 1024;

/** How the tracker was doing lately, for `status()`. */
export interface TrackerState {
  ok: boolean;
  lastError?: string;
  /** ms since the epoch. */
  lastContact?: number;
}

/** What tracker sync needs of its neighbours. */
export interface TrackerSyncDeps {
  tracker: Pick<
    TrackerClient,
    | "url"
    | "register"
    | "listPeers"
    | "publish"
    | "announce"
    | "withdraw"
    | "payloads"
    | "unregister"
  >;
  /** This peer's registration (its id, name, ports, version, host); the client signs it. */
  registration: UnsignedRegistration & { peerId: string };
  store: Pick<ChunkStore, "list" | "getManifest" | "payload" | "have">;
  table: Pick<PeerTable, "upsert">;
  log: Pick<PeerLog, "record">;
  scheduler: Pick<Scheduler, "later" | "loop" | "stopped">;
  /** Heartbeat period (default 20 s). */
  heartbeatMs?: number;
  /** Copies kept of each tracker upload on the network; 0: none fetched. */
  replicas: number;
  /** Downloads a payload into the store. */
  fetch: (payloadId: string) => Promise<unknown>;
}

/**
 * Whether a listed peer comes with its own signed registration, matching what the
 * tracker says of it (its id, its key, and its host when the peer signed one).
 */
async function signedByItself(p: PeerInfo): Promise<boolean> {
  const r = p.record;
  if (!r || r.peerId !== p.peerId || r.port !== p.port) return false;
  if (p.publicKey !== undefined && p.publicKey !== r.publicKey) return false;
  if (r.host !== undefined && r.host !== p.host && r.host !== "0.0.0.0" && r.host !== "::") {
    return false;
  }
  return await verifyRegistration(r);
}

/** Heartbeats, announcements and spreading of tracker uploads. */
export class TrackerSync {
  readonly #deps: TrackerSyncDeps;
  readonly #announce = new Set<string>();
  /** Payloads removed here, whose holder entry the tracker is still to drop. */
  readonly #withdraw = new Set<string>();
  readonly #published = new Set<string>();
  #flushQueued = false;
  #failures = 0;
  #state: TrackerState = { ok: false };
  #spreading: Promise<void> | undefined;
  /** The `version` of the tracker's last listing, for the next `since`. */
  #version: number | undefined;
  /** The live peers learned from the tracker, oldest first. */
  readonly #live = new Set<string>();

  constructor(deps: TrackerSyncDeps) {
    this.#deps = deps;
  }

  /** The tracker's URL and how it was doing lately. */
  get state(): { url: string } & TrackerState {
    return { url: this.#deps.tracker.url, ...this.#state };
  }

  /** Starts the heartbeat (first beat at once). */
  start(): void {
    this.#deps.scheduler.loop(0, () => this.beat());
  }

  /** Queues a payload for announcement; a burst of calls makes one flush. */
  queue(payloadId: string): void {
    this.#withdraw.delete(payloadId);
    this.#announce.add(payloadId);
    this.#schedule();
  }

  /**
   * Queues a payload removed from the store: the tracker is told that this peer
   * holds none of its chunks, so it no longer lists it as a holder.
   */
  withdraw(payloadId: string): void {
    this.#announce.delete(payloadId);
    this.#withdraw.add(payloadId);
    this.#schedule();
  }

  /** One flush soon for everything queued meanwhile. */
  #schedule(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    this.#deps.scheduler.later(COALESCE_MS, async () => {
      this.#flushQueued = false;
      await this.flush().catch((err) =>
        this.#deps.log.record("tracker.error", { message: String(err) })
      );
    });
  }

  /** One heartbeat; resolves to the delay until the next one. */
  async beat(): Promise<number> {
    const { tracker, table, store, log } = this.#deps;
    let next = this.#deps.heartbeatMs ?? 20_000;
    try {
      const res = await tracker.register(this.#deps.registration);
      if (!this.#state.ok || this.#failures > 0) {
        log.record("tracker.register", { url: tracker.url, created: res.created });
      }
      this.#state = { ok: true, lastContact: Date.now() };
      next = Math.min(next, res.ttlSeconds * 1000 / 3);
      const list = await tracker.listPeers({ numwant: NUMWANT, since: this.#version });
      // A sample (or an older tracker's whole list) starts the view anew.
      if (list.kind !== "changes") this.#live.clear();
      for (const id of list.removed ?? []) this.#live.delete(id);
      let dropped = 0;
      for (const p of list.peers) {
        // Every listed id counts for rendezvous, as the tracker lists it to all.
        this.#live.delete(p.peerId);
        this.#live.add(p.peerId);
        if (!await signedByItself(p)) {
          dropped++;
          continue;
        }
        await table.upsert({
          peerId: p.peerId,
          host: p.host,
          ports: { chunk: p.port, ...p.ports },
          name: p.name,
          publicKey: p.publicKey,
        }, "tracker");
      }
      for (const id of this.#live) {
        if (this.#live.size <= MAX_LIVE) break;
        this.#live.delete(id);
      }
      this.#version = list.version;
      if (dropped > 0) log.record("tracker.unsigned", { url: tracker.url, dropped });
      // After an outage (or at first contact), everything held is announced again.
      if (this.#failures > 0 || this.#published.size === 0) {
        for (const p of store.list()) this.#announce.add(p.payloadId);
      }
      await this.flush();
      this.#spread([...this.#live]);
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      next = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.#failures - 1));
      this.#state = { ...this.#state, ok: false, lastError: errorMessage(err) };
      log.record("tracker.error", {
        url: tracker.url,
        message: errorMessage(err),
        retryInMs: next,
      });
    }
    return next;
  }

  /**
   * Sends the queued withdrawals, then publishes (once) and announces every queued
   * payload; stops at the first failure.
   */
  async flush(): Promise<void> {
    const { tracker, store, log } = this.#deps;
    if (this.#deps.scheduler.stopped) return;
    for (const payloadId of [...this.#withdraw]) {
      this.#withdraw.delete(payloadId);
      // Held again meanwhile: its announcement says what it holds.
      if (store.getManifest(payloadId)) continue;
      try {
        await tracker.withdraw(payloadId, this.#deps.registration.peerId);
        this.#published.delete(payloadId);
        log.record("tracker.withdraw", { payloadId });
      } catch (err) {
        // A payload the tracker never knew has no holder entry there to drop.
        if (err instanceof TrackerError && err.code === "unknown_payload") continue;
        this.#withdraw.add(payloadId);
        if (err instanceof TrackerError && err.code === "unknown_peer") this.#state.ok = false;
        log.record("tracker.error", { during: "withdraw", payloadId, message: errorMessage(err) });
        return;
      }
    }
    for (const payloadId of [...this.#announce]) {
      const m = store.getManifest(payloadId);
      if (!m) {
        this.#announce.delete(payloadId);
        continue;
      }
      try {
        if (!this.#published.has(payloadId)) {
          await tracker.publish(payloadId, m, store.payload(payloadId)?.name);
          this.#published.add(payloadId);
        }
        const bits = store.have(payloadId);
        this.#announce.delete(payloadId);
        const res = await tracker.announce(payloadId, this.#deps.registration.peerId, bits);
        log.record("tracker.announce", { payloadId, count: res.count });
      } catch (err) {
        // Kept in the queue (taken out just before announcing, so that chunks stored
        // meanwhile queue it again): retried with the next heartbeat.
        this.#announce.add(payloadId);
        if (err instanceof TrackerError && err.code === "unknown_peer") this.#state.ok = false;
        log.record("tracker.error", { during: "announce", payloadId, message: errorMessage(err) });
        return;
      }
    }
  }

  /**
   * Payloads uploaded to the tracker are spread to peers like a `put`: for each
   * payload whose bytes the tracker keeps, the `replicas` live peers ranked highest
   * by rendezvous hashing fetch it. Runs one download at a time in the background.
   */
  #spread(livePeerIds: string[]): void {
    const { tracker, store, log, replicas, scheduler } = this.#deps;
    if (this.#spreading || replicas <= 0) return;
    const self = this.#deps.registration.peerId;
    const ids = livePeerIds.includes(self) ? livePeerIds : [...livePeerIds, self];
    this.#spreading = (async () => {
      const page = await tracker.payloads();
      for (const p of page.payloads) {
        if (scheduler.stopped) break;
        if (!p.stored || store.payload(p.payloadId)?.complete) continue;
        const chosen = rankByRendezvous(p.payloadId, -1, ids, (id) => id).slice(0, replicas);
        if (!chosen.includes(self)) continue;
        log.record("replicate.pull", { payloadId: p.payloadId, size: p.size, from: "tracker" });
        await this.#deps.fetch(p.payloadId).catch(() => undefined);
      }
    })().catch((err) => {
      log.record("tracker.error", { during: "spread", message: errorMessage(err) });
    }).finally(() => {
      this.#spreading = undefined;
    });
  }

  /** Tells the tracker this peer leaves, then waits for the spreading under way to end. */
  async stop(): Promise<void> {
    await this.#deps.tracker.unregister(this.#deps.registration.peerId).catch((err) =>
      this.#deps.log.record("tracker.error", { during: "unregister", message: String(err) })
    );
    await this.#spreading;
  }
}
