/**
 * The peers this peer knows, kept in Deno KV in the data directory so that a
 * restarted peer reconnects without a tracker or a scan. Each entry says how the
 * peer was found (a `--peer` seed, the tracker, peer exchange, an inbound
 * connection, a LAN scan), when it was first and last seen, its round-trip time
 * and how many times in a row it could not be reached.
 *
 * **Learned and proven addresses.** An address someone told us (the tracker, a scan,
 * the source of an inbound connection, a signed record from peer exchange) is only
 * *learned*. It becomes *proven* when this peer dialed it and the link's handshake
 * there proved the peer's id: the connection pool reports that as a sighting of
 * source `seed` (`prove()`). `getProven()` and `proven()` give proven addresses
 * only: the gateway forwards HTTP only to those. Any other use of a learned address
 * must dial it and check that the handshake proved the expected id before sending
 * a request (`connectAs()`).
 *
 * A proven entry never moves on hearsay: a learned sighting of another address is
 * kept beside it as a `candidate` (a signed record only when its `seq` is newer than
 * the one held), which `unproven()` offers for dialing; only a handshake at the new
 * address moves the entry there. A forged record (it would need the peer's key) or
 * a forged tracker row can at most add a candidate that never proves.
 *
 * **Bounds.** At most `MAX_PEERS` entries: a new one evicts the unproven entry seen
 * longest ago; when every entry is proven, a learned newcomer is dropped and a
 * proven one evicts the proven entry seen longest ago. A peer that could not be
 * reached is not dialed again before a back-off (`RETRY_MS` doubling per failure, at
 * most `MAX_RETRY_MS`): a silent address costs one bounded wait, not one per
 * operation.
 *
 * @module
 */
import { z } from "zod";
import { KnownPeer, type PeerSource } from "../proto/control.ts";
import { type WirePeer, WirePeer as WirePeerSchema, type WirePorts } from "../proto/messages.ts";
import type { PeerConnection } from "./connection.ts";

export type { KnownPeer, PeerSource };

/** Most entries the table holds. */
export const MAX_PEERS = 1024;
/** Wait after a failed contact before a peer is dialed again; doubles per failure. */
export const RETRY_MS = 30_000;
/** Longest wait between attempts to reach a failing peer. */
export const MAX_RETRY_MS = 30 * 60_000;

/** What a sighting of a peer tells. */
export interface Sighting {
  peerId: string;
  host: string;
  ports: WirePorts;
  name?: string;
  publicKey?: string;
}

/** A learned address of a proven peer, not proven yet. */
const Candidate = z.object({ host: z.string(), ports: KnownPeer.shape.ports });

/** An entry as kept in KV: a `KnownPeer` and what the table knows of trust. */
const Entry = KnownPeer.extend({
  /** The address (host, chunk port) was proven by a handshake there. */
  proven: z.boolean().default(false),
  /** The newest signed record of the peer (verified when it arrived). */
  record: WirePeerSchema.optional(),
  /** A learned address of a proven peer, to be proven before use. */
  candidate: Candidate.optional(),
  /** When the last failed contact was, ms since the epoch. */
  failedAt: z.number().optional(),
});
type Entry = z.infer<typeof Entry>;

/** The `KnownPeer` view of an entry, without the table's own fields. */
function view(e: Entry): KnownPeer {
  const { proven: _p, record: _r, candidate: _c, failedAt: _f, ...known } = e;
  return known;
}

/** Known peers: in memory for reads, written through to KV. */
export class PeerTable {
  readonly #kv: Deno.Kv;
  readonly #self: string;
  readonly #peers = new Map<string, Entry>();
  readonly #max: number;

  private constructor(kv: Deno.Kv, self: string, max: number) {
    this.#kv = kv;
    this.#self = self;
    this.#max = max;
  }

  /** Loads the table kept in `kv`; `self` (this peer's id) is never stored. */
  static async open(kv: Deno.Kv, self: string, opts: { max?: number } = {}): Promise<PeerTable> {
    const table = new PeerTable(kv, self, opts.max ?? MAX_PEERS);
    for await (const e of kv.list({ prefix: ["known"] })) {
      // An entry this build cannot read (written by another version, say) is left out.
      const known = Entry.safeParse(e.value);
      if (known.success) table.#peers.set(known.data.peerId, known.data);
    }
    return table;
  }

  /**
   * Records a sighting; returns the entry, or undefined when it is this peer itself
   * or the table is full of proven peers. Source `seed` is the connection pool's
   * report of a handshake on a connection it dialed to `host`: the address is proven
   * (`prove()`). Any other source is learned: it sets the address of an unproven
   * entry, and only a candidate of a proven one.
   */
  async upsert(s: Sighting, source: PeerSource, now = Date.now()): Promise<KnownPeer | undefined> {
    if (source === "seed") return await this.prove(s, now);
    return await this.#learn(s, source, now);
  }

  /**
   * Records that a handshake at `s.host`, `s.ports.chunk` proved `s.peerId`: the entry
   * moves there and is proven; a candidate at that address is used up.
   */
  async prove(s: Sighting, now = Date.now()): Promise<KnownPeer | undefined> {
    if (s.peerId === this.#self) return undefined;
    const old = this.#peers.get(s.peerId);
    const entry: Entry = {
      ...this.#merge(old, s, "seed", now),
      host: s.host,
      ports: { ...(old?.host === s.host ? old.ports : {}), ...s.ports },
      proven: true,
      failures: 0,
      ...(old?.record ? { record: old.record } : {}),
    };
    return await this.#put(entry);
  }

  /**
   * Records a verified signed record (peer exchange): learned, and kept when its `seq`
   * is newer than the record held. The caller checks the signature first
   * (`proto/peer_record.ts`). Returns the entry, or undefined when the record is
   * not newer, is this peer's own, or there is no room.
   */
  async learnRecord(
    r: WirePeer & { seq: number },
    now = Date.now(),
  ): Promise<KnownPeer | undefined> {
    if (r.peerId === this.#self) return undefined;
    const old = this.#peers.get(r.peerId);
    if (old?.record?.seq !== undefined && old.record.seq >= r.seq) return undefined;
    const { lastSeen: _l, ...record } = r;
    return await this.#learn(
      { peerId: r.peerId, host: r.host, ports: r.ports, name: r.name, publicKey: r.publicKey },
      "exchange",
      now,
      record,
    );
  }

  async #learn(
    s: Sighting,
    source: PeerSource,
    now: number,
    record?: WirePeer,
  ): Promise<KnownPeer | undefined> {
    if (s.peerId === this.#self) return undefined;
    const old = this.#peers.get(s.peerId);
    const base = this.#merge(old, s, source, now);
    let entry: Entry;
    if (old?.proven) {
      const moved = old.host !== s.host || old.ports.chunk !== s.ports.chunk;
      entry = {
        ...base,
        host: old.host,
        ports: moved ? old.ports : { ...old.ports, ...s.ports },
        proven: true,
        ...(moved
          ? { candidate: { host: s.host, ports: s.ports } }
          : old.candidate
          ? { candidate: old.candidate }
          : {}),
      };
    } else {
      entry = { ...base, host: s.host, ports: { ...old?.ports, ...s.ports }, proven: false };
    }
    const rec = record ?? old?.record;
    if (rec) entry.record = rec;
    if (old?.failedAt !== undefined) entry.failedAt = old.failedAt;
    return await this.#put(entry);
  }

  /** The fields of an entry every sighting sets the same way. */
  #merge(old: Entry | undefined, s: Sighting, source: PeerSource, now: number): Entry {
    const name = s.name ?? old?.name;
    const publicKey = s.publicKey ?? old?.publicKey;
    return {
      peerId: s.peerId,
      host: s.host,
      ports: s.ports,
      ...(name ? { name } : {}),
      ...(publicKey ? { publicKey } : {}),
      sources: old?.sources.includes(source) ? old.sources : [...(old?.sources ?? []), source],
      firstSeen: old?.firstSeen ?? now,
      lastSeen: source === "exchange" && old ? old.lastSeen : now,
      failures: source === "exchange" || source === "tracker" ? old?.failures ?? 0 : 0,
      ...(old?.rttMs !== undefined ? { rttMs: old.rttMs } : {}),
      proven: false,
    };
  }

  /** Stores an entry, evicting another when the table is full; undefined when there is no room. */
  async #put(entry: Entry): Promise<KnownPeer | undefined> {
    if (!this.#peers.has(entry.peerId) && this.#peers.size >= this.#max) {
      const victim = this.#victim(entry.proven);
      if (!victim) return undefined;
      this.#peers.delete(victim.peerId);
      await this.#kv.delete(["known", victim.peerId]);
    }
    this.#peers.set(entry.peerId, entry);
    await this.#kv.set(["known", entry.peerId], entry);
    return view(entry);
  }

  /** The entry to evict for a newcomer: the unproven one seen longest ago, else (for a proven newcomer) the oldest proven. */
  #victim(newcomerProven: boolean): Entry | undefined {
    let oldest: Entry | undefined;
    for (const p of this.#peers.values()) {
      if (!p.proven && (!oldest || p.lastSeen < oldest.lastSeen)) oldest = p;
    }
    if (oldest || !newcomerProven) return oldest;
    for (const p of this.#peers.values()) {
      if (!oldest || p.lastSeen < oldest.lastSeen) oldest = p;
    }
    return oldest;
  }

  /** Notes a successful exchange with a peer and its round-trip time. */
  async seen(peerId: string, rttMs?: number, now = Date.now()): Promise<void> {
    const p = this.#peers.get(peerId);
    if (!p) return;
    p.lastSeen = now;
    p.failures = 0;
    delete p.failedAt;
    if (rttMs !== undefined) p.rttMs = Math.round(rttMs * 10) / 10;
    await this.#kv.set(["known", peerId], p);
  }

  /** Notes a failed attempt to reach a peer: it is not dialed again before its back-off. */
  async failed(peerId: string, now = Date.now()): Promise<void> {
    const p = this.#peers.get(peerId);
    if (!p) return;
    p.failures++;
    p.failedAt = now;
    await this.#kv.set(["known", peerId], p);
  }

  /** A known peer by id, at its proven or learned address: for display, never for forwarding. */
  get(peerId: string): KnownPeer | undefined {
    const p = this.#peers.get(peerId);
    return p && view(p);
  }

  /** A peer by id at its proven address only: what the gateway may forward to. */
  getProven(peerId: string): KnownPeer | undefined {
    const p = this.#peers.get(peerId);
    return p?.proven ? view(p) : undefined;
  }

  /** Whether a peer's address was proven by a handshake there. */
  isProven(peerId: string): boolean {
    return this.#peers.get(peerId)?.proven ?? false;
  }

  /** The newest signed record held of a peer. */
  record(peerId: string): WirePeer | undefined {
    return this.#peers.get(peerId)?.record;
  }

  /** Every known peer, most recently seen first. */
  list(): KnownPeer[] {
    return this.#sorted().map(view);
  }

  /** The peers whose address was proven and that may be dialed now (not in a back-off). */
  proven(now = Date.now()): KnownPeer[] {
    return this.#sorted().filter((p) => p.proven && this.#dialable(p, now)).map(view);
  }

  /**
   * What may be dialed now to prove it: unproven peers at their learned address and
   * proven ones at their candidate address, none in a back-off.
   */
  unproven(now = Date.now()): KnownPeer[] {
    return this.#sorted().flatMap((p) => {
      if (!this.#dialable(p, now)) return [];
      if (!p.proven) return [view(p)];
      return p.candidate ? [{ ...view(p), ...p.candidate }] : [];
    });
  }

  /** Proven, then unproven peers that may be dialed now: the candidates of an operation. */
  dialable(now = Date.now()): KnownPeer[] {
    return [...this.proven(now), ...this.unproven(now).filter((p) => !this.isProven(p.peerId))];
  }

  #dialable(p: Entry, now: number): boolean {
    if (p.failures === 0 || p.failedAt === undefined) return true;
    return now - p.failedAt >= Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** (p.failures - 1));
  }

  #sorted(): Entry[] {
    return [...this.#peers.values()].sort((a, b) => b.lastSeen - a.lastSeen);
  }

  /** Forgets peers not seen for `maxAgeMs` that failed at least once; returns how many. */
  async ageOut(maxAgeMs: number, now = Date.now()): Promise<number> {
    let n = 0;
    for (const p of [...this.#peers.values()]) {
      if (p.failures > 0 && now - p.lastSeen > maxAgeMs) {
        this.#peers.delete(p.peerId);
        await this.#kv.delete(["known", p.peerId]);
        n++;
      }
    }
    return n;
  }
}

/** What `connectAs()` needs: the pool's dial of a known peer. */
export interface KnownDialer {
  connectKnown(p: KnownPeer): Promise<PeerConnection | undefined>;
}

/**
 * A connection to `p` whose handshake proved `p.peerId`, or undefined: unreachable
 * (the pool counts the failure) or another peer answers there (`onMismatch` is told;
 * the connection stays with the pool, proven for that other id). Nothing is sent
 * to a learned address before this check.
 */
export async function connectAs(
  pool: KnownDialer,
  p: KnownPeer,
  onMismatch?: (found: string) => void,
): Promise<PeerConnection | undefined> {
  const c = await pool.connectKnown(p);
  if (c && c.remote.peerId !== p.peerId) {
    onMismatch?.(c.remote.peerId);
    return undefined;
  }
  return c;
}
