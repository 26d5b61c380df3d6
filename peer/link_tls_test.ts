import assert from "node:assert/strict";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { RemoteError } from "../proto/answers.ts";
import { UnauthorizedError } from "../proto/errors.ts";
import {
  acceptLink,
  certFingerprint,
  createLinkCert,
  dialLink,
  LINK_CERT_NAME,
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
