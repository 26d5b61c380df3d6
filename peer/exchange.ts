/**
 * Seeds and peer exchange: at start the peer connects to its `--peer` seeds and asks
 * each for the peers it knows (PEERS?), then says hello to a few peers known from
 * earlier runs so the table stays fresh; every exchange period it asks three known
 * peers at random and ages out peers unseen for a day.
 *
 * @module
 */
import type { PeerConnection } from "./connection.ts";
import type { PeerLog } from "./activity.ts";
import type { KnownPeer, PeerTable } from "./peer_table.ts";
import { hostPort } from "../lib/net_addr.ts";

/** Peers unseen for this long are dropped from the table. */
const MAX_AGE_MS = 24 * 3600_000;

/** What the exchange needs of its neighbours. */
export interface ExchangeDeps {
  /** `--peer HOST:PORT` seeds. */
  seeds: { host: string; port: number }[];
  table: Pick<PeerTable, "list" | "upsert" | "ageOut">;
  log: Pick<PeerLog, "record">;
  pool: {
    connect(host: string, port: number): Promise<PeerConnection>;
    connectKnown(p: KnownPeer): Promise<PeerConnection | undefined>;
  };
}

/** Seeds at start, then peer exchange rounds. */
export class PeerExchange {
  readonly #deps: ExchangeDeps;

  constructor(deps: ExchangeDeps) {
    this.#deps = deps;
  }

  /** Contacts every seed (and exchanges with it), then up to 8 peers known from before. */
  async contactSeeds(): Promise<void> {
    const { seeds, table, pool, log } = this.#deps;
    for (const seed of seeds) {
      try {
        await this.exchangeWith(await pool.connect(seed.host, seed.port));
      } catch (err) {
        log.record("seed.fail", { address: hostPort(seed.host, seed.port), message: String(err) });
      }
    }
    // Known peers from earlier runs: say hello so the table stays fresh.
    for (const p of table.list().slice(0, 8)) {
      if (seeds.some((s) => s.host === p.host && s.port === p.ports.chunk)) continue;
      await pool.connectKnown(p);
    }
  }

  /** Asks one connection for the peers it knows; resolves to how many were new here. */
  async exchangeWith(c: PeerConnection): Promise<number> {
    const res = await c.request({ type: "PEERS_REQ", header: { limit: 200 } }, { timeoutMs: 5000 });
    let n = 0;
    for (const p of res.header.peers) {
      const sighting = { peerId: p.peerId, host: p.host, ports: p.ports, name: p.name };
      if (await this.#deps.table.upsert(sighting, "exchange")) n++;
    }
    this.#deps.log.record("exchange", { with: c.remote.peerId, learned: n });
    return n;
  }

  /** One exchange round: three known peers at random, then peers unseen for a day go. */
  async round(): Promise<void> {
    const { table, pool } = this.#deps;
    const peers = table.list().sort(() => Math.random() - 0.5).slice(0, 3);
    for (const p of peers) {
      const c = await pool.connectKnown(p);
      if (c) await this.exchangeWith(c).catch(() => undefined);
    }
    await table.ageOut(MAX_AGE_MS);
  }
}
