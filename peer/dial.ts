/**
 * Dialing a peer: a TCP connection to its chunk port, with a time limit, the
 * clear-text start and TLS of `link_tls.ts`, then the link handshake and HELLOs of
 * `connection.ts` inside the tunnel. A refusal comes back as one line naming the
 * address: `Peer at 127.0.0.2:5801 is not in this network (network key differs)`.
 *
 * @module
 */
import { type ConnectionOptions, type LinkOptions, PeerConnection } from "./connection.ts";
import { dialLink } from "./link_tls.ts";
import { P2pError, PeerTimeoutError, UnauthorizedError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";

/** Options of `connectPeer()`. */
export interface ConnectPeerOptions extends Omit<ConnectionOptions, "link"> {
  /** How we prove ourselves; the role and the certificate's fingerprint are filled in. */
  link: Omit<LinkOptions, "role" | "fingerprint"> & {
    /** Ask for a plaintext loopback link (`--insecure-plaintext`). */
    plaintext?: boolean;
  };
  /** Give up connecting after this many ms (default 5000); the handshake has its own timeout. */
  connectTimeoutMs?: number;
}

/**
 * Connects over TCP to a peer's chunk port and runs the link start and handshake.
 * Rejects with `PeerTimeoutError` when the TCP connection is not up within
 * `connectTimeoutMs` or the handshake within `handshakeTimeoutMs`, the
 * `Deno.errors` of `Deno.connect` (e.g. `ConnectionRefused`), `UnauthorizedError`
 * (`network_key_mismatch`, `unauthorized`, `unexpected_peer`, `plaintext_refused`)
 * with the address in its message, or whatever `PeerConnection.open()` rejects with.
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
  const where = hostPort(addr.hostname, addr.port);
  const timeout = AbortSignal.timeout(connectTimeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
  } catch (err) {
    if (timeout.aborted && !opts.signal?.aborted) {
      throw new PeerTimeoutError(
        `Cannot connect to '${where}' within '${connectTimeoutMs}' ms`,
        { cause: err },
      );
    }
    throw err;
  }
  // One deadline for the clear-text start, TLS and the link handshake together.
  const handshakeMs = opts.handshakeTimeoutMs ?? 5000;
  const handshakeTimeout = AbortSignal.timeout(handshakeMs);
  const started = performance.now();
  try {
    const link = await dialLink(conn, {
      plaintext: opts.link.plaintext,
      signal: opts.signal ? AbortSignal.any([opts.signal, handshakeTimeout]) : handshakeTimeout,
    });
    const { plaintext: _, ...proof } = opts.link;
    return await PeerConnection.open(link.conn, {
      ...opts,
      handshakeTimeoutMs: Math.max(1, handshakeMs - (performance.now() - started)),
      link: { ...proof, role: "dialer", fingerprint: link.fingerprint },
    });
  } catch (err) {
    if (handshakeTimeout.aborted && !opts.signal?.aborted && !(err instanceof P2pError)) {
      throw new PeerTimeoutError(
        `Peer at ${where} did not complete the handshake within '${handshakeMs}' ms`,
        { cause: err },
      );
    }
    throw refusal(err, where);
  }
}

/** A refusal of the link as one line that names the address; other errors unchanged. */
function refusal(err: unknown, where: string): unknown {
  if (!(err instanceof P2pError)) return err;
  switch (err.code) {
    case "network_key_mismatch":
      return new UnauthorizedError(
        err.code,
        `Peer at ${where} is not in this network (network key differs)`,
        { cause: err },
      );
    case "unauthorized":
    case "unexpected_peer":
    case "plaintext_refused":
      return new UnauthorizedError(err.code, `Peer at ${where}: ${err.message}`, { cause: err });
    default:
      return err;
  }
}
