/**
 * Dialing a peer: a TCP connection to its chunk port, with a time limit, the
 * clear-text start and TLS of `link_tls.ts`, then the link handshake and HELLOs of
 * `connection.ts` inside the tunnel. A refusal comes back as one line naming the
 * address: `Peer at 127.0.0.2:5801 is not in this network (network key differs)`.
 *
 * The first link to an address asks for its TLS link port and, when offered one,
 * links there (Deno's TLS on both ends, cheaper than node:tls on the chunk port); the
 * port and certificate are remembered (`TLS_PORTS`, per address, at most 1,024), so
 * later links go there at once. Whatever fails there before the proofs are done (the
 * port unreachable, another certificate after a restart) forgets the entry and links
 * on the chunk port; an address whose TLS port could not be reached is then not
 * asked again for `NO_TLS_PORT_MS`.
 *
 * @module
 */
import { type ConnectionOptions, type LinkOptions, PeerConnection } from "./connection.ts";
import { dialLink, dialNativeTls, type OpenedLink } from "./link_tls.ts";
import { P2pError, PeerTimeoutError, UnauthorizedError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";
import { BoundedMap } from "../lib/bounded_map.ts";

/** A remembered TLS link port: where, and the certificate to pin; or none until `retryAt`. */
type TlsPortEntry = { tlsPort: number; der: Uint8Array } | { retryAt: number };

/** TLS link ports by the address (`host:port` of the chunk port) they were offered for. */
const TLS_PORTS = new BoundedMap<string, TlsPortEntry>(1024);
/** An address whose TLS link port could not be reached is not asked again for this long. */
export const NO_TLS_PORT_MS = 10 * 60_000;
/** Time allowed to reach a TLS link port before falling back to the chunk port. */
const TLS_PORT_CONNECT_MS = 1000;

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
  const connect = async (port: number, ms: number): Promise<Deno.TcpConn> => {
    const timeout = AbortSignal.timeout(ms);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      return await Deno.connect({ hostname: addr.hostname, port, signal });
    } catch (err) {
      if (timeout.aborted && !opts.signal?.aborted) {
        throw new PeerTimeoutError(
          `Cannot connect to '${hostPort(addr.hostname, port)}' within '${ms}' ms`,
          { cause: err },
        );
      }
      throw err;
    }
  };
  // One deadline for the clear-text start, TLS and the link handshake together.
  const handshakeMs = opts.handshakeTimeoutMs ?? 5000;
  const handshakeTimeout = AbortSignal.timeout(handshakeMs);
  const linkSignal = opts.signal
    ? AbortSignal.any([opts.signal, handshakeTimeout])
    : handshakeTimeout;
  const started = performance.now();
  const { plaintext, ...proof } = opts.link;
  const open = (link: OpenedLink) =>
    PeerConnection.open(link.conn, {
      ...opts,
      handshakeTimeoutMs: Math.max(1, handshakeMs - (performance.now() - started)),
      link: { ...proof, role: "dialer", fingerprint: link.fingerprint },
    });

  // A TLS link port known from before: straight there.
  const known = plaintext ? undefined : TLS_PORTS.get(where);
  if (known && "tlsPort" in known) {
    try {
      const conn = await connect(known.tlsPort, Math.min(connectTimeoutMs, TLS_PORT_CONNECT_MS));
      return await open(await dialNativeTls(conn, known.der, linkSignal));
    } catch (err) {
      TLS_PORTS.delete(where);
      if (opts.signal?.aborted) throw err;
      // A refusal by the proofs stands; anything before them (no listener there any
      // more, another certificate): the chunk port, as for an address seen first.
      if (err instanceof P2pError && !beforeProofs(err)) throw refusal(err, where);
    }
  }

  const conn = await connect(addr.port, connectTimeoutMs);
  try {
    const askTlsPort = !plaintext &&
      !(known && "retryAt" in known && known.retryAt > Date.now());
    const link = await dialLink(conn, { plaintext, askTlsPort, signal: linkSignal });
    if (link.mode !== "tls-port") return await open(link);
    try {
      const tlsConn = await connect(link.tlsPort, Math.min(connectTimeoutMs, TLS_PORT_CONNECT_MS));
      const pc = await open(await dialNativeTls(tlsConn, link.der, linkSignal));
      TLS_PORTS.set(where, { tlsPort: link.tlsPort, der: link.der });
      return pc;
    } catch (err) {
      if (opts.signal?.aborted || (err instanceof P2pError && !beforeProofs(err))) throw err;
      // The TLS link port cannot be reached from here (a firewall): the chunk port.
      TLS_PORTS.set(where, { retryAt: Date.now() + NO_TLS_PORT_MS });
      const again = await connect(addr.port, connectTimeoutMs);
      return await open(await dialLink(again, { plaintext, signal: linkSignal }));
    }
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

/** Whether a failure came before the link proofs: TLS, a timeout, a closed socket. */
function beforeProofs(err: P2pError): boolean {
  return err.code === "tls_failed" || err instanceof PeerTimeoutError ||
    err.code === "link_failed" || err.code === "closed";
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
