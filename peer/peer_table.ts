/**
 * The peers this peer knows, kept in Deno KV in the data directory so that a
 * restarted peer reconnects without a tracker or a scan. Each entry says how the
 * peer was found (a `--peer` seed, the tracker, peer exchange, an inbound
 * connection, a LAN scan), when it was first and last seen, its round-trip time
 * and how many times in a row it could not be reached.
 *
 * @module
 */
import { KnownPeer, type PeerSource } from "../proto/control.ts";
import type { WirePorts } from "../proto/messages.ts";

export type { KnownPeer, PeerSource };

/** What a sighting of a peer tells. */
export interface Sighting {
  peerId: string;
  host: string;
  ports: WirePorts;
  name?: string;
  publicKey?: string;
}

/** Known peers: in memory for reads, written through to KV. */
export class PeerTable {
  readonly #kv: Deno.Kv;
  readonly #self: string;
  readonly #peers = new Map<string, KnownPeer>();

  private constructor(kv: Deno.Kv, self: string) {
    this.#kv = kv;
    this.#self = self;
  }

  /** Loads the table kept in `kv`; `self` (this peer's id) is never stored. */
  static async open(kv: Deno.Kv, self: string): Promise<PeerTable> {
    const table = new PeerTable(kv, self);
    for await (const e of kv.list({ prefix: ["known"] })) {
      // An entry this build cannot read (written by another version, say) is left out.
      const known = KnownPeer.safeParse(e.value);
      if (known.success) table.#peers.set(known.data.peerId, known.data);
    }
    return table;
  }

  /** Records a sighting; returns the entry, or undefined when it is this peer itself. */
  async upsert(s: Sighting, source: PeerSource, now = Date.now()): Promise<KnownPeer | undefined> {
    if (s.peerId === this.#self) return undefined;
    const old = this.#peers.get(s.peerId);
    const entry: KnownPeer = {
      peerId: s.peerId,
      host: s.host,
      ports: { ...old?.ports, ...s.ports },
      ...(s.name ?? old?.name ? { name: s.name ?? old?.name } : {}),
      ...(s.publicKey ?? old?.publicKey ? { publicKey: s.publicKey ?? old?.publicKey } : {}),
      sources: old?.sources.includes(source) ? old.sources : [...(old?.sources ?? []), source],
      firstSeen: old?.firstSeen ?? now,
      lastSeen: source === "exchange" && old ? old.lastSeen : now,
      failures: source === "exchange" ? old?.failures ?? 0 : 0,
      ...(old?.rttMs !== undefined ? { rttMs: old.rttMs } : {}),
    };
    this.#peers.set(entry.peerId, entry);
    await this.#kv.set(["known", entry.peerId], entry);
    return entry;
  }

  /** Notes a successful exchange with a peer and its round-trip time. */
  async seen(peerId: string, rttMs?: number, now = Date.now()): Promise<void> {
    const p = this.#peers.get(peerId);
    if (!p) return;
    p.lastSeen = now;
    p.failures = 0;
    if (rttMs !== undefined) p.rttMs = Math.round(rttMs * 10) / 10;
    await this.#kv.set(["known", peerId], p);
  }

  /** Notes a failed attempt to reach a peer. */
  async failed(peerId: string): Promise<void> {
    const p = this.#peers.get(peerId);
    if (!p) return;
    p.failures++;
    await this.#kv.set(["known", peerId], p);
  }

  /** A known peer by id. */
  get(peerId: string): KnownPeer | undefined {
    return this.#peers.get(peerId);
  }

  /** Every known peer, most recently seen first. */
  list(): KnownPeer[] {
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
