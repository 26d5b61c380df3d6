/**
 * Where a payload comes from: its verified manifest (held here, else from the
 * tracker, else asked of each known peer with MANIFEST?), its sources for a download
 * (the tracker's holders and every known peer that answers HAVE? with some chunks,
 * plus the tracker itself when it keeps the bytes), and `where()`: which peer holds
 * which chunk positions.
 *
 * A source is known by the id its link proved, never by the id it was listed under;
 * a peer asked for a manifest must be the one the table lists at that address
 * (`connectAs()`), and peers in their back-off after a failed contact are skipped.
 *
 * @module
 */
import type { PeerConnection } from "./connection.ts";
import type { ChunkStore } from "./chunk_store.ts";
import type { PeerLog } from "./activity.ts";
import { connectAs, type KnownPeer, type PeerTable } from "./peer_table.ts";
import type { TrackerClient } from "./tracker_client.ts";
import type { Source } from "./downloader.ts";
import { RemoteError } from "../proto/answers.ts";
import { assertBitfield, bitfieldCount, bitfieldFromIndices } from "../proto/bitfield.ts";
import { errorMessage, NotFoundError } from "../proto/errors.ts";
import { toHex } from "../proto/ids.ts";
import { BoundedMap } from "../lib/bounded_map.ts";
import { manifestFrom } from "../proto/manifest_body.ts";
import { assertManifestLimits, type Manifest } from "../proto/manifest.ts";
import type { WhereAnswer, WhereRow } from "../proto/control.ts";
import { hostPort } from "../lib/net_addr.ts";

/** What sourcing needs of its neighbours. */
export interface SourcingDeps {
  /** This peer: its id, name and chunk address, for its own `where()` row. */
  self: { peerId: string; name: string; address: string };
  store: Pick<ChunkStore, "getManifest" | "addManifest" | "have">;
  table: Pick<PeerTable, "dialable" | "get">;
  log: Pick<PeerLog, "record">;
  tracker?: Pick<TrackerClient, "url" | "manifest" | "holders" | "chunk">;
  pool: {
    connect(host: string, port: number): Promise<PeerConnection>;
    connectKnown(p: KnownPeer): Promise<PeerConnection | undefined>;
  };
  /** Gives a chunk answer's buffer back once the downloader is done with it. */
  release?: (bytes: Uint8Array) => void;
}

/** An address that did not answer HAVE? is not asked again for this long. */
export const ASK_RETRY_MS = 30_000;

/** Finds manifests and sources of payloads. */
export class Sourcing {
  readonly #deps: SourcingDeps;
  /** Address → when it may be asked again, after it could not be reached. */
  readonly #unreachable = new BoundedMap<string, number>(1024);

  constructor(deps: SourcingDeps) {
    this.#deps = deps;
  }

  /**
   * The verified manifest of a payload: from the store, the tracker or a known peer
   * (then kept in the store). `NotFoundError` `unknown_payload` when nobody has it.
   */
  async manifest(payloadId: string): Promise<Manifest> {
    const { store, tracker, table, pool } = this.#deps;
    const held = store.getManifest(payloadId);
    if (held) return held;
    const errors: string[] = [];
    if (tracker) {
      try {
        const r = await tracker.manifest(payloadId);
        const m = { size: r.size, chunkSize: r.chunkSize, chunks: r.chunks };
        await store.addManifest(payloadId, m, { name: r.name });
        return m;
      } catch (err) {
        errors.push(`tracker: ${errorMessage(err)}`);
      }
    }
    for (const p of table.dialable()) {
      const c = await connectAs(pool, p);
      if (!c) continue;
      try {
        const res = await c.request({ type: "MANIFEST_REQ", header: { payloadId } }, {
          timeoutMs: 5000,
        });
        // The header's size and chunk size are checked before the hashes are read.
        assertManifestLimits(res.header);
        const { manifest, name } = manifestFrom(res);
        await store.addManifest(payloadId, manifest, name ? { name } : undefined);
        return manifest;
      } catch (err) {
        errors.push(`${p.peerId.slice(0, 8)}: ${errorMessage(err)}`);
      }
    }
    throw new NotFoundError(
      "unknown_payload",
      `Cannot find the manifest of payload '${payloadId}'` +
        (errors.length ? ` (${errors.slice(0, 3).join("; ")})` : ": no tracker and no known peer"),
    );
  }

  /**
   * Sources for a payload: the tracker's holders, every known peer that answers HAVE?,
   * the tracker. A download asks again every few seconds; an address that could not
   * be reached is left out of the asks for `ASK_RETRY_MS`.
   */
  async sources(payloadId: string, m: Manifest): Promise<Source[]> {
    const { tracker, table, log } = this.#deps;
    const out = new Map<string, Source>();
    const ask = async (peerId: string, host: string, port: number) => {
      if (out.has(peerId) || peerId === this.#deps.self.peerId) return;
      const where = hostPort(host, port);
      if ((this.#unreachable.get(where) ?? 0) > Date.now()) return;
      try {
        const conn = await this.#deps.pool.connect(host, port);
        const res = await conn.request({ type: "HAVE_REQ", header: { payloadId } }, {
          timeoutMs: 5000,
        });
        assertBitfield(res.body, m.chunks.length);
        if (bitfieldCount(res.body, m.chunks.length) > 0) {
          out.set(conn.remote.peerId, this.#peerSource(payloadId, conn, res.body));
        }
      } catch (err) {
        if (!(err instanceof RemoteError)) {
          this.#unreachable.set(where, Date.now() + ASK_RETRY_MS);
          log.record("conn.fail", { peerId, address: where, message: String(err) });
        }
      }
    };
    const asks: Promise<void>[] = [];
    let trackerHolds = false;
    if (tracker) {
      try {
        const holders = await tracker.holders(payloadId);
        trackerHolds = holders.tracker.holds;
        for (const h of holders.peers) asks.push(ask(h.peerId, h.host, h.ports?.chunk ?? h.port));
      } catch (err) {
        log.record("tracker.error", { during: "holders", payloadId, message: errorMessage(err) });
      }
    }
    for (const p of table.dialable()) asks.push(ask(p.peerId, p.host, p.ports.chunk));
    await Promise.all(asks);
    if (trackerHolds && tracker) {
      out.set("tracker", {
        id: "tracker",
        have: bitfieldFromIndices(m.chunks.length, m.chunks.map((_, i) => i)),
        fetch: (index, signal) => tracker.chunk(payloadId, index, signal),
      });
    }
    return [...out.values()];
  }

  #peerSource(payloadId: string, conn: PeerConnection, have: Uint8Array): Source {
    return {
      id: conn.remote.peerId,
      have,
      fetch: async (index, signal) =>
        (await conn.request({ type: "GET_CHUNK", header: { payloadId, index } }, { signal })).body,
      ...(this.#deps.release ? { release: this.#deps.release } : {}),
    };
  }

  /** Who holds which chunk positions: this peer, the tracker's holders, known peers. */
  async where(payloadId: string): Promise<WhereAnswer> {
    const { self, store, table, tracker } = this.#deps;
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
      if (rows.has(peerId)) return;
      rows.set(peerId, {
        peerId,
        ...(name ? { name } : {}),
        address,
        have: toHex(bits),
        count: bitfieldCount(bits, n),
        via,
      });
    };
    add(self.peerId, self.name, self.address, store.have(payloadId), "self");
    for (const s of await this.sources(payloadId, m)) {
      const known = table.get(s.id);
      add(
        s.id,
        known?.name,
        known ? hostPort(known.host, known.ports.chunk) : tracker?.url ?? "",
        s.have,
        s.id === "tracker" ? "tracker" : "HAVE?",
      );
    }
    return { chunks: n, rows: [...rows.values()] };
  }
}
