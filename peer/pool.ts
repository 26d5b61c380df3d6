/**
 * The peer's connections to other peers: outbound ones pooled by `host:port` (one
 * handshake per peer, reused while it lasts, dropped from the pool when it closes;
 * a known peer's connection must prove that peer's id, see `dial.ts`),
 * each success noted in the known-peers table with its round-trip time, each failure
 * counted against the peer; and inbound ones noted in the table as they arrive.
 *
 * @module
 */
import type { PeerConnection, RequestHandler } from "./connection.ts";
import { connectPeer, type ConnectPeerOptions } from "./dial.ts";
import type { PeerLog } from "./activity.ts";
import type { KnownPeer, PeerTable } from "./peer_table.ts";
import { BufferPool } from "../proto/bytes.ts";
import { FIXED_LENGTH } from "../proto/frame.ts";
import { CHUNK_SIZE } from "../proto/manifest.ts";
import { type HelloHeader, MAX_HEADER } from "../proto/messages.ts";
import { UnauthorizedError } from "../proto/errors.ts";
import { hostPort, plainAddress } from "../lib/net_addr.ts";

/** What the pool needs of its neighbours. */
export interface PoolDeps {
  /** Our HELLO, sent on each new connection. */
  hello: () => HelloHeader;
  /** Answers the requests the other side sends on our outbound connections. */
  handler: RequestHandler;
  /** How we prove ourselves on each link (identity key, network key, plaintext). */
  link: ConnectPeerOptions["link"];
  table: Pick<PeerTable, "upsert" | "seen" | "failed">;
  log: Pick<PeerLog, "record">;
  /** Aborts when the peer stops: pending connects and open connections end. */
  signal: AbortSignal;
  /** Give up connecting after this many ms (default 3000). */
  connectTimeoutMs?: number;
}

/** Outbound connections by `host:port`, opened on demand and reused. */
export class ConnectionPool {
  readonly #deps: PoolDeps;
  readonly #pool = new Map<string, Promise<PeerConnection>>();
  /**
   * Buffers that chunk answers on outbound connections are read into, given back
   * (`release()`) by the downloader once each chunk is stored: a download then holds a
   * steady set of buffers instead of leaving one for the garbage collector per chunk.
   */
  readonly #frames = new BufferPool(FIXED_LENGTH + MAX_HEADER + CHUNK_SIZE, 16);

  constructor(deps: PoolDeps) {
    this.#deps = deps;
  }

  /** Outbound connections open or opening. */
  get size(): number {
    return this.#pool.size;
  }

  /**
   * An open connection to a peer (reused while it lasts); rejects when it cannot be
   * reached or refuses the link. With `expectPeerId`, a peer that proves another id
   * is refused (`UnauthorizedError` `unexpected_peer`), and so is a pooled
   * connection to that address whose peer has another id.
   */
  async connect(host: string, port: number, expectPeerId?: string): Promise<PeerConnection> {
    const key = hostPort(host, port);
    let conn = this.#pool.get(key);
    if (conn) {
      const c = await conn;
      if (expectPeerId !== undefined && c.remote.peerId !== expectPeerId) {
        throw new UnauthorizedError(
          "unexpected_peer",
          `Peer at ${key}: expected peer '${expectPeerId}' at this address, found '${c.remote.peerId}'`,
        );
      }
      return c;
    }
    const forget = () => {
      if (this.#pool.get(key) === conn) this.#pool.delete(key);
    };
    conn = this.#open(host, port, forget, expectPeerId);
    this.#pool.set(key, conn);
    conn.catch(forget);
    return await conn;
  }

  async #open(
    host: string,
    port: number,
    forget: () => void,
    expectPeerId: string | undefined,
  ): Promise<PeerConnection> {
    const { table } = this.#deps;
    const started = performance.now();
    const c = await connectPeer({ hostname: host, port }, {
      hello: this.#deps.hello(),
      link: { ...this.#deps.link, expectPeerId },
      handler: this.#deps.handler,
      connectTimeoutMs: this.#deps.connectTimeoutMs ?? 3000,
      framePool: this.#frames,
      signal: this.#deps.signal,
    });
    const rtt = performance.now() - started;
    c.closed.then(forget);
    const { peerId, ports, name, publicKey } = c.remote;
    await table.upsert({ peerId, host, ports, name, publicKey }, "seed").catch(() => undefined);
    await table.seen(peerId, rtt);
    return c;
  }

  /** A connection to a known peer, or undefined (its failure counted and logged) when unreachable. */
  async connectKnown(p: KnownPeer): Promise<PeerConnection | undefined> {
    try {
      return await this.connect(p.host, p.ports.chunk, p.peerId);
    } catch (err) {
      await this.#deps.table.failed(p.peerId);
      this.#deps.log.record("conn.fail", {
        peerId: p.peerId,
        address: `${p.host}:${p.ports.chunk}`,
        message: String(err),
      });
      return undefined;
    }
  }

  /** Gives back the buffer of a chunk answer read on one of our connections, once used. */
  release(bytes: Uint8Array): void {
    this.#frames.release(bytes);
  }

  /** Notes an inbound connection's peer in the table (its HELLO's host, or the source address). */
  noteInbound(conn: PeerConnection): void {
    if (!conn.remoteAddr) return;
    const { peerId, host, ports, name, publicKey } = conn.remote;
    this.#deps.table.upsert(
      { peerId, host: host ?? plainAddress(conn.remoteAddr.hostname), ports, name, publicKey },
      "inbound",
    ).catch((err) =>
      this.#deps.log.record("error", { during: "peer table", message: String(err) })
    );
  }

  /** Closes every pooled connection and resolves once all are closed. */
  async close(reason = "peer stopping"): Promise<void> {
    const conns = [...this.#pool.values()];
    for (const c of conns) c.then((conn) => conn.close(reason), () => undefined);
    await Promise.allSettled(conns.map((c) => c.then((conn) => conn.closed)));
  }
}
