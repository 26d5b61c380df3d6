import assert from "node:assert/strict";
import { RemoteError } from "./connection.ts";
import { connectPeer } from "./dial.ts";
import { type ChunkServiceOptions, startChunkService } from "./service.ts";
import { IdentityBook } from "./_link_fixtures.ts";

const BOOK = await IdentityBook.create(40);

/** A service on 127.0.0.1 with `opts`, its events kept by type. */
async function rateService(opts: Partial<ChunkServiceOptions>) {
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  const service = await startChunkService({
    hostname: "127.0.0.1",
    port: 0,
    hello: () => BOOK.hello("service"),
    link: { sign: BOOK.get("service").sign },
    handler: () => undefined,
    onEvent: (type, fields) => events.push({ type, fields }),
    // One connection per link, on the chunk port (the TLS link port's share of the
    // rate is dial_test.ts's).
    tlsPort: false,
    ...opts,
  });
  const rejects = () => events.filter((e) => e.type === "conn.reject").map((e) => e.fields);
  return { service, rejects };
}

const isRateLimited = (err: unknown) => err instanceof RemoteError && err.code === "rate_limited";

Deno.test("startChunkService() refuses new connections over an address's rate with ERROR rate_limited before the handshake, and serves again after the wait", async () => {
  const rate = { perSecond: 1, burst: 3 };
  const { service, rejects } = await rateService({
    connectionRate: rate,
    loopbackConnectionRate: rate,
  });
  await using _ = service;
  const links = [];
  try {
    for (let i = 0; i < 3; i++) links.push(await connectPeer(service.addr, BOOK.dial(`c${i}`)));
    await assert.rejects(connectPeer(service.addr, BOOK.dial("c3")), isRateLimited);
    assert.deepEqual(rejects().map((f) => [f.code, f.from]), [["rate_limited", "127.0.0.1"]]);
    assert.equal(service.stats.rejected, 1);
    assert.equal(service.stats.failed, 0, "no handshake was started for it");
    // The links already open go on.
    const pong = await links[0].request({ type: "PING", header: {} });
    assert.equal(pong.type, "PONG");
    // One token a second: a new link is let in after the wait.
    await new Promise((r) => setTimeout(r, 1100));
    const late = await connectPeer(service.addr, BOOK.dial("c4"));
    links.push(late);
    // Its PING answered, the service holds it: four links, one refusal.
    assert.equal((await late.request({ type: "PING", header: {} })).type, "PONG");
    assert.equal(service.connections.size, 4);
    assert.equal(service.stats.rejected, 1);
  } finally {
    for (const l of links) l.close();
    await Promise.all(links.map((l) => l.closed));
  }
});

Deno.test("startChunkService() folds the conn.reject events of a connection flood into a count", async () => {
  const { service, rejects } = await rateService({
    loopbackConnectionRate: { perSecond: 0.01, burst: 1 },
  });
  {
    await using _ = service;
    await using first = await connectPeer(service.addr, BOOK.dial("first"));
    for (let i = 0; i < 20; i++) {
      await assert.rejects(connectPeer(service.addr, BOOK.dial("flood")), isRateLimited);
    }
    assert.equal(rejects().length, 5, "the first five of the minute");
    assert.equal((await first.request({ type: "PING", header: {} })).type, "PONG");
  }
  // The stop tells the rest.
  const folded = rejects().filter((f) => f.folded);
  assert.deepEqual(folded, [{
    from: "127.0.0.1",
    code: "rate_limited",
    reason: "too many new connections from this address",
    count: 15,
    folded: true,
  }]);
});

Deno.test("startChunkService() takes loopback connections at the loopback rate, not the LAN one", async () => {
  const { service } = await rateService({ connectionRate: { perSecond: 0.01, burst: 1 } });
  await using _ = service;
  const links = [];
  try {
    for (let i = 0; i < 4; i++) links.push(await connectPeer(service.addr, BOOK.dial(`l${i}`)));
    assert.equal(service.stats.rejected, 0);
  } finally {
    for (const l of links) l.close();
    await Promise.all(links.map((l) => l.closed));
  }
});

Deno.test("startChunkService() rejects a connection rate that is not positive", async () => {
  for (const connectionRate of [{ perSecond: 0, burst: 5 }, { perSecond: 1, burst: 0 }]) {
    await assert.rejects(
      startChunkService({
        hostname: "127.0.0.1",
        port: 0,
        hello: () => BOOK.hello("service"),
        link: { sign: BOOK.get("service").sign },
        handler: () => undefined,
        connectionRate,
      }),
      RangeError,
    );
  }
});
