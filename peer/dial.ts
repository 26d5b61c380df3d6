/**
 * Dialing a peer: a TCP connection to its chunk port, with a time limit, then the
 * wire handshake of `connection.ts` over it.
 *
 * @module
 */
import { type ConnectionOptions, PeerConnection } from "./connection.ts";
import { PeerTimeoutError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";

/** Options of `connectPeer()`. */
export interface ConnectPeerOptions extends ConnectionOptions {
  /** Give up connecting after this many ms (default 5000); the handshake has its own timeout. */
  connectTimeoutMs?: number;
}

/**
 * Connects over TCP to a peer's chunk port and runs the handshake. Rejects with
 * `PeerTimeoutError` when the TCP connection is not up within `connectTimeoutMs`,
 * the `Deno.errors` of `Deno.connect` (e.g. `ConnectionRefused`), or whatever
 * `PeerConnection.open()` rejects with.
 */
export async function connectPeer(
  addr: { hostname: string; port: number },
  opts: ConnectPeerOptions,
): Promise<PeerConnection> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  if (!(connectTimeoutMs > 0) || !Number.isFinite(connectTimeoutMs)) {
    throw new RangeError(
      `Cannot open connection: connectTimeoutMs '${connectTimeoutMs}' is not a positive number`,
    );
  }
  const timeout = AbortSignal.timeout(connectTimeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
  } catch (err) {
    if (timeout.aborted && !opts.signal?.aborted) {
      throw new PeerTimeoutError(
        `Cannot connect to '${hostPort(addr.hostname, addr.port)}' within '${connectTimeoutMs}' ms`,
        { cause: err },
      );
    }
    throw err;
  }
  return await PeerConnection.open(conn, opts);
}
