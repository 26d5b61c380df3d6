/**
 * HTTP over the peer network, carried inside the peer link (`tunnel_mux.ts`): the
 * two ends that the gateway and the request handler use.
 *
 * - **Sending side** (`openHttpTunnel()`): the gateway's route to another peer names a
 *   connector that opens a tunnel stream over the pooled link to that peer, at the
 *   address a handshake proved (`getProven`) and proving that peer's id again when
 *   the link is new. The relay writes the request into it as into a socket, so
 *   forwarded HTTP is encrypted and authenticated like chunks, and nothing goes over
 *   plain HTTP to the other peer's main server.
 * - **Receiving side** (`HttpTunnels.accept()`, called by the request handler for
 *   HTTP_OPEN): the stream is handed to this peer's own main HTTP server
 *   (`Relay.serve()`) as a client connection whose address is `_p2p-{peerId}` of the
 *   linked peer (`tunnelAddress()`), so the relay applies its usual parsing, limits,
 *   time limits and routing, and the gateway knows the request came over a link
 *   (it then serves only this peer's app: see `gateway.ts`). At most
 *   `MAX_TUNNELS_PER_LINK` (32) streams per link and `MAX_TUNNELS` (64) in all; one more is
 *   refused with HTTP_RESET `too_many_tunnels`.
 *
 * @module
 */
import { NotFoundError, P2pError } from "../proto/errors.ts";
import { MAX_TUNNELS_PER_LINK, type MessageOf } from "../proto/messages.ts";
import type { PeerConnection } from "./connection.ts";
import type { HandlerResult } from "./request_answers.ts";
import type { PeerLog } from "./activity.ts";
import type { ConnectionPool } from "./pool.ts";
import type { PeerTable } from "./peer_table.ts";

/**
 * Tunnel streams taken from other peers at once, over all links: with
 * `TUNNEL_WINDOW`, at most 32 MiB wait for their readers here.
 */
export const MAX_TUNNELS = 64;

/** The address prefix of a client that reached the main server over a peer link. */
const TUNNEL_PREFIX = "_p2p-";

/**
 * The client address under which the main server sees a request that came over the
 * link of peer `peerId`: `_p2p-{peerId}`, never an IP address (RFC 7239's obfuscated
 * identifiers start with `_` too).
 */
export function tunnelAddress(peerId: string): string {
  return `${TUNNEL_PREFIX}${peerId}`;
}

/** The peerId of a client address made by `tunnelAddress()`, or undefined for any other. */
export function tunnelPeer(remoteAddr: string): string | undefined {
  return remoteAddr.startsWith(TUNNEL_PREFIX) ? remoteAddr.slice(TUNNEL_PREFIX.length) : undefined;
}

/** What the receiving side needs. */
export interface HttpTunnelsOptions {
  /** Serves a stream as a client connection of the main HTTP server (`Relay.serve()`). */
  serve(stream: Deno.Conn): void;
  log?: Pick<PeerLog, "record">;
  /** Streams per link (default `MAX_TUNNELS_PER_LINK`). */
  maxPerLink?: number;
  /** Streams over all links (default `MAX_TUNNELS`). */
  maxTotal?: number;
}

/** The receiving side of HTTP tunnels: takes streams other peers open, within the limits. */
export class HttpTunnels {
  readonly #opts: HttpTunnelsOptions;
  #open = 0;

  constructor(opts: HttpTunnelsOptions) {
    this.#opts = opts;
  }

  /** Streams taken and still open, over all links. */
  get open(): number {
    return this.#open;
  }

  /**
   * Answers HTTP_OPEN from the linked peer of `conn`: HTTP_OPENED once the stream is
   * handed to the main server, or HTTP_RESET with `too_many_tunnels` or `bad_stream`.
   */
  accept(msg: MessageOf<"HTTP_OPEN">, conn: PeerConnection): HandlerResult {
    const from = conn.remote.peerId;
    const maxTotal = this.#opts.maxTotal ?? MAX_TUNNELS;
    const maxPerLink = this.#opts.maxPerLink ?? MAX_TUNNELS_PER_LINK;
    try {
      if (this.#open >= maxTotal) {
        throw new P2pError("too_many_tunnels", `'${maxTotal}' tunnels are open here: try later`);
      }
      if (conn.tunnels.inbound >= maxPerLink) {
        throw new P2pError(
          "too_many_tunnels",
          `'${maxPerLink}' tunnels are open on this link: try later`,
        );
      }
      const stream = conn.tunnels.accept(msg.requestId, tunnelAddress(from));
      this.#open++;
      stream.closed.then(() => this.#open--);
      this.#opts.serve(stream);
      return { type: "HTTP_OPENED", header: {} };
    } catch (err) {
      const code = err instanceof P2pError ? err.code : "internal";
      const message = (err as Error).message;
      this.#opts.log?.record("tunnel.refused", { from, code, reason: message });
      return { type: "HTTP_RESET", header: { code, message } };
    }
  }
}

/** What the sending side needs of the peer. */
export interface OpenTunnelDeps {
  table: Pick<PeerTable, "getProven">;
  pool: Pick<ConnectionPool, "connect">;
}

/**
 * Opens a tunnel stream to the main HTTP server of peer `peerId`, over the pooled
 * link to the address a handshake proved for it (a new link proves the id again).
 * Rejects with `NotFoundError` `unknown_peer` when no proven address is known, and
 * as `ConnectionPool.connect()` and `TunnelMux.open()` do.
 */
export async function openHttpTunnel(
  deps: OpenTunnelDeps,
  peerId: string,
  signal?: AbortSignal,
): Promise<Deno.Conn> {
  const p = deps.table.getProven(peerId);
  if (!p) throw new NotFoundError("unknown_peer", `No proven address of peer '${peerId}'`);
  const conn = await deps.pool.connect(p.host, p.ports.chunk, p.peerId);
  return await conn.tunnels.open({ remote: tunnelAddress(peerId), signal });
}
