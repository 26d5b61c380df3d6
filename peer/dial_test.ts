import assert from "node:assert/strict";
import { connectPeer } from "./dial.ts";
import { type ChunkServiceOptions, startChunkService } from "./service.ts";
import { IdentityBook } from "./_link_fixtures.ts";

const LOCAL = "127.0.0.1";
const BOOK = await IdentityBook.create(8);

/** A chunk service of the identity "service" on 127.0.0.1, its TLS link port up. */
async function service(opts: Partial<ChunkServiceOptions> = {}) {
  const s = await startChunkService({
    hostname: LOCAL,
    port: 0,
    hello: () => BOOK.hello("service"),
    link: { sign: BOOK.get("service").sign },
    handler: () => undefined,
    ...opts,
  });
  await s.ready;
  return s;
}

Deno.test("connectPeer() moves to the TLS link port the acceptor offers, then goes there at once", async () => {
  await using s = await service();
  assert.ok(s.tlsPort !== undefined && s.tlsPort !== s.addr.port);
  {
    await using first = await connectPeer(s.addr, BOOK.dial("a"));
    assert.equal(first.remoteAddr?.port, s.tlsPort, "the link runs on the TLS link port");
    assert.equal((await first.request({ type: "PING", header: {} })).type, "PONG");
  }
  // The chunk port's connection that offered it, then the link itself.
  assert.equal(s.stats.accepted, 2);
  {
    await using again = await connectPeer(s.addr, BOOK.dial("b"));
    assert.equal(again.remoteAddr?.port, s.tlsPort);
  }
  assert.equal(s.stats.accepted, 3, "the second link went to the remembered port at once");
  assert.equal(s.stats.failed, 0);
});

Deno.test("connectPeer() to a restarted acceptor with another certificate on the same ports links again through its chunk port", async () => {
  const before = await service();
  const { port } = before.addr;
  const tlsPort = before.tlsPort!;
  {
    await using c = await connectPeer(before.addr, BOOK.dial("a"));
    assert.equal(c.remoteAddr?.port, tlsPort);
  }
  await before.stop();
  // Same identity and ports, a new process certificate: the remembered one fails TLS.
  await using after = await service({ port, tlsPort });
  assert.equal(after.tlsPort, tlsPort);
  await using c = await connectPeer(after.addr, BOOK.dial("a"));
  assert.equal(c.remoteAddr?.port, tlsPort);
  assert.equal((await c.request({ type: "PING", header: {} })).type, "PONG");
  // The failed TLS try, the chunk port's offer, the link.
  assert.equal(after.stats.accepted, 3);
});

Deno.test("without a TLS link port (tlsPort false) the link runs on the chunk port", async () => {
  await using s = await service({ tlsPort: false });
  assert.equal(s.tlsPort, undefined);
  await using c = await connectPeer(s.addr, BOOK.dial("a"));
  assert.equal(c.remoteAddr?.port, s.addr.port);
  assert.equal((await c.request({ type: "PING", header: {} })).type, "PONG");
});

Deno.test("a plaintext loopback link never uses the TLS link port", async () => {
  await using s = await service({
    link: { sign: BOOK.get("service").sign, plaintextLoopback: true },
  });
  assert.equal(s.tlsPort, undefined);
  const opts = BOOK.dial("a");
  await using c = await connectPeer(s.addr, { ...opts, link: { ...opts.link, plaintext: true } });
  assert.equal(c.remoteAddr?.port, s.addr.port);
});

Deno.test("the TLS link port counts connections against the same rate as the chunk port, refusing before any TLS", async () => {
  await using s = await service({ loopbackConnectionRate: { perSecond: 0.01, burst: 2 } });
  // Two go through (the offer, then the link); the third, to the TLS port, is closed
  // unanswered, and the fallback to the chunk port hears why.
  {
    await using _ = await connectPeer(s.addr, BOOK.dial("a"));
  }
  await assert.rejects(
    connectPeer(s.addr, BOOK.dial("b")),
    (err: Error & { code?: string }) => err.code === "rate_limited",
  );
  assert.equal(s.stats.rejected, 2);
});
