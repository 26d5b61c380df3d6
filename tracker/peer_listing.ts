/**
 * What `GET /peers` answers, kept ready in memory: every listed peer's entry
 * serialized once, a version counter of the peer set, and the log of which peer
 * changed at which version, so that an answer costs the same at 100 peers as at
 * 10,000 (see `PeerList` in `proto/tracker.ts`).
 *
 * - A **change** is a peer that appears, disappears (removed, expired, evicted) or
 *   changes what a listing shows of it (address, ports, name, key, version). It takes
 *   the next version. A heartbeat that changes none of that is not a change: it only
 *   moves the peer's `lastSeen`, which a listing shows to `coarseMs` (its entry is
 *   serialized again when older than that), so polling peers do not rebuild anything.
 * - A **sample** (`numwant` peers at random, or all when there are no more) is joined
 *   from the serialized entries. Answers are kept whole (and gzipped once, for callers
 *   that accept it) until the peer set changes, a listed peer's time runs out or
 *   `coarseMs` passes: the one listing every live peer, and for the last `numwant`
 *   asked, a pool of `SAMPLES` random samples, one of which each caller gets. A
 *   caller thus learns `numwant` random peers as before, and polling callers do not
 *   make the tracker shuffle and serialize anew for each of them (measured with
 *   `bench/run.ts tracker_http`, 50 of 150 peers: see `tracker/routes_peers.ts`).
 * - **Changes since a version** come from the change log: removed peers leave a
 *   tombstone (at most `maxTombstones`; past that the oldest go and a `since` before
 *   them gets a sample). Versions start at the clock in microseconds when the index is
 *   loaded, so a `since` from before a restart is older than the log and gets a sample.
 *
 * @module
 */
import { gzipSync } from "node:zlib";
import type { PeerInfo } from "../proto/tracker.ts";
import type { PeerRow } from "./peer_store.ts";

/** Removed peers remembered for `since` queries. */
const MAX_TOMBSTONES = 16_384;
/** Removals one `changes` answer lists at most. */
const MAX_REMOVED = 1_000;

/** Random samples kept ready for one `numwant`. */
const SAMPLES = 16;

/** A listed peer: its current row and its entry as last serialized. */
interface Listed {
  row: PeerRow;
  json?: string;
  jsonAt: number;
}

/** A whole answer kept ready until the peer set changes or `until` (ms). */
interface Kept {
  version: number;
  until: number;
  body: string;
  gzip?: Uint8Array;
}

/** Options of a `PeerListing`. */
export interface PeerListingOptions {
  /** Milliseconds since the epoch. */
  clock: () => number;
  /** How stale a listed `lastSeen` may be (default 5 s). */
  coarseMs?: number;
  /** Tombstones kept (default 16,384). */
  maxTombstones?: number;
}

/** The listing of live peers, with its version and change log. */
export class PeerListing {
  readonly #clock: () => number;
  readonly #coarseMs: number;
  readonly #maxTombstones: number;
  #version = 0;
  /** Changes after this version are all in the log. */
  #floor = 0;
  readonly #entries = new Map<string, Listed>();
  /** Ids of `#entries`, for picking at random, and where each one sits. */
  readonly #ids: string[] = [];
  readonly #pos = new Map<string, number>();
  /** Each changed peer's last change, in version order (deleted, then set again). */
  readonly #changed = new Map<string, number>();
  readonly #tombstones = new Set<string>();
  /** `[version, peerId]` in version order; an entry a later change superseded is stale. */
  #log: [number, string][] = [];
  #all: Kept | undefined;
  /** Samples kept ready for the last `numwant` asked. */
  #pool: { numwant: number; kept: (Kept | undefined)[] } | undefined;
  /** How often whole answers and entries were serialized (for tests). */
  readonly builds = { all: 0, samples: 0, entries: 0 };

  constructor(opts: PeerListingOptions) {
    this.#clock = opts.clock;
    this.#coarseMs = opts.coarseMs ?? 5_000;
    this.#maxTombstones = opts.maxTombstones ?? MAX_TOMBSTONES;
  }

  /** The current version of the peer set. */
  get version(): number {
    return this.#version;
  }

  /** Starts anew from `rows` (a load): the log is empty and every `since` gets a sample. */
  reset(rows: Iterable<PeerRow>): void {
    this.#version = Math.max(this.#version + 1, this.#clock() * 1000);
    this.#floor = this.#version;
    this.#entries.clear();
    this.#ids.length = 0;
    this.#pos.clear();
    this.#changed.clear();
    this.#tombstones.clear();
    this.#log = [];
    this.#all = undefined;
    this.#pool = undefined;
    for (const row of rows) this.#add(row);
  }

  #add(row: PeerRow): void {
    this.#entries.set(row.peerId, { row, jsonAt: 0 });
    this.#pos.set(row.peerId, this.#ids.length);
    this.#ids.push(row.peerId);
  }

  /** A peer's row as stored now: a change when the listing shows it otherwise. */
  put(row: PeerRow): void {
    const e = this.#entries.get(row.peerId);
    if (e && e.row.expiresAt > this.#clock() && sameListing(e.row, row)) {
      e.row = row;
      return;
    }
    if (e) {
      e.row = row;
      e.json = undefined;
    } else {
      this.#add(row);
    }
    this.#tombstones.delete(row.peerId);
    this.#change(row.peerId);
  }

  /** A peer is gone (removed, expired, evicted, or not in KV any more). */
  remove(peerId: string): void {
    if (!this.#entries.delete(peerId)) return;
    const at = this.#pos.get(peerId)!;
    const last = this.#ids.pop()!;
    if (last !== peerId) {
      this.#ids[at] = last;
      this.#pos.set(last, at);
    }
    this.#pos.delete(peerId);
    this.#tombstones.add(peerId);
    this.#change(peerId);
    if (this.#tombstones.size > this.#maxTombstones) this.#dropTombstones();
  }

  #change(peerId: string): void {
    const v = ++this.#version;
    this.#changed.delete(peerId);
    this.#changed.set(peerId, v);
    this.#log.push([v, peerId]);
    if (this.#log.length > 2 * this.#changed.size + 64) {
      this.#log = [...this.#changed].map(([id, at]) => [at, id]);
    }
  }

  /** Forgets the oldest quarter of the tombstones; the log then starts after them. */
  #dropTombstones(): void {
    let drop = this.#tombstones.size - Math.floor(this.#maxTombstones * 3 / 4);
    for (const [id, v] of this.#changed) {
      if (drop <= 0) break;
      if (!this.#tombstones.has(id)) continue;
      this.#tombstones.delete(id);
      this.#changed.delete(id);
      this.#floor = Math.max(this.#floor, v);
      drop--;
    }
  }

  /**
   * The answer to `GET /peers` with these parameters: JSON text, or with `gzip` (the
   * caller accepts it) the gzip of the JSON when the answer is the whole listing kept
   * ready (compressed once per change: a quarter of the bytes on the wire).
   */
  answer(numwant: number, since?: number, gzip = false): string | Uint8Array {
    if (since !== undefined && since >= this.#floor && since <= this.#version) {
      return this.#changes(numwant, since);
    }
    const now = this.#clock();
    const kept = this.#entries.size > numwant ? this.#pooled(numwant, now) : this.#everyone(now);
    if (!gzip) return kept.body;
    // A plain Uint8Array (not the Buffer gzipSync gives) makes a cheaper Response body.
    kept.gzip ??= new Uint8Array(gzipSync(kept.body, { level: 6 }));
    return kept.gzip;
  }

  /** One of the pool's samples, made anew when missing or out of date. */
  #pooled(numwant: number, now: number): Kept {
    if (this.#pool?.numwant !== numwant) this.#pool = { numwant, kept: [] };
    const i = Math.floor(Math.random() * SAMPLES);
    const k = this.#pool.kept[i];
    if (k && k.version === this.#version && now < k.until) return k;
    return this.#pool.kept[i] = this.#sample(numwant, now);
  }

  #live(e: Listed | undefined, now: number): e is Listed {
    return e !== undefined && e.row.expiresAt > now;
  }

  #entryJson(e: Listed, now: number): string {
    if (e.json === undefined || now - e.jsonAt >= this.#coarseMs) {
      e.json = JSON.stringify(peerInfo(e.row));
      e.jsonAt = now;
      this.builds.entries++;
    }
    return e.json;
  }

  #sample(numwant: number, now: number): Kept {
    const picked: string[] = [];
    let until = now + this.#coarseMs;
    // A partial Fisher-Yates shuffle over the ids, swaps kept aside: the ids stay put.
    const swapped = new Map<number, number>();
    const n = this.#ids.length;
    const tries = Math.min(n, numwant * 4 + 64);
    for (let i = 0; i < tries && picked.length < numwant; i++) {
      const j = i + Math.floor(Math.random() * (n - i));
      const at = swapped.get(j) ?? j;
      swapped.set(j, swapped.get(i) ?? i);
      const e = this.#entries.get(this.#ids[at]);
      if (!this.#live(e, now)) continue;
      picked.push(this.#entryJson(e, now));
      until = Math.min(until, e.row.expiresAt);
    }
    this.builds.samples++;
    return { version: this.#version, until, body: body(picked, this.#version, "sample") };
  }

  /** Every live peer, oldest registration first: kept whole until something changes. */
  #everyone(now: number): Kept {
    const all = this.#all;
    if (all && all.version === this.#version && now < all.until) return all;
    const live = [...this.#entries.values()].filter((e) => this.#live(e, now))
      .sort((a, b) => a.row.registeredAt - b.row.registeredAt);
    const until = live.reduce((m, e) => Math.min(m, e.row.expiresAt), now + this.#coarseMs);
    const text = body(live.map((e) => this.#entryJson(e, now)), this.#version, "sample");
    this.#all = { version: this.#version, until, body: text };
    this.builds.all++;
    return this.#all;
  }

  #changes(numwant: number, since: number): string {
    const now = this.#clock();
    const peers: string[] = [];
    const removed: string[] = [];
    let version = this.#version;
    let more = false;
    for (let i = firstAfter(this.#log, since); i < this.#log.length; i++) {
      const [v, id] = this.#log[i];
      if (this.#changed.get(id) !== v) continue;
      if (this.#tombstones.has(id)) {
        if (removed.length >= MAX_REMOVED) {
          [more, version] = [true, v - 1];
          break;
        }
        removed.push(JSON.stringify(id));
        continue;
      }
      const e = this.#entries.get(id);
      if (!this.#live(e, now) || numwant === 0) continue;
      if (peers.length >= numwant) {
        [more, version] = [true, v - 1];
        break;
      }
      peers.push(this.#entryJson(e, now));
    }
    return body(peers, version, "changes", removed, more);
  }
}

/** Index of the first log entry after version `v`. */
function firstAfter(log: [number, string][], v: number): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log[mid][0] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function body(
  peers: string[],
  version: number,
  kind: "sample" | "changes",
  removed?: string[],
  more?: boolean,
): string {
  const tail = removed ? `,"removed":[${removed.join(",")}]${more ? ',"more":true' : ""}` : "";
  return `{"peers":[${peers.join(",")}],"version":${version},"kind":"${kind}"${tail}}`;
}

/** Whether two rows of one peer list the same (all but times and the record's signature). */
function sameListing(a: PeerRow, b: PeerRow): boolean {
  return a.host === b.host && a.port === b.port && a.name === b.name &&
    a.publicKey === b.publicKey && a.version === b.version &&
    a.ports?.chunk === b.ports?.chunk && a.ports?.pingback === b.ports?.pingback &&
    a.ports?.http === b.ports?.http && a.ports?.app === b.ports?.app &&
    (a.record?.host ?? null) === (b.record?.host ?? null);
}

/** The fields a peer may leave out. */
type OptionalKey = "name" | "ports" | "publicKey" | "version" | "record";
const OPTIONAL_KEYS: OptionalKey[] = ["name", "ports", "publicKey", "version", "record"];

/** The optional fields of a peer that `src` sets (an absent one is left out, not `undefined`). */
export function optionalPeerFields(src: Pick<PeerRow, OptionalKey>): Pick<PeerRow, OptionalKey> {
  const out: Record<string, unknown> = {};
  for (const key of OPTIONAL_KEYS) if (src[key] !== undefined) out[key] = src[key];
  return out as Pick<PeerRow, OptionalKey>;
}

/** A peer's row as the API shows it. */
export function peerInfo(row: PeerRow): PeerInfo {
  return {
    peerId: row.peerId,
    host: row.host,
    port: row.port,
    ...optionalPeerFields(row),
    registeredAt: new Date(row.registeredAt).toISOString(),
    lastSeen: new Date(row.lastSeen).toISOString(),
    expiresAt: new Date(row.expiresAt).toISOString(),
  };
}
