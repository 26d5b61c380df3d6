/**
 * Seeds and peer exchange: at start the peer connects to its `--peer` seeds and asks
 * each for the peers it knows (PEERS?), then says hello to a few peers known from
 * earlier runs so the table stays fresh. A peer that connects to this one is asked
 * for its peers too, and its own record's address is dialed to prove it. Every
 * exchange period it asks three proven
 * peers at random, dials up to three learned addresses so their handshake proves
 * them (or counts them failed, which backs them off), and ages out peers unseen for
 * a day.
 *
 * A PEERS answer carries signed peer records (`proto/peer_record.ts`): each is
 * verified, and one that does not verify is dropped with an `exchange.drop` record; a
 * good one only makes its address learned (`PeerTable.learnRecord()`).
 *
 * @module
 */
import type { PeerConnection } from "./connection.ts";
import type { PeerLog } from "./activity.ts";
import { connectAs, type KnownPeer, type PeerTable } from "./peer_table.ts";
import { hostPort, isWildcard } from "../lib/net_addr.ts";
import { type PeerRecord, signPeerRecord, verifyPeerRecord } from "../proto/peer_record.ts";
import type { WirePorts } from "../proto/messages.ts";
import type { Identity } from "./identity.ts";

/** Peers unseen for this long are dropped from the table. */
const MAX_AGE_MS = 24 * 3600_000;
/** Peers asked for theirs, and learned addresses dialed to prove them, per round. */
const PER_ROUND = 3;

/** What the exchange needs of its neighbours. */
export interface ExchangeDeps {
  /** `--peer HOST:PORT` seeds. */
  seeds: { host: string; port: number }[];
  table: Pick<PeerTable, "list" | "proven" | "unproven" | "learnRecord" | "ageOut">;
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
    // Known peers from earlier runs: say hello (all at once) so the table stays fresh.
    const known = table.list().slice(0, 8)
      .filter((p) => !seeds.some((s) => s.host === p.host && s.port === p.ports.chunk));
    await Promise.all(known.map((p) => pool.connectKnown(p)));
  }

  /**
   * Asks one connection for the peers it knows; resolves to how many records were
   * new here. Records that do not verify are dropped, each with an activity record.
   */
  async exchangeWith(c: PeerConnection): Promise<number> {
    const { table, log } = this.#deps;
    const res = await c.request({ type: "PEERS_REQ", header: { limit: 200 } }, { timeoutMs: 5000 });
    let n = 0;
    let dropped = 0;
    for (const p of res.header.peers) {
      const check = await verifyPeerRecord(p);
      if (!check.ok) {
        dropped++;
        log.record("exchange.drop", {
          from: c.remote.peerId,
          peerId: p.peerId,
          reason: check.reason,
        });
        continue;
      }
      if (await table.learnRecord(check.record)) n++;
    }
    log.record("exchange", { with: c.remote.peerId, learned: n, dropped });
    return n;
  }

  /**
   * A peer connected to this one: asks it for its peers (its own signed record among
   * them), then dials the address its record names, so that a handshake there proves
   * it and this peer can pass it on. One dial per inbound connection.
   */
  async inbound(c: PeerConnection): Promise<void> {
    const { table, pool, log } = this.#deps;
    try {
      await this.exchangeWith(c);
    } catch (err) {
      log.record("exchange.fail", { with: c.remote.peerId, message: String(err) });
      return;
    }
    const own = table.unproven().find((p) => p.peerId === c.remote.peerId);
    if (own) {
      await connectAs(pool, own, (found) =>
        log.record("exchange.mismatch", {
          expected: own.peerId,
          found,
          address: hostPort(own.host, own.ports.chunk),
        }));
    }
  }

  /**
   * Dials a peer at the address the table has for it (learned or proven) and, once the
   * handshake there proved its id, asks it for its peers (its own record among them).
   * A mismatch (another peer answers there) is recorded; nothing is asked of it.
   */
  async meet(p: KnownPeer): Promise<void> {
    const { pool, log } = this.#deps;
    const c = await connectAs(pool, p, (found) =>
      log.record("exchange.mismatch", {
        expected: p.peerId,
        found,
        address: hostPort(p.host, p.ports.chunk),
      }));
    if (c) await this.exchangeWith(c).catch(() => undefined);
  }

  /**
   * One exchange round, all dials at once: three proven peers at random and three
   * learned addresses (proven by the dial) are asked for theirs; then peers unseen
   * for a day go.
   */
  async round(): Promise<void> {
    const { table } = this.#deps;
    const ask = table.proven().sort(() => Math.random() - 0.5).slice(0, PER_ROUND);
    const prove = table.unproven().slice(0, PER_ROUND);
    await Promise.all([...ask, ...prove].map((p) => this.meet(p)));
    await table.ageOut(MAX_AGE_MS);
  }
}

/**
 * This peer's own signed record, made once on first use: at `host` when it listens
 * on one address, else at the first IPv4 address of this machine that is neither
 * loopback nor link-local; none when there is no such address. `seq` is the time it
 * was signed.
 */
export function selfRecord(
  identity: Pick<Identity, "peerId" | "publicKey" | "sign">,
  self: { host: string; ports: WirePorts; name: string },
  interfaces: () => { family: string; address: string }[] = Deno.networkInterfaces,
): () => Promise<PeerRecord | undefined> {
  let made: Promise<PeerRecord | undefined> | undefined;
  return () =>
    made ??= (async () => {
      let host: string | undefined = self.host;
      if (isWildcard(host)) {
        host = interfaces().find((i) =>
          i.family === "IPv4" && !i.address.startsWith("127.") && !i.address.startsWith("169.254.")
        )?.address;
      }
      if (host === undefined) return undefined;
      const { peerId, publicKey } = identity;
      const name = self.name.slice(0, 64);
      return await signPeerRecord(identity.sign, {
        peerId,
        publicKey,
        host,
        ports: self.ports,
        seq: Date.now(),
        ...(name ? { name } : {}),
      });
    })();
}
