import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { RemoteError } from "../proto/answers.ts";
import { UnauthorizedError } from "../proto/errors.ts";
import {
  acceptLink,
  acceptNativeTls,
  certFingerprint,
  createLinkCert,
  dialLink,
  dialNativeTls,
  LINK_CERT_NAME,
  type LinkCert,
} from "./link_tls.ts";

const LOCAL = "127.0.0.1";

/** A dialed and an accepted TCP connection on loopback. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: LOCAL, port: 0 });
  const [dialed, accepted] = await Promise.all([
    Deno.connect({ hostname: LOCAL, port: listener.addr.port }),
    listener.accept(),
  ]);
  return [dialed, accepted];
}

/** Writes `text` on one side of an opened link and reads it on the other. */
async function echo(
  from: WritableStream<Uint8Array>,
  to: ReadableStream<Uint8Array>,
  text: string,
) {
  const writer = from.getWriter();
  await writer.write(new TextEncoder().encode(text));
  writer.releaseLock();
  const reader = to.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return new TextDecoder().decode(value);
}

Deno.test("createLinkCert() makes an ECDSA P-256 end-entity certificate for p2p.invalid", async () => {
  const cert = await createLinkCert();
  const parsed = new x509.X509Certificate(cert.der as Uint8Array<ArrayBuffer>);
  const constraints = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.equal(constraints?.ca, false);
  assert.equal(constraints?.critical, true);
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  assert.deepEqual(san?.names.items.map((n) => n.value), [LINK_CERT_NAME]);
  assert.equal((parsed.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
  assert.match(cert.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.equal((await certFingerprint(cert.der)).length, 32);
});

Deno.test("dialLink() and acceptLink() agree on the certificate's fingerprint and carry bytes over TLS", async () => {
  const cert = await createLinkCert();
  const [d, a] = await tcpPair();
  const [dialed, accepted] = await Promise.all([dialLink(d), acceptLink(a, { cert })]);
  try {
    assert.equal(dialed.mode, "tls");
    assert.deepEqual(dialed.fingerprint, accepted.fingerprint);
    assert.deepEqual(dialed.fingerprint, await certFingerprint(cert.der));
    assert.equal(await echo(dialed.conn.writable, accepted.conn.readable, "ping"), "ping");
    assert.equal(await echo(accepted.conn.writable, dialed.conn.readable, "pong"), "pong");
  } finally {
    dialed.conn.close();
    accepted.conn.close();
  }
});

Deno.test("dialLink() refuses an acceptor whose TLS certificate is not the one it sent in LINK", async () => {
  const [shown, served] = [await createLinkCert(), await createLinkCert()];
  const [d, a] = await tcpPair();
  // A man in the middle: LINK carries one certificate, TLS is served with another.
  const accepted = acceptLink(a, { cert: { ...served, der: shown.der } });
  await assert.rejects(
    dialLink(d),
    (e) => e instanceof UnauthorizedError && e.code === "tls_failed",
  );
  const link = await accepted;
  // The acceptor's side ends with the dialer's refusal.
  const reader = link.conn.readable.getReader();
  await reader.read().then(() => undefined, () => undefined);
  reader.releaseLock();
  link.conn.close();
});

Deno.test("a plaintext link is made only when both ends ask for it, on loopback", async () => {
  const cert = await createLinkCert();
  {
    const [d, a] = await tcpPair();
    const [dialed, accepted] = await Promise.all([
      dialLink(d, { plaintext: true }),
      acceptLink(a, { cert, plaintextLoopback: true }),
    ]);
    assert.equal(dialed.mode, "plaintext");
    assert.equal(accepted.mode, "plaintext");
    assert.equal(dialed.fingerprint.length, 0);
    assert.equal(await echo(dialed.conn.writable, accepted.conn.readable, "clear"), "clear");
    dialed.conn.close();
    accepted.conn.close();
  }
  for (const [dialerAsks, acceptorAllows] of [[true, false], [false, true]]) {
    const [d, a] = await tcpPair();
    const [dialed, accepted] = await Promise.allSettled([
      dialLink(d, { plaintext: dialerAsks }),
      acceptLink(a, { cert, plaintextLoopback: acceptorAllows }),
    ]);
    assert.equal(dialed.status, "rejected");
    assert.equal(accepted.status, "rejected");
    const err = (dialed as PromiseRejectedResult).reason;
    assert.ok(err instanceof RemoteError || err instanceof UnauthorizedError, String(err));
    assert.equal(err.code, "plaintext_refused");
    assert.equal((accepted as PromiseRejectedResult).reason.code, "plaintext_refused");
  }
});

/** A TLS link listener on 127.0.0.1 with `cert`, as a chunk service runs one. */
function listenTls(cert: LinkCert): Deno.TlsListener {
  return Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: cert.certPem, key: cert.keyPem });
}

Deno.test("acceptLink() offers its TLS link port to a dialer that asks, and only then; dialNativeTls() links there pinned", async () => {
  const cert = await createLinkCert();
  const tls = listenTls(cert);
  try {
    // Asked: the offer, and the chunk port's connection is closed on both sides.
    const [d, a] = await tcpPair();
    const [offer, accepted] = await Promise.all([
      dialLink(d, { askTlsPort: true }),
      acceptLink(a, { cert, tlsPort: tls.addr.port }),
    ]);
    assert.equal(accepted, null);
    assert.equal(offer.mode, "tls-port");
    if (offer.mode !== "tls-port") return;
    assert.equal(offer.tlsPort, tls.addr.port);
    assert.deepEqual(offer.der, cert.der);
    // There: Deno's TLS on both ends, the same certificate's fingerprint.
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: offer.tlsPort });
    const [dialed, served] = await Promise.all([
      dialNativeTls(raw, offer.der),
      tls.accept().then((c) => acceptNativeTls(c, cert)),
    ]);
    assert.deepEqual(dialed.fingerprint, served.fingerprint);
    assert.equal(await echo(dialed.conn.writable, served.conn.readable, "over"), "over");
    dialed.conn.close();
    served.conn.close();
    // Not asked: TLS on this connection, as before.
    const [d2, a2] = await tcpPair();
    const [plain, there] = await Promise.all([
      dialLink(d2),
      acceptLink(a2, { cert, tlsPort: tls.addr.port }),
    ]);
    assert.equal(plain.mode, "tls");
    assert.ok(there);
    plain.conn.close();
    there.conn.close();
  } finally {
    tls.close();
  }
});

Deno.test("dialNativeTls() refuses a TLS link port whose certificate is not the one offered", async () => {
  const [offered, other] = await Promise.all([createLinkCert(), createLinkCert()]);
  const tls = listenTls(other);
  try {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: tls.addr.port });
    const served = tls.accept().then((c) => acceptNativeTls(c, other)).catch((err) => err);
    await assert.rejects(
      dialNativeTls(raw, offered.der),
      (err) => err instanceof UnauthorizedError && err.code === "tls_failed",
    );
    assert.ok((await served) instanceof UnauthorizedError, "the acceptor's side fails too");
  } finally {
    tls.close();
  }
});
