import assert from "node:assert/strict";
import { ConnectionPool } from "./pool.ts";
import { connectPeer } from "./dial.ts";
import { startChunkService } from "./service.ts";
import type { PeerSource, Sighting } from "./peer_table.ts";
import { fakeLog, memoryTable } from "./_fakes.ts";
import { IdentityBook } from "./_link_fixtures.ts";
import { UnauthorizedError } from "../proto/errors.ts";

const BOOK = await IdentityBook.create(10);
const hello = (name: string, ports?: { chunk: number; http?: number }) => BOOK.hello(name, ports);
const peerIdOf = (name: string) => BOOK.get(name).peerId;
const link = (name: string) => ({ sign: BOOK.get(name).sign });

const LOCAL = "127.0.0.1";

/** A pool (peer "me") and a chunk service (peer "far") on loopback. */
async function setup() {
  const table = await memoryTable(peerIdOf("me"));
  const log = fakeLog();
  const abort = new AbortController();
  const service = await startChunkService({
    hostname: LOCAL,
    port: 0,
    hello: () => hello("far", { chunk: 1234, http: 99 }),
    link: link("far"),
    handler: () => undefined,
  });
  const pool = new ConnectionPool({
    hello: () => hello("me"),
    link: link("me"),
    handler: () => undefined,
    table,
    log,
    signal: abort.signal,
  });
  return {
    table,
    log,
    service,
    pool,
    async [Symbol.asyncDispose]() {
      await pool.close();
      abort.abort();
      await service.stop(0);
      await table[Symbol.asyncDispose]();
    },
  };
}

Deno.test("ConnectionPool.connect() opens one connection per address, reuses it and notes the peer", async () => {
  await using s = await setup();
  const [c1, c2] = await Promise.all([
    s.pool.connect(LOCAL, s.service.addr.port),
    s.pool.connect(LOCAL, s.service.addr.port),
  ]);
  assert.equal(c1, c2);
  assert.equal(s.pool.size, 1);
  assert.equal((await c1.request({ type: "PING", header: {} })).type, "PONG");
  const known = s.table.get(peerIdOf("far"));
  assert.equal(known?.host, LOCAL);
  assert.deepEqual(known?.sources, ["seed"]);
  assert.deepEqual(known?.ports, { chunk: 1234, http: 99 });
  assert.ok(known?.rttMs !== undefined);
});

Deno.test("ConnectionPool drops a connection from the pool once it closes", async () => {
  await using s = await setup();
  const c = await s.pool.connect(LOCAL, s.service.addr.port);
  c.close();
  await c.closed;
  await Promise.resolve();
  assert.equal(s.pool.size, 0);
  const again = await s.pool.connect(LOCAL, s.service.addr.port);
  assert.notEqual(again, c);
});

Deno.test("ConnectionPool.connectKnown() counts and logs a peer that cannot be reached", async () => {
  await using s = await setup();
  const closed = Deno.listen({ hostname: LOCAL, port: 0 });
  const port = closed.addr.port;
  closed.close();
  const peer = await s.table.upsert(
    { peerId: peerIdOf("gone"), host: LOCAL, ports: { chunk: port } },
    "exchange",
  );
  assert.equal(await s.pool.connectKnown(peer!), undefined);
  assert.equal(s.table.get(peerIdOf("gone"))?.failures, 1);
  assert.equal(s.log.of("conn.fail")[0].peerId, peerIdOf("gone"));
  assert.equal(s.pool.size, 0);
});

Deno.test("ConnectionPool.connectKnown() refuses an address where another peer proves its id", async () => {
  await using s = await setup();
  // The table says "moved" listens there; the service proves it is "far".
  const peer = await s.table.upsert(
    { peerId: peerIdOf("moved"), host: LOCAL, ports: { chunk: s.service.addr.port } },
    "exchange",
  );
  assert.equal(await s.pool.connectKnown(peer!), undefined);
  const [fail] = s.log.of("conn.fail");
  assert.equal(fail.peerId, peerIdOf("moved"));
  assert.match(String(fail.message), /unexpected_peer|Expected peer/);
  // A connection already pooled to that address is refused for that id as well.
  await s.pool.connect(LOCAL, s.service.addr.port);
  await assert.rejects(
    s.pool.connect(LOCAL, s.service.addr.port, peerIdOf("moved")),
    (e) => e instanceof UnauthorizedError && e.code === "unexpected_peer",
  );
});

Deno.test("ConnectionPool.noteInbound() notes an inbound peer at its source address", async () => {
  const noted = Promise.withResolvers<{ sighting: Sighting; source: PeerSource }>();
  const pool = new ConnectionPool({
    hello: () => hello("me"),
    link: link("me"),
    handler: () => undefined,
    table: {
      upsert: (sighting, source) => {
        noted.resolve({ sighting, source });
        return Promise.resolve(undefined);
      },
      seen: () => Promise.resolve(),
      failed: () => Promise.resolve(),
    },
    log: fakeLog(),
    signal: new AbortController().signal,
  });
  await using service = await startChunkService({
    hostname: LOCAL,
    port: 0,
    hello: () => hello("me"),
    link: link("me"),
    handler: () => undefined,
    onConnection: (conn) => pool.noteInbound(conn),
  });
  await using _c = await connectPeer(service.addr, BOOK.dial("caller", { chunk: 4321 }));
  const { sighting, source } = await noted.promise;
  assert.equal(source, "inbound");
  assert.equal(sighting.peerId, peerIdOf("caller"));
  assert.equal(sighting.host, LOCAL);
  assert.deepEqual(sighting.ports, { chunk: 4321 });
});
