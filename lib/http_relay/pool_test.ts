import assert from "node:assert/strict";
import { Deadlines } from "./deadlines.ts";
import { type UpstreamAddress, UpstreamPool } from "./pool.ts";

/** A TCP server on 127.0.0.1 that holds every connection until disposed. */
function holdingServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  const to: UpstreamAddress = {
    hostname: "127.0.0.1",
    port: listener.addr.port,
    key: `127.0.0.1:${listener.addr.port}`,
  };
  return {
    to,
    held,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      for (const c of held) c.close();
    },
  };
}

Deno.test("UpstreamPool keeps a released connection idle and gives it to the next take()", async () => {
  await using server = holdingServer();
  const deadlines = new Deadlines(5);
  const pool = new UpstreamPool(deadlines, 1_000);
  assert.equal(pool.take(server.to), undefined);
  const up = await pool.dial(server.to);
  assert.equal(up.reused, false);
  pool.release(up);
  assert.equal(pool.idleCount, 1);
  const again = pool.take(server.to);
  assert.equal(again, up);
  assert.equal(again?.reused, true);
  assert.equal(pool.idleCount, 0);
  up.conn.close();
  deadlines.stop();
});

Deno.test("UpstreamPool closes a connection idle for idleMs, and keeps at most maxIdle", async () => {
  await using server = holdingServer();
  const deadlines = new Deadlines(5);
  const pool = new UpstreamPool(deadlines, 20, 2);
  const ups = await Promise.all([1, 2, 3].map(() => pool.dial(server.to)));
  for (const up of ups) pool.release(up);
  assert.equal(pool.idleCount, 2, "the third is closed at once");
  await assert.rejects(() => ups[2].conn.read(new Uint8Array(1)), Deno.errors.BadResource);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(pool.idleCount, 0);
  assert.equal(pool.take(server.to), undefined);
  deadlines.stop();
});

Deno.test("UpstreamPool.take() skips a connection the upstream has closed", async () => {
  await using server = holdingServer();
  const deadlines = new Deadlines(5);
  const pool = new UpstreamPool(deadlines, 1_000);
  const up = await pool.dial(server.to);
  pool.release(up);
  while (server.held.length === 0) await new Promise((r) => setTimeout(r, 1));
  server.held[0].close();
  server.held.length = 0;
  up.inbox.watch();
  while (!up.inbox.eof) await up.inbox.fill();
  assert.equal(pool.take(server.to), undefined);
  deadlines.stop();
});

Deno.test("UpstreamPool.close() closes the idle connections and those released after", async () => {
  await using server = holdingServer();
  const deadlines = new Deadlines(5);
  const pool = new UpstreamPool(deadlines, 1_000);
  const [a, b] = await Promise.all([pool.dial(server.to), pool.dial(server.to)]);
  pool.release(a);
  pool.close();
  pool.release(b);
  assert.equal(pool.idleCount, 0);
  for (const up of [a, b]) {
    await assert.rejects(() => up.conn.read(new Uint8Array(1)), Deno.errors.BadResource);
  }
  deadlines.stop();
});
