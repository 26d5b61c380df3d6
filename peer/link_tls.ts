/**
 * The clear-text start of a link between two peers and its upgrade to TLS 1.3. What
 * runs inside (the proofs of key and identity) is `proto/link_auth.ts`, driven by
 * `connection.ts`.
 *
 * ```text
 * dialer                                         acceptor
 *   preamble (flags: bit 0 = plaintext asked,
 *             bit 1 = TLS port asked)          ─►
 *                                             ◄─ preamble, LINK {mode: "tls", tlsPort?} + its certificate (DER)
 *                                                (or ERROR, e.g. busy, plaintext_refused)
 *   without tlsPort: on this connection
 *   Deno.startTls(pinned to exactly that cert) ◄─► node:tls TLSSocket (server side)
 *   with tlsPort: the acceptor closes this connection; the dialer opens one to that
 *   port of the same host and runs Deno.startTls (pinned) ◄─► Deno.listenTls
 *   … then the PeerConnection inside the tunnel: preamble, AUTH_NONCE, AUTH_KEY, HELLO …
 * ```
 *
 * The acceptor's certificate is made once per process (`createLinkCert()`: ECDSA
 * P-256, `CA:FALSE`, SAN `p2p.invalid`); it is not tied to the identity. The dialer
 * trusts only it (an end-entity certificate cannot sign another), and both sides
 * bind its SHA-256 fingerprint into their proofs, so a man in the middle with a
 * certificate of its own is refused by the acceptor.
 *
 * Deno has no server-side upgrade of an accepted TCP connection, so a link accepted
 * on the chunk port runs node:tls over a `node:stream` Duplex of the `Deno.TcpConn`,
 * which costs the sending side about 0.8 CPU-s per GiB more than Deno's own TLS.
 * So the acceptor also listens with `Deno.listenTls` on a port of its own (the TLS
 * link port, `ChunkService.tlsPort`) and offers it in LINK to a dialer that asks;
 * the dialer then links there with Deno's TLS pinned to the same certificate, and
 * remembers port and certificate for its next links to that address
 * (`dialNativeTls()`). A LINK can only point at another port of the host that was
 * dialed. Where the TLS port cannot be reached (a firewall), the dialer links on the
 * chunk port as before.
 *
 * With `--insecure-plaintext` on both sides and both addresses in 127.0.0.0/8, the
 * LINK says `plaintext` and no TLS runs: only for measuring what TLS costs. A side
 * that asked for it meeting one that did not, or a non-loopback address, is refused.
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as tls from "node:tls";
import { Duplex } from "node:stream";
import { RemoteError } from "../proto/answers.ts";
import { concatBytes } from "../proto/bytes.ts";
import { P2pError, ProtocolError, UnauthorizedError } from "../proto/errors.ts";
import { encodeFrame, encodePreamble, FrameDecoder, PREAMBLE_LENGTH } from "../proto/frame.ts";
import { toBase64 } from "../proto/ids.ts";
import { hostPort, isLoopback } from "../lib/net_addr.ts";
import type { DuplexConn } from "./connection.ts";

/** The DNS name in every link certificate: a name that can never be real. */
export const LINK_CERT_NAME = "p2p.invalid";
/** Preamble flag of a dialer that asks for a plaintext loopback link. */
export const FLAG_PLAINTEXT = 0x0001;
/** Preamble flag of a dialer that asks for the acceptor's TLS link port. */
export const FLAG_TLS_PORT = 0x0002;
/** Largest LINK frame a dialer reads (a certificate is about 400 bytes). */
const MAX_LINK_FRAME = 8 * 1024;

/** A process's ephemeral TLS certificate for the links it accepts. */
export interface LinkCert {
  /** PEM of the certificate, for node:tls. */
  certPem: string;
  /** PEM of its PKCS#8 private key, for node:tls. */
  keyPem: string;
  /** The certificate's DER, sent in LINK. */
  der: Uint8Array;
}

/** A link after its clear-text start: the byte stream to run the connection over. */
export interface OpenedLink {
  /** TLS (or plain TCP for a plaintext link), ready for `PeerConnection.open()`. */
  conn: DuplexConn;
  /** SHA-256 of the certificate's DER; empty on a plaintext link. */
  fingerprint: Uint8Array;
  mode: "tls" | "plaintext";
}

/** The acceptor's answer to a dialer that asked for its TLS link port: link there. */
export interface TlsPortOffer {
  mode: "tls-port";
  /** The port, on the host that was dialed. */
  tlsPort: number;
  /** The certificate to pin there (DER). */
  der: Uint8Array;
}

/** Makes a certificate for this process's links: ECDSA P-256, `CA:FALSE`, SAN `p2p.invalid`. */
export async function createLinkCert(): Promise<LinkCert> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // A positive serial: a leading byte under 0x80.
    serialNumber: "01" + Array.from(crypto.getRandomValues(new Uint8Array(8)), hex2).join(""),
    name: "CN=p2p link",
    notBefore: new Date(now - 24 * 3600_000),
    notAfter: new Date(now + 10 * 365 * 24 * 3600_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: LINK_CERT_NAME }]),
    ],
  }, crypto);
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const der = new Uint8Array(cert.rawData);
  return { certPem: pem("CERTIFICATE", der), keyPem: pem("PRIVATE KEY", pkcs8), der };
}

/** SHA-256 of a certificate's DER. */
export async function certFingerprint(der: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", der as BufferSource));
}

/** Options of `dialLink()`. */
export interface DialLinkOptions {
  /** Ask for a plaintext link (`--insecure-plaintext`); the acceptor must agree. */
  plaintext?: boolean;
  /** Ask for the acceptor's TLS link port; one that has it answers with a `TlsPortOffer`. */
  askTlsPort?: boolean;
  /** Aborting it closes the connection and rejects. */
  signal?: AbortSignal;
}

/**
 * The dialer's start of a link over a fresh TCP connection: sends the preamble,
 * reads the acceptor's preamble and LINK, and starts TLS pinned to the certificate
 * it sent; or, when `askTlsPort` was set and the acceptor offers its TLS link port,
 * closes `conn` and returns the offer (link there with `dialNativeTls()`). Rejects,
 * after closing `conn`, with `RemoteError` (the acceptor sent ERROR: `busy`,
 * `plaintext_refused`), `UnauthorizedError` `plaintext_refused` or `tls_failed` (TLS
 * did not complete with exactly that certificate), `ProtocolError` (bad magic,
 * version, frame), or the signal's reason.
 */
export function dialLink(
  conn: Deno.TcpConn,
  opts?: DialLinkOptions & { askTlsPort?: false },
): Promise<OpenedLink>;
export function dialLink(
  conn: Deno.TcpConn,
  opts: DialLinkOptions,
): Promise<OpenedLink | TlsPortOffer>;
export async function dialLink(
  conn: Deno.TcpConn,
  opts: DialLinkOptions = {},
): Promise<OpenedLink | TlsPortOffer> {
  const addr = describeAddr(conn.remoteAddr);
  return await guarded(conn, opts.signal, async () => {
    conn.setNoDelay(true);
    const flags = (opts.plaintext ? FLAG_PLAINTEXT : 0) | (opts.askTlsPort ? FLAG_TLS_PORT : 0);
    await writeAll(conn, encodePreamble(undefined, flags));
    const decoder = new FrameDecoder({ maxFrameLength: MAX_LINK_FRAME });
    decoder.push(await readExactly(conn, PREAMBLE_LENGTH));
    const length = await readExactly(conn, 4);
    decoder.push(length);
    const size = new DataView(length.buffer).getUint32(0);
    const [msg] = decoder.push(await readExactly(conn, size));
    if (msg.type === "ERROR") throw new RemoteError(msg.header.code, msg.header.message);
    if (msg.type !== "LINK") {
      throw new ProtocolError("bad_handshake", `Expected 'LINK' from ${addr}, got '${msg.type}'`);
    }
    if (msg.header.mode === "plaintext") {
      if (!opts.plaintext) {
        throw new UnauthorizedError(
          "plaintext_refused",
          `Peer at ${addr} offers a link without encryption (--insecure-plaintext); refused`,
        );
      }
      return { conn, fingerprint: new Uint8Array(0), mode: "plaintext" };
    }
    if (opts.plaintext) {
      throw new UnauthorizedError(
        "plaintext_refused",
        `Peer at ${addr} does not run with --insecure-plaintext; both ends must`,
      );
    }
    if (opts.askTlsPort && msg.header.tlsPort !== undefined) {
      closeQuietly(conn);
      return { mode: "tls-port", tlsPort: msg.header.tlsPort, der: msg.body };
    }
    return await secureDialed(conn, msg.body, addr);
  });
}

/**
 * The dialer's side of a link on an acceptor's TLS link port, over a fresh TCP
 * connection to it: Deno's TLS pinned to exactly `der` (from the acceptor's LINK),
 * nothing in clear. Rejects, after closing `conn`, with `UnauthorizedError`
 * `tls_failed` (another certificate: the acceptor restarted, say) or the signal's reason.
 */
export async function dialNativeTls(
  conn: Deno.TcpConn,
  der: Uint8Array,
  signal?: AbortSignal,
): Promise<OpenedLink> {
  return await guarded(conn, signal, () => {
    conn.setNoDelay(true);
    return secureDialed(conn, der, describeAddr(conn.remoteAddr));
  });
}

/** Deno's TLS over `conn`, pinned to the certificate `der`, handshake done. */
async function secureDialed(
  conn: Deno.TcpConn,
  der: Uint8Array,
  addr: string,
): Promise<OpenedLink> {
  const secured = await Deno.startTls(conn, {
    hostname: LINK_CERT_NAME,
    caCerts: [pem("CERTIFICATE", der)],
  });
  try {
    // Now, so that a certificate other than the one LINK carried fails here.
    await secured.handshake();
  } catch (err) {
    closeQuietly(secured);
    throw new UnauthorizedError(
      "tls_failed",
      `Peer at ${addr}: TLS with the certificate it sent failed: ${String(err)}`,
      { cause: err },
    );
  }
  return { conn: secured, fingerprint: await certFingerprint(der), mode: "tls" };
}

/** Options of `acceptLink()`. */
export interface AcceptLinkOptions {
  /** This process's certificate. */
  cert: LinkCert;
  /** We run with `--insecure-plaintext`: a loopback dialer that asks for it gets it. */
  plaintextLoopback?: boolean;
  /** Our TLS link port, offered to a dialer that asks for it. */
  tlsPort?: number;
  /** Aborting it closes the connection and rejects. */
  signal?: AbortSignal;
}

/**
 * The acceptor's start of a link over an accepted TCP connection: reads the
 * dialer's preamble, answers with ours and LINK (or ERROR `plaintext_refused` when
 * the two ends disagree on plaintext, or a plaintext link is asked for off
 * loopback), and serves TLS; or, to a dialer that asked for our TLS link port when
 * we have one, offers it in LINK, closes `conn` and resolves to `null`. Rejects,
 * after closing `conn`, with `ProtocolError` (bad magic, version),
 * `UnauthorizedError` `plaintext_refused`, or the signal's reason.
 */
export function acceptLink(
  conn: Deno.TcpConn,
  opts: AcceptLinkOptions & { tlsPort?: undefined },
): Promise<OpenedLink>;
export function acceptLink(conn: Deno.TcpConn, opts: AcceptLinkOptions): Promise<OpenedLink | null>;
export async function acceptLink(
  conn: Deno.TcpConn,
  opts: AcceptLinkOptions,
): Promise<OpenedLink | null> {
  return await guarded(conn, opts.signal, async () => {
    conn.setNoDelay(true);
    const decoder = new FrameDecoder();
    decoder.push(await readExactly(conn, PREAMBLE_LENGTH));
    const flags = decoder.preamble?.flags ?? 0;
    const askedPlaintext = (flags & FLAG_PLAINTEXT) !== 0;
    const loopback = isLoopback(conn.remoteAddr.hostname) && isLoopback(conn.localAddr.hostname);
    const refusal = askedPlaintext !== !!opts.plaintextLoopback
      ? (askedPlaintext
        ? "This peer does not accept links without encryption"
        : "This peer runs with --insecure-plaintext; the dialer must too")
      : askedPlaintext && !loopback
      ? "Links without encryption are accepted on loopback addresses only"
      : undefined;
    if (refusal !== undefined) {
      const refused = new UnauthorizedError("plaintext_refused", refusal);
      await writeAll(
        conn,
        concatBytes(
          encodePreamble(),
          encodeFrame({
            type: "ERROR",
            requestId: 0,
            header: { code: refused.code, message: refusal },
          }),
        ),
      ).catch(() => undefined);
      throw refused;
    }
    if (askedPlaintext) {
      await writeAll(
        conn,
        concatBytes(
          encodePreamble(undefined, FLAG_PLAINTEXT),
          encodeFrame({ type: "LINK", requestId: 0, header: { mode: "plaintext" } }),
        ),
      );
      return { conn, fingerprint: new Uint8Array(0), mode: "plaintext" };
    }
    const offer = (flags & FLAG_TLS_PORT) !== 0 && opts.tlsPort !== undefined;
    const header = offer
      ? { mode: "tls" as const, tlsPort: opts.tlsPort }
      : { mode: "tls" as const };
    await writeAll(
      conn,
      concatBytes(
        encodePreamble(),
        encodeFrame({ type: "LINK", requestId: 0, header, body: opts.cert.der }),
      ),
    );
    if (offer) {
      // The dialer closes first once it has read LINK; ours follows.
      closeQuietly(conn);
      return null;
    }
    return {
      conn: serveTls(conn, opts.cert),
      fingerprint: await certFingerprint(opts.cert.der),
      mode: "tls",
    };
  });
}

/**
 * The acceptor's side of a link on its TLS link port: the TLS handshake of a
 * connection `Deno.listenTls` accepted (which does none before asked). Rejects,
 * after closing `conn`, with `UnauthorizedError` `tls_failed` or the signal's reason.
 */
export async function acceptNativeTls(
  conn: Deno.TlsConn,
  cert: LinkCert,
  signal?: AbortSignal,
): Promise<OpenedLink> {
  return await guarded(conn, signal, async () => {
    try {
      await conn.handshake();
    } catch (err) {
      throw new UnauthorizedError(
        "tls_failed",
        `TLS from ${describeAddr(conn.remoteAddr)} failed: ${String(err)}`,
        { cause: err },
      );
    }
    // (Deno.TlsConn has no setNoDelay: Nagle's algorithm stays on for this side.)
    return { conn, fingerprint: await certFingerprint(cert.der), mode: "tls" };
  });
}

/** The server side of TLS over an accepted Deno TCP connection, as web streams. */
function serveTls(conn: Deno.TcpConn, cert: LinkCert): DuplexConn {
  const socket = new tls.TLSSocket(new TcpDuplex(conn), {
    isServer: true,
    key: cert.keyPem,
    cert: cert.certPem,
    minVersion: "TLSv1.3",
  });
  // A TLS error (a dialer that does not speak TLS) surfaces as the stream's error.
  socket.on("error", () => socket.destroy());
  const web = Duplex.toWeb(socket) as {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  };
  return {
    readable: web.readable,
    writable: web.writable,
    remoteAddr: conn.remoteAddr,
    close() {
      socket.destroy();
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/** A `Deno.TcpConn` as a node:stream Duplex (what node:tls wraps). */
class TcpDuplex extends Duplex {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(64 * 1024);

  constructor(conn: Deno.TcpConn) {
    super();
    this.#conn = conn;
  }

  override _read(): void {
    const buffer = this.#buffer;
    this.#conn.read(buffer).then((n) => {
      if (n === null) {
        this.push(null);
        return;
      }
      // push() keeps the bytes: read the next ones into a fresh buffer.
      this.#buffer = new Uint8Array(buffer.length);
      this.push(buffer.subarray(0, n));
    }, (err) => this.destroy(err));
  }

  override _write(chunk: Uint8Array, _enc: string, done: (err?: Error | null) => void): void {
    writeAll(this.#conn, chunk).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#conn.closeWrite().then(() => done(), () => done());
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    done(err);
  }
}

/** Runs `work` on `conn`; on failure or abort closes `conn` and rejects. */
async function guarded<T>(
  conn: Deno.TcpConn | Deno.TlsConn,
  signal: AbortSignal | undefined,
  work: () => Promise<T>,
): Promise<T> {
  const onAbort = () => closeQuietly(conn);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    return await work();
  } catch (err) {
    closeQuietly(conn);
    if (signal?.aborted) throw signal.reason;
    if (err instanceof P2pError) throw err;
    throw new ProtocolError("link_failed", `Link start failed: ${String(err)}`, { cause: err });
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Reads exactly `n` bytes (never more: what follows belongs to TLS). */
async function readExactly(conn: Deno.TcpConn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const got = await conn.read(out.subarray(at));
    if (got === null) {
      throw new ProtocolError("closed", "Connection closed during the link start");
    }
    at += got;
  }
  return out;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

function describeAddr(addr: Deno.Addr): string {
  return addr.transport === "tcp" ? hostPort(addr.hostname, addr.port) : addr.transport;
}

function pem(label: string, der: Uint8Array): string {
  const lines = toBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0");
}
