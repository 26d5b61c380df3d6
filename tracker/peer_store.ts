/**
 * The tracker's peers in Deno KV, and in memory for reads. Key layout:
 *
 * ```text
 * ["peer", peerId]            PeerRow (expiresAt checked on every read)
 * ["addr", "host:port"]       peerId: the index that keeps (host, port) unique
 * ```
 *
 * Reads are served from memory; every write checks the KV versionstamps it read, so
 * a change made behind this process's back fails the commit, reloads the keys and
 * retries. Writes go through a group commit (`group_commit.ts`): heartbeats arriving
 * together share one atomic commit, and each is answered only once that commit is in.
 * What `GET /peers` answers is kept ready by a `PeerListing` (`peer_listing.ts`), told
 * of every row written or removed here.
 *
 * @module
 */
import type { ActivityLog } from "./activity.ts";
import { randomPeerId } from "../proto/ids.ts";
import type { PeerPorts, RegisterPeerRequest } from "../proto/tracker.ts";
import { ForbiddenError, P2pError } from "../proto/errors.ts";
import { staleRecord } from "./identity.ts";
import { hostPort } from "../lib/net_addr.ts";
import { GroupCommit, type GroupCommitOptions } from "./group_commit.ts";
import { optionalPeerFields, PeerListing } from "./peer_listing.ts";

export const MAX_RETRIES = 32;
/** Expired peers removed at once by one sweep (their removals share group commits). */
const EXPIRE_AT_ONCE = 256;

/** A registered peer; times are ms since the epoch. */
export interface PeerRow {
  peerId: string;
  host: string;
  port: number;
  name?: string;
  ports?: PeerPorts;
  publicKey?: string;
  version?: string;
  /** The record as the peer signed it (rows of older trackers have none). */
  record?: RegisterPeerRequest;
  registeredAt: number;
  lastSeen: number;
  expiresAt: number;
}

/** A KV entry as read, or absent (`versionstamp` null): what an atomic check needs. */
type Entry<T> = { key: Deno.KvKey; value: T | null; versionstamp: string | null };

/** Raised when a write lost its race too many times in a row: `503 busy`, try again. */
export class ContentionError extends P2pError {
  constructor(message: string) {
    super("busy", message, { status: 503 });
  }
}

/** What `registerPeer()` is asked to store. */
export interface Registration {
  host: string;
  port: number;
  peerId?: string;
  name?: string;
  ports?: PeerPorts;
  publicKey?: string;
  version?: string;
  /** The signed record (its signature already checked); its `signedAt` must be the newest. */
  record?: RegisterPeerRequest;
  /**
   * Whether this registration may take the address over from another live peer: only
   * a caller at that host may (a peer restarted there with a new identity), so a
   * stranger cannot push a peer out of the list by claiming its address.
   */
  mayEvict?: boolean;
}

/** Options of the store's peer part. */
export interface PeerStoreOptions {
  /** How stale a listed `lastSeen` may be (`PeerListing`). */
  listingCoarseMs?: number;
  /** Group commit settings. */
  commit?: GroupCommitOptions;
}

/** The peer part of the tracker's store (`TrackerStore` adds payloads). */
export class PeerStore {
  readonly kv: Deno.Kv;
  protected readonly clock: () => number;
  protected readonly activity: ActivityLog;
  /** What `GET /peers` answers. */
  readonly listing: PeerListing;
  /** The group commit of peer writes (its `stats` count commits). */
  readonly commits: GroupCommit;
  readonly #locks = new KeyedLock();
  /** The peer index, with the versionstamps last read or written. */
  readonly #peers = new Map<string, Deno.KvEntry<PeerRow>>();
  readonly #addrs = new Map<string, Deno.KvEntry<string>>();

  constructor(
    kv: Deno.Kv,
    activity: ActivityLog,
    clock: () => number = Date.now,
    opts: PeerStoreOptions = {},
  ) {
    this.kv = kv;
    this.activity = activity;
    this.clock = clock;
    this.listing = new PeerListing({ clock, coarseMs: opts.listingCoarseMs });
    this.commits = new GroupCommit(kv, opts.commit);
  }

  /** Loads the peer index into memory. */
  protected async loadPeers(): Promise<void> {
    this.#peers.clear();
    this.#addrs.clear();
    for await (const e of this.kv.list<PeerRow>({ prefix: ["peer"] })) {
      this.#peers.set(e.key[1] as string, e);
    }
    for await (const e of this.kv.list<string>({ prefix: ["addr"] })) {
      this.#addrs.set(e.key[1] as string, e);
    }
    this.listing.reset([...this.#peers.values()].map((e) => e.value));
  }

  #live(row: PeerRow | null): row is PeerRow {
    return row !== null && row.expiresAt > this.clock();
  }

  /** Keeps a peer entry read or written, and tells the listing. */
  #keepPeer(e: Entry<PeerRow>): void {
    const id = e.key[1] as string;
    if (e.versionstamp === null || e.value === null) {
      this.#peers.delete(id);
      this.listing.remove(id);
    } else {
      this.#peers.set(id, e as Deno.KvEntry<PeerRow>);
      this.listing.put(e.value);
    }
  }

  /** The cached entry, or on a miss what KV holds now (another writer may have added it). */
  async #peerEntry(peerId: string): Promise<Entry<PeerRow>> {
    const hit = this.#peers.get(peerId);
    if (hit) return hit;
    const e = await this.kv.get<PeerRow>(["peer", peerId]);
    if (e.versionstamp !== null) this.#keepPeer(e);
    return e;
  }

  /** The cached entry, or on a miss what KV holds now. */
  async #addrEntry(addr: string): Promise<Entry<string>> {
    const hit = this.#addrs.get(addr);
    if (hit) return hit;
    const e = await this.kv.get<string>(["addr", addr]);
    if (e.versionstamp !== null) this.#addrs.set(addr, e as Deno.KvEntry<string>);
    return e;
  }

  /** Re-reads index keys from KV after a commit lost to another writer. */
  async #reload(keys: Deno.KvKey[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 10) {
      for (const e of await this.kv.getMany<unknown[]>(keys.slice(i, i + 10))) {
        const [kind, id] = e.key as [string, string];
        if (kind === "peer") this.#keepPeer(e as Entry<PeerRow>);
        else if (e.versionstamp === null) this.#addrs.delete(id);
        else this.#addrs.set(id, e as Deno.KvEntry<string>);
      }
    }
  }

  /**
   * Registers a peer or refreshes it. A (host, port) pair maps to one peerId only:
   * registering it again, however many callers race, refreshes the same entry.
   * A registration that names another peerId for a taken address takes it over when
   * `mayEvict`, and is refused (`403 address_taken`) otherwise. A signed record must be
   * later than the one stored (`409 stale_record`) and carry the same key (`403`).
   * Resolves once the write is committed.
   */
  registerPeer(reg: Registration, ttlMs: number): Promise<{ row: PeerRow; created: boolean }> {
    const addr = addrKey(reg.host, reg.port);
    // Registrations of one address queue up in this process, so racing callers do not
    // spin on failed commits; the atomic checks keep the rule across processes too.
    return this.#locks.run(addr, () => this.#register(addr, reg, ttlMs));
  }

  async #register(
    addr: string,
    reg: Registration,
    ttlMs: number,
  ): Promise<{ row: PeerRow; created: boolean }> {
    const expireIn = ttlMs * 2 + 60_000;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const now = this.clock();
      const addrEntry = await this.#addrEntry(addr);
      const holder = addrEntry.value === null ? null : await this.#peerEntry(addrEntry.value);
      const holderLive = holder !== null && this.#live(holder.value);
      const peerId = reg.peerId ?? (holderLive ? holder.value!.peerId : randomPeerId());
      const target = await this.#peerEntry(peerId);
      const checks: Entry<unknown>[] = [addrEntry, target];
      const deletes: Deno.KvKey[] = [];
      const touched: Deno.KvKey[] = [addrEntry.key, target.key];
      if (holder) touched.push(holder.key);
      const prev = this.#live(target.value) ? target.value : null;
      const stored = target.value;
      if (stored?.publicKey !== undefined && reg.publicKey !== stored.publicKey) {
        throw new ForbiddenError(
          "key_mismatch",
          `Cannot register peer '${peerId}': it registered with another public key`,
        );
      }
      if (reg.record && stored?.record && reg.record.signedAt <= stored.record.signedAt) {
        throw staleRecord(
          `registration of '${peerId}'`,
          reg.record.signedAt,
          stored.record.signedAt,
        );
      }
      // The address belonged to another live peer: that entry goes.
      const evicted = holderLive && holder.value!.peerId !== peerId ? holder : null;
      if (evicted && reg.mayEvict === false) {
        throw new ForbiddenError(
          "address_taken",
          `Cannot register peer '${peerId}' at '${addr}': another live peer holds that ` +
            "address; only a caller at that host may take it over",
        );
      }
      if (evicted) checks.push(evicted), deletes.push(evicted.key), touched.push(evicted.key);
      // This peer moved from another address: its old index entry goes.
      let vacated: Entry<string> | null = null;
      if (prev && addrKey(prev.host, prev.port) !== addr) {
        const old = await this.#addrEntry(addrKey(prev.host, prev.port));
        if (old.value === peerId) {
          vacated = old;
          checks.push(old), deletes.push(old.key), touched.push(old.key);
        }
      }
      const row: PeerRow = {
        peerId,
        host: reg.host,
        port: reg.port,
        ...optionalPeerFields(reg),
        registeredAt: prev?.registeredAt ?? now,
        lastSeen: now,
        expiresAt: now + ttlMs,
      };
      const created = prev === null || addrKey(prev.host, prev.port) !== addr;
      const res = await this.commits.commit({
        keys: touched,
        checks: checks.length,
        mutations: deletes.length + 3,
        bytes: 2048,
        build: (op) => {
          for (const c of checks) op.check(c);
          for (const k of deletes) op.delete(k);
          op.set(target.key, row, { expireIn }).set(addrEntry.key, peerId, { expireIn });
          return this.activity.stage(op, created ? "peer.register" : "peer.heartbeat", {
            peerId,
            host: reg.host,
            port: reg.port,
            ...(reg.name ? { name: reg.name } : {}),
          });
        },
      });
      if (res.ok) {
        this.activity.committed(res.value);
        if (evicted) this.#keepPeer({ key: evicted.key, value: null, versionstamp: null });
        if (vacated) this.#addrs.delete(vacated.key[1] as string);
        this.#keepPeer({ key: target.key, value: row, versionstamp: res.versionstamp });
        this.#addrs.set(addr, {
          key: addrEntry.key,
          value: peerId,
          versionstamp: res.versionstamp,
        });
        return { row, created };
      }
      await this.#reload(touched);
    }
    throw new ContentionError(`Cannot register peer '${addr}': too many concurrent writes`);
  }

  /** The store's clock (ms since the epoch). */
  now(): number {
    return this.clock();
  }

  /** A live peer by id, or null. */
  getPeer(peerId: string): Promise<PeerRow | null> {
    const row = this.#peers.get(peerId)?.value ?? null;
    return Promise.resolve(this.#live(row) ? row : null);
  }

  /** Every live peer, oldest registration first. */
  listPeers(): Promise<PeerRow[]> {
    const out: PeerRow[] = [];
    for (const e of this.#peers.values()) if (this.#live(e.value)) out.push(e.value);
    return Promise.resolve(out.sort((a, b) => a.registeredAt - b.registeredAt));
  }

  /** How many live peers there are. */
  livePeers(): number {
    let n = 0;
    for (const e of this.#peers.values()) if (this.#live(e.value)) n++;
    return n;
  }

  /**
   * Removes a live peer; false when there is none with that id. `allow` sees the row
   * first and may throw to refuse (a removal must be signed later than the record).
   */
  async removePeer(
    peerId: string,
    reason: "peer.remove" | "peer.expire",
    allow?: (row: PeerRow) => void,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const e = await this.#peerEntry(peerId);
      if (e.value === null) return false;
      if (reason === "peer.remove" && !this.#live(e.value)) return false;
      if (reason === "peer.expire" && this.#live(e.value)) return false;
      allow?.(e.value);
      const { host, port } = e.value;
      const addr = await this.#addrEntry(addrKey(host, port));
      const ownsAddr = addr.value === peerId;
      const res = await this.commits.commit({
        keys: [e.key, addr.key],
        checks: ownsAddr ? 2 : 1,
        mutations: ownsAddr ? 3 : 2,
        bytes: 512,
        build: (op) => {
          op.check(e).delete(e.key);
          if (ownsAddr) op.check(addr).delete(addr.key);
          return this.activity.stage(op, reason, { peerId, host, port });
        },
      });
      if (res.ok) {
        this.activity.committed(res.value);
        this.#keepPeer({ key: e.key, value: null, versionstamp: null });
        if (ownsAddr) this.#addrs.delete(addr.key[1] as string);
        return true;
      }
      await this.#reload([e.key, addr.key]);
    }
    throw new ContentionError(`Cannot remove peer '${peerId}': too many concurrent writes`);
  }

  /** Removes every peer whose time ran out, with a `peer.expire` record each; returns how many. */
  async expirePeers(): Promise<number> {
    const now = this.clock();
    const expired = [...this.#peers.values()].filter((e) => e.value.expiresAt <= now);
    let n = 0;
    for (let i = 0; i < expired.length; i += EXPIRE_AT_ONCE) {
      const done = await Promise.all(
        expired.slice(i, i + EXPIRE_AT_ONCE).map((e) =>
          this.removePeer(e.value.peerId, "peer.expire")
        ),
      );
      n += done.filter(Boolean).length;
    }
    return n;
  }
}

/** The unique-address key of a (host, port) pair. */
export function addrKey(host: string, port: number): string {
  return hostPort(host, port);
}

/** Runs async functions one at a time per key. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
