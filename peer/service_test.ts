import assert from "node:assert/strict";
import { encodePreamble } from "../proto/frame.ts";
import type { HelloHeader } from "../proto/messages.ts";
import { type PeerConnection, RemoteError, type RequestHandler } from "./connection.ts";
import { connectPeer } from "./dial.ts";
import { type ChunkServiceOptions, startChunkService } from "./service.ts";
import { IdentityBook } from "./_link_fixtures.ts";

const PAYLOAD = "cd".repeat(32);
const LOCAL = "127.0.0.1";

const BOOK = await IdentityBook.create(60);

function hello(name: string): HelloHeader {
  return BOOK.hello(name);
}

/** `connectPeer()` options of the client `name`. */
function dial(name: string) {
  return BOOK.dial(name);
}

function chunkBody(index: number, size = 1024): Uint8Array {
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (index * 13 + i) & 0xff;
  return body;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Answers GET_CHUNK with `chunkBody(index)`. */
const chunkHandler: RequestHandler = (msg) =>
  msg.type === "GET_CHUNK"
    ? { type: "CHUNK", header: msg.header, body: chunkBody(msg.header.index) }
    : undefined;

/** Records service events and lets a test wait for one. */
function eventLog() {
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  const waiters: { type: string; resolve: (f: Record<string, unknown>) => void }[] = [];
  return {
    events,
    of: (type: string) => events.filter((e) => e.type === type).map((e) => e.fields),
    onEvent(type: string, fields: Record<string, unknown>) {
      events.push({ type, fields });
      for (const w of waiters.splice(0)) {
        if (w.type === type) w.resolve(fields);
        else waiters.push(w);
      }
    },
    next(type: string): Promise<Record<string, unknown>> {
      const { promise, resolve } = Promise.withResolvers<Record<string, unknown>>();
      waiters.push({ type, resolve });
      return promise;
    },
  };
}

function start(opts: Partial<ChunkServiceOptions> = {}) {
  return startChunkService({
    hostname: LOCAL,
    port: 0,
    hello: () => hello("service"),
    link: { sign: BOOK.get("service").sign },
    handler: chunkHandler,
    ...opts,
  });
}

async function fetchChunks(conn: PeerConnection, indexes: number[]): Promise<void> {
  const answers = await Promise.all(
    indexes.map((index) =>
      conn.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index } })
    ),
  );
  for (const [i, answer] of answers.entries()) {
    assert.equal(answer.header.index, indexes[i]);
    assert.deepEqual(answer.body, chunkBody(indexes[i]));
  }
}

/** Reads until the other side closes (or resets) the connection. */
async function readToEnd(conn: Deno.TcpConn): Promise<void> {
  try {
    for await (const _ of conn.readable) { /* discard */ }
  } catch { /* reset */ }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** One misbehaving client of the given kind, from connect to close. */
async function badClient(port: number, kind: number): Promise<void> {
  const conn = await Deno.connect({ hostname: LOCAL, port });
  try {
    const w = (bytes: Uint8Array) => conn.write(bytes).catch(() => 0);
    switch (kind % 4) {
      case 0: { // random bytes, then hang up
        const junk = crypto.getRandomValues(new Uint8Array(1 + (kind % 61)));
        junk[0] = 0x47; // never "P": not our magic
        await w(junk);
        return;
      }
      case 1: // connect and say nothing: the handshake timeout must close it
        await readToEnd(conn);
        return;
      case 2: { // a valid preamble, then garbage framed as a frame of an unknown type (not TLS)
        const junk = crypto.getRandomValues(new Uint8Array(20));
        new DataView(junk.buffer).setUint32(0, 16);
        junk[4] = 17 + (junk[4] % 239);
        await w(encodePreamble());
        await w(junk);
        await readToEnd(conn);
        return;
      }
      default: { // a valid preamble, then an absurd frame length (not TLS either)
        const length = new Uint8Array(4);
        new DataView(length.buffer).setUint32(0, 0xffff_ffff);
        await w(encodePreamble());
        await w(length);
        await readToEnd(conn);
      }
    }
  } finally {
    closeQuietly(conn);
  }
}

Deno.test("startChunkService() serves 20 concurrent clients with 20 pipelined requests each", async () => {
  const log = eventLog();
  const seen: PeerConnection[] = [];
  await using service = await start({
    onEvent: log.onEvent,
    onConnection: (c) => seen.push(c),
    maxPerAddress: 20,
  });
  assert.equal(service.addr.hostname, LOCAL);
  assert.notEqual(service.addr.port, 0);
  const clients = await Promise.all(
    Array.from({ length: 20 }, (_, i) => connectPeer(service.addr, dial(`c${i}`))),
  );
  try {
    await Promise.all(
      clients.map((c, i) => fetchChunks(c, Array.from({ length: 20 }, (_, j) => i * 100 + j))),
    );
    assert.equal(service.connections.size, 20);
    assert.deepEqual(new Set(seen), service.connections);
    assert.ok(seen.every((c) => c.remoteAddr?.hostname === LOCAL));
    assert.equal(log.of("conn.open").length, 20);
    assert.deepEqual(
      new Set(log.of("conn.open").map((f) => f.peerId)),
      new Set(clients.map((_, i) => hello(`c${i}`).peerId)),
    );
  } finally {
    for (const c of clients) c.close();
    await Promise.all(clients.map((c) => c.closed));
  }
});

Deno.test("1000 garbage and half-open connections do not stop the service from serving", async () => {
  const log = eventLog();
  await using service = await start({
    // Long enough for a TLS handshake while 200 clients misbehave at once.
    handshakeTimeoutMs: 1500,
    maxConnections: 500,
    maxPerAddress: 500,
    onEvent: log.onEvent,
  });
  await using client = await connectPeer(service.addr, dial("good"));
  const { port } = service.addr;
  let served = 0;
  // Batches of 200 at once keep well under the fd limit (`ulimit -n`) and the cap.
  for (let batch = 0; batch < 5; batch++) {
    const flood = Promise.all(
      Array.from({ length: 200 }, (_, i) => badClient(port, batch * 200 + i)),
    );
    // A client connecting in the middle of the flood is served, and so is the old one.
    await using late = await connectPeer(service.addr, dial(`late${batch}`));
    await Promise.all([
      fetchChunks(client, [batch, batch + 10, batch + 20]),
      fetchChunks(late, [batch + 30]),
    ]);
    served += 4;
    await flood;
  }
  // Connections closed by the clients may still be in their handshake: wait for all.
  while (service.stats.failed < 1000) await log.next("conn.error");
  await fetchChunks(client, [999]);
  assert.equal(served, 20);
  assert.equal(log.of("conn.error").length, 1000);
  assert.equal(service.stats.rejected, 0);
  const codes = new Set(log.of("conn.error").map((f) => f.code ?? f.reason));
  assert.ok(codes.has("bad_magic"), `codes: ${[...codes]}`);
  // Garbage after a valid preamble goes to TLS, which refuses it.
  assert.ok(codes.has("read_failed"), `codes: ${[...codes]}`);
  assert.ok(
    log.of("conn.error").some((f) => /^PeerTimeoutError: .*handshake/.test(String(f.reason))),
    "silent connections are closed by the handshake timeout",
  );
  assert.deepEqual([...service.connections].map((c) => c.remote.name), ["good"]);
});

Deno.test("startChunkService() refuses a connection over maxConnections and keeps serving", async () => {
  const log = eventLog();
  // On the chunk port alone: a dialer refused at the TLS link port tries there too.
  await using service = await start({ maxConnections: 2, onEvent: log.onEvent, tlsPort: false });
  await using first = await connectPeer(service.addr, dial("first"));
  await using second = await connectPeer(service.addr, dial("second"));
  const rejected = log.next("conn.reject");
  await assert.rejects(
    connectPeer(service.addr, dial("third")),
    (err) => err instanceof RemoteError && err.code === "busy",
  );
  assert.equal((await rejected).reason, "too many connections");
  assert.equal(service.stats.rejected, 1);
  await fetchChunks(first, [1, 2]);
  await fetchChunks(second, [3]);
  // Once one leaves, a new one is let in.
  const left = log.next("conn.close");
  first.close();
  await left;
  await using fourth = await connectPeer(service.addr, dial("fourth"));
  await fetchChunks(fourth, [4]);
  assert.equal(service.stats.accepted, 3);
});

Deno.test("the service's idle timeout closes a connection with no frames either way", async () => {
  const log = eventLog();
  await using service = await start({ idleTimeoutMs: 200, onEvent: log.onEvent });
  await using client = await connectPeer(service.addr, dial("idle"));
  const closing = log.next("conn.close");
  await client.closed;
  assert.match(client.closeReason!, /closed by peer|Read failed/);
  const fields = await closing;
  assert.equal(fields.peerId, hello("idle").peerId);
  assert.match(String(fields.reason), /idle timeout/);
  assert.equal(service.connections.size, 0);
});

Deno.test("ChunkService.stop() lets an in-flight request finish within the grace period", async () => {
  const started = Promise.withResolvers<void>();
  const handler: RequestHandler = async (msg) => {
    started.resolve();
    await delay(200);
    return chunkHandler(msg, undefined as never);
  };
  const service = await start({ handler });
  await using client = await connectPeer(service.addr, dial("patient"));
  const answer = client.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: 5 } });
  await started.promise;
  const t0 = performance.now();
  await service.stop(5000);
  const took = performance.now() - t0;
  assert.deepEqual((await answer).body, chunkBody(5));
  assert.ok(took < 2000, `stop() waited for the handler, not the whole grace: ${took} ms`);
  await client.closed;
  assert.equal(service.connections.size, 0);
  await assert.rejects(
    Deno.connect({ hostname: LOCAL, port: service.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("ChunkService.stop() closes connections whose handlers outlast the grace period", async () => {
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const handler: RequestHandler = async () => {
    started.resolve();
    await release.promise;
    return undefined;
  };
  const service = await start({ handler });
  await using client = await connectPeer(service.addr, dial("stuck"));
  const answer = client.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: 6 } });
  await started.promise;
  const first = service.stop(100);
  assert.equal(service.stop(), first, "stop() is idempotent");
  await first;
  await assert.rejects(answer, /Connection is closed/);
  await client.closed;
  release.resolve();
});

Deno.test("ChunkService.stop() also closes connections still in their handshake", async () => {
  const service = await start({ handshakeTimeoutMs: 10_000 });
  const raw = await Deno.connect({ hostname: LOCAL, port: service.addr.port });
  try {
    // The service answers a dialer's preamble: reading its own proves it is mid-handshake.
    await raw.write(encodePreamble());
    const greeting = new Uint8Array(8);
    assert.equal(await raw.read(greeting), 8);
    assert.equal(service.stats.open, 1);
    const t0 = performance.now();
    await service.stop(5000);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(service.stats.open, 0);
    await readToEnd(raw);
  } finally {
    closeQuietly(raw);
  }
});

Deno.test("startChunkService() reports a hello() that throws as conn.error and goes on", async () => {
  const log = eventLog();
  let calls = 0;
  await using service = await start({
    onEvent: log.onEvent,
    hello: () => {
      if (calls++ === 0) throw new Error("identity not ready");
      return hello("service");
    },
  });
  const error = log.next("conn.error");
  await assert.rejects(connectPeer(service.addr, dial("early")));
  assert.match(String((await error).reason), /identity not ready/);
  await using client = await connectPeer(service.addr, dial("later"));
  await fetchChunks(client, [7]);
});

/** Splits text into lines. */
function lineStream(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(text, out) {
      const parts = (rest + text).split("\n");
      rest = parts.pop()!;
      for (const line of parts) out.enqueue(line);
    },
    flush(out) {
      if (rest) out.enqueue(rest);
    },
  });
}

/** The service in a child process limited to a few file descriptors. */
const CHILD = `
import { startChunkService } from ${JSON.stringify(new URL("./service.ts", import.meta.url).href)};
import { testIdentity } from ${
  JSON.stringify(new URL("./_link_fixtures.ts", import.meta.url).href)
};
const id = await testIdentity("child");
// Deno sets its signal handling up on first use (a socket pair, ext/signals) and
// panics when that finds no descriptor left: set it up while there are some.
const noop = () => {};
Deno.addSignalListener("SIGUSR2", noop);
Deno.removeSignalListener("SIGUSR2", noop);
const service = await startChunkService({
  hostname: "127.0.0.1",
  port: 0,
  hello: () => id.hello,
  link: { sign: id.sign },
  handler: () => undefined,
  handshakeTimeoutMs: 60000,
  // The chunk port's accept loop alone: the one both listeners share.
  tlsPort: false,
  onEvent: (type, fields) => console.log(JSON.stringify({ type, ...fields })),
});
console.log(JSON.stringify({ type: "listening", port: service.addr.port }));
for await (const _ of Deno.stdin.readable) { /* runs until stdin closes */ }
await service.stop(0);
`;

Deno.test({
  name: "the accept loop survives running out of file descriptors",
  ignore: Deno.build.os === "windows",
  async fn() {
    const config = new URL("../deno.json", import.meta.url).pathname;
    const child = new Deno.Command("sh", {
      // 40 descriptors: enough for the runtime, a handful of connections at most.
      args: [
        "-c",
        'ulimit -n 40 && exec "$0" eval --config "$1" "$2"',
        Deno.execPath(),
        config,
        CHILD,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineStream())
      .getReader();
    const until = async (type: string) => {
      while (true) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`Child ended before a '${type}' line`);
        const event = JSON.parse(value);
        if (event.type === type) return event;
      }
    };
    const raws: Deno.TcpConn[] = [];
    try {
      const { port } = await until("listening");
      // Silent connections held in their handshake use up the child's descriptors.
      for (let i = 0; i < 60; i++) raws.push(await Deno.connect({ hostname: LOCAL, port }));
      const failed = await until("accept.error");
      assert.match(String(failed.error), /open files|descriptor/i);
      for (const raw of raws.splice(0)) raw.close();
      // Once they are gone, the service accepts and serves again. It notices each
      // closed connection on its next read, and until then still counts it against
      // the per-address cap (a refusal resets): a few attempts, a bounded wait.
      let client: Awaited<ReturnType<typeof connectPeer>> | undefined;
      for (let attempt = 0; !client; attempt++) {
        try {
          client = await connectPeer({ hostname: LOCAL, port }, dial("after"));
        } catch (err) {
          if (attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await using _closer = client;
      assert.equal((await client.request({ type: "PING", header: {} })).type, "PONG");
    } finally {
      for (const raw of raws) raw.close();
      await child.stdin.close();
      while (!(await lines.read()).done) { /* drain */ }
    }
    assert.equal((await child.status).code, 0);
  },
});

Deno.test("startChunkService() serves a listener bound beforehand, and stop() closes it", async () => {
  const listener = Deno.listen({ hostname: LOCAL, port: 0 });
  const service = await startChunkService({
    listener,
    hello: () => hello("server"),
    link: { sign: BOOK.get("server").sign },
    handler: chunkHandler,
  });
  assert.equal(service.addr.port, listener.addr.port);
  const conn = await connectPeer(listener.addr, dial("client"));
  const res = await conn.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: 2 } });
  assert.deepEqual(res.body, chunkBody(2));
  conn.close();
  await service.stop(0);
  await assert.rejects(
    Deno.connect({ hostname: LOCAL, port: listener.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("startChunkService() without a listener nor an address rejects with TypeError", async () => {
  await assert.rejects(
    startChunkService({
      hello: () => hello("server"),
      link: { sign: BOOK.get("server").sign },
      handler: chunkHandler,
    }),
    TypeError,
  );
});
