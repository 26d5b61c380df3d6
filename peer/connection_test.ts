import assert from "node:assert/strict";
import {
  FrameTooLargeError,
  NotFoundError,
  PeerTimeoutError,
  ProtocolError,
  VersionMismatchError,
} from "../proto/errors.ts";
import { encodeFrame, encodePreamble, FrameDecoder } from "../proto/frame.ts";
import { LinkAuth } from "../proto/link_auth.ts";
import type { HelloHeader, Message } from "../proto/messages.ts";
import {
  type ConnectionOptions,
  type DuplexConn,
  PeerConnection,
  RemoteError,
  type RequestHandler,
} from "./connection.ts";
import { connectPeer } from "./dial.ts";
import { acceptLink, createLinkCert } from "./link_tls.ts";
import { type TestIdentity, testIdentity } from "./_link_fixtures.ts";

const PAYLOAD = "ab".repeat(32);

const IDS: Record<string, TestIdentity> = {};
for (const name of ["alice", "bob", "raw", "server", "client"]) {
  IDS[name] = await testIdentity(name);
}

function hello(name: string): HelloHeader {
  return IDS[name].hello;
}

/** Link options of the identity `name`. */
function link(name: string, role: "dialer" | "acceptor") {
  return { role, sign: IDS[name].sign };
}

/** A deterministic body for chunk `index`, so answers can be checked. */
function chunkBody(index: number, size = 4096): Uint8Array {
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (index * 31 + i) & 0xff;
  return body;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Two ends of a byte transport, plus what must be released after the test. */
interface Transport {
  name: string;
  pair(): Promise<[DuplexConn, DuplexConn]>;
}

/** Two linked in-memory streams: what one side writes, the other reads. */
function memoryPair(): Promise<[DuplexConn, DuplexConn]> {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  return Promise.resolve([
    { readable: ba.readable, writable: ab.writable, close() {} },
    { readable: ab.readable, writable: ba.writable, close() {} },
  ]);
}

/** Two ends of a real TCP connection on 127.0.0.1, port chosen by the kernel. */
async function tcpPair(): Promise<[DuplexConn, DuplexConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return [a, b];
}

const transports: Transport[] = [
  { name: "memory", pair: memoryPair },
  { name: "tcp", pair: tcpPair },
];

/** Two connected PeerConnections, closed and awaited on dispose. */
async function openPair(
  t: Transport,
  optsA: Partial<ConnectionOptions> = {},
  optsB: Partial<ConnectionOptions> = {},
) {
  const [x, y] = await t.pair();
  const [a, b] = await Promise.all([
    PeerConnection.open(x, { hello: hello("alice"), link: link("alice", "dialer"), ...optsA }),
    PeerConnection.open(y, { hello: hello("bob"), link: link("bob", "acceptor"), ...optsB }),
  ]);
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      a.close();
      b.close();
      await Promise.all([a.closed, b.closed]);
    },
  };
}

/**
 * One PeerConnection facing a raw end that the test drives by hand: `write()` sends
 * bytes, `frameOf(type)` waits for a frame the PeerConnection sent, `end()` ends the
 * raw side's stream. Dispose closes everything.
 */
async function openRaw(t: Transport, opts: Partial<ConnectionOptions> = {}) {
  const [x, raw] = await t.pair();
  const writer = raw.writable.getWriter();
  const decoder = new FrameDecoder();
  const frames: Message[] = [];
  const waiters: { type: string; resolve: (m: Message) => void }[] = [];
  const drained = (async () => {
    try {
      for await (const chunk of raw.readable) {
        for (const msg of decoder.push(chunk)) {
          frames.push(msg);
          for (const w of waiters.filter((w) => w.type === msg.type)) w.resolve(msg);
        }
      }
    } catch { /* reset by the other side */ }
  })();
  const opened = PeerConnection.open(x, {
    hello: hello("alice"),
    link: link("alice", "dialer"),
    ...opts,
  });
  opened.catch(() => {});
  const frameOf = (type: string): Promise<Message> => {
    const seen = frames.find((m) => m.type === type);
    if (seen) return Promise.resolve(seen);
    const { promise, resolve } = Promise.withResolvers<Message>();
    waiters.push({ type, resolve });
    return promise;
  };
  const write = async (...parts: Uint8Array[]) => {
    for (const part of parts) {
      try {
        await writer.write(part);
      } catch { /* the other side closed: expected for bad input */ }
    }
  };
  return {
    opened,
    /** Runs the raw side's link handshake as the peer "raw" (the acceptor). */
    async handshake() {
      const auth = new LinkAuth({
        role: "acceptor",
        sign: IDS.raw.sign,
        hello: hello("raw"),
        fingerprint: new Uint8Array(0),
      });
      await write(encodePreamble(), encodeFrame(auth.start()));
      for (const type of ["AUTH_NONCE", "AUTH_KEY", "HELLO"]) {
        const step = await auth.receive(await frameOf(type));
        await write(...step.send.map(encodeFrame));
      }
    },
    frameOf,
    write,
    async end() {
      await writer.close().catch(() => {});
    },
    async [Symbol.asyncDispose]() {
      await opened.then((pc) => pc.close(), () => {});
      await writer.close().catch(() => {});
      await drained;
      try {
        raw.close();
      } catch { /* already closed */ }
    },
  };
}

/** A gate that handlers wait at until the test opens it. */
function gate() {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { wait: promise, open: () => resolve() };
}

for (const t of transports) {
  Deno.test(`${t.name}: PeerConnection.open() exchanges HELLOs and exposes the other side's`, async () => {
    await using p = await openPair(t);
    const { auth: authA, ...remoteOfA } = p.a.remote;
    const { auth: authB, ...remoteOfB } = p.b.remote;
    assert.deepEqual(remoteOfA, hello("bob"));
    assert.deepEqual(remoteOfB, hello("alice"));
    assert.equal(authA?.scheme, "p2p-link-v1");
    assert.equal(authB?.scheme, "p2p-link-v1");
    assert.equal(p.a.closeReason, undefined);
    if (t.name === "tcp") {
      assert.equal(p.a.remoteAddr?.hostname, "127.0.0.1");
      assert.equal(p.b.remoteAddr?.transport, "tcp");
    }
  });

  Deno.test(`${t.name}: PeerConnection.request() pipelines 100 GET_CHUNK requests answered out of order`, async () => {
    const seenIds: number[] = [];
    const handler: RequestHandler = async (msg) => {
      if (msg.type !== "GET_CHUNK") return undefined;
      seenIds.push(msg.requestId);
      await delay(Math.random() * 20);
      const size = msg.header.index % 10 === 0 ? 1024 * 1024 : 4096;
      return { type: "CHUNK", header: msg.header, body: chunkBody(msg.header.index, size) };
    };
    await using p = await openPair(t, {}, { handler, maxInFlight: 100 });
    const order: number[] = [];
    const answers = await Promise.all(
      Array.from({ length: 100 }, async (_, index) => {
        const answer = await p.a.request({
          type: "GET_CHUNK",
          header: { payloadId: PAYLOAD, index },
        });
        order.push(index);
        return answer;
      }),
    );
    for (const [index, answer] of answers.entries()) {
      assert.equal(answer.type, "CHUNK");
      assert.equal(answer.header.index, index);
      const size = index % 10 === 0 ? 1024 * 1024 : 4096;
      assert.deepEqual(answer.body, chunkBody(index, size));
    }
    assert.notDeepEqual(order, [...order].sort((x, y) => x - y), "answers came out of order");
    assert.deepEqual(
      seenIds.toSorted((x, y) => x - y),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(p.a.pending, 0);
  });

  Deno.test(`${t.name}: a handler error is sent as ERROR and rejects request() with RemoteError`, async () => {
    const handler: RequestHandler = (msg) => {
      if (msg.type === "HAVE_REQ") {
        throw new NotFoundError("not_found", "Payload not found");
      }
      if (msg.type === "MANIFEST_REQ") throw new Error("disk on fire");
      if (msg.type === "PEERS_REQ") return { type: "PEERS", header: { peers: "nope" } } as never;
      return undefined;
    };
    await using p = await openPair(t, {}, { handler });
    await assert.rejects(
      p.a.request({ type: "HAVE_REQ", header: { payloadId: PAYLOAD } }),
      (err) =>
        err instanceof RemoteError && err.code === "not_found" &&
        err.message === "Payload not found",
    );
    await assert.rejects(
      p.a.request({ type: "MANIFEST_REQ", header: { payloadId: PAYLOAD } }),
      (err) =>
        err instanceof RemoteError && err.code === "internal" && /disk on fire/.test(err.message),
    );
    await assert.rejects(
      p.a.request({ type: "PEERS_REQ", header: {} }),
      (err) => err instanceof RemoteError && err.code === "internal",
      "an invalid answer from the handler becomes ERROR internal",
    );
    const pong = await p.a.request({ type: "PING", header: { ts: 42 } });
    assert.deepEqual(pong.header, { ts: 42 }, "the connection stays open");
  });

  Deno.test(`${t.name}: without a handler requests get ERROR 'unsupported' and PING gets PONG`, async () => {
    await using p = await openPair(t);
    await assert.rejects(
      p.a.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: 0 } }),
      (err) => err instanceof RemoteError && err.code === "unsupported",
    );
    const pong = await p.b.request({ type: "PING", header: { ts: 7 } });
    assert.equal(pong.type, "PONG");
    assert.deepEqual(pong.header, { ts: 7 });
  });

  Deno.test(`${t.name}: PeerConnection.request() rejects with PeerTimeoutError when no answer comes in time`, async () => {
    const g = gate();
    const warnings: string[] = [];
    const handler: RequestHandler = async (msg) => {
      await g.wait;
      return { type: "PONG", header: msg.header };
    };
    await using p = await openPair(t, { onWarning: (w) => warnings.push(w) }, { handler });
    await assert.rejects(
      p.a.request({ type: "PING", header: {} }, { timeoutMs: 50 }),
      PeerTimeoutError,
    );
    assert.equal(p.a.pending, 0);
    assert.equal(p.a.closeReason, undefined, "a timed-out request leaves the connection open");
    // The late answer is ignored and reported; it comes before the next one's.
    const next = p.a.request({ type: "PING", header: { ts: 2 } });
    g.open();
    assert.deepEqual((await next).header, { ts: 2 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /unknown request '1'/);
  });

  Deno.test(`${t.name}: PeerConnection.request() rejects with the signal's reason when aborted`, async () => {
    const g = gate();
    await using p = await openPair(t, {}, { handler: () => g.wait.then(() => undefined) });
    const ctl = new AbortController();
    const req = p.a.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: 1 } }, {
      signal: ctl.signal,
    });
    ctl.abort(new Error("no longer needed"));
    await assert.rejects(req, /no longer needed/);
    assert.equal(p.a.pending, 0);
    g.open();
  });

  Deno.test(`${t.name}: PeerConnection.close() rejects pending requests and closes both sides`, async () => {
    const g = gate();
    await using p = await openPair(t, {}, { handler: () => g.wait.then(() => undefined) });
    const reqs = [1, 2, 3].map((index) =>
      p.a.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index } })
    );
    assert.equal(p.a.pending, 3);
    p.a.close("done here");
    p.a.close("ignored: close is idempotent");
    for (const req of reqs) await assert.rejects(req, /Connection is closed: done here/);
    await p.a.closed;
    await p.b.closed;
    assert.equal(p.a.closeReason, "done here");
    assert.notEqual(p.b.closeReason, undefined);
    await assert.rejects(p.a.request({ type: "PING", header: {} }), /Connection is closed/);
    await assert.rejects(
      p.a.send({ type: "PING", requestId: 9, header: {} }),
      /Connection is closed/,
    );
    g.open();
  });

  Deno.test(`${t.name}: both sides issue requests on one connection`, async () => {
    const handlerFor = (who: string): RequestHandler => (msg) =>
      msg.type === "GET_CHUNK"
        ? {
          type: "CHUNK",
          header: { ...msg.header, from: who },
          body: chunkBody(msg.header.index + (who === "bob" ? 1000 : 0)),
        }
        : undefined;
    await using p = await openPair(t, { handler: handlerFor("alice") }, {
      handler: handlerFor("bob"),
    });
    const both = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const from = i % 2 === 0 ? p.a : p.b;
        return from.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index: i } });
      }),
    );
    for (const [i, answer] of both.entries()) {
      const who = i % 2 === 0 ? "bob" : "alice";
      assert.equal(answer.header.from, who);
      assert.deepEqual(answer.body, chunkBody(i + (who === "bob" ? 1000 : 0)));
    }
  });

  Deno.test(`${t.name}: maxInFlight 2 holds back a third request until a handler finishes`, async () => {
    const gates = new Map<number, ReturnType<typeof gate>>();
    const started: number[] = [];
    let onStart = Promise.withResolvers<void>();
    const handler: RequestHandler = async (msg) => {
      if (msg.type !== "GET_CHUNK") return undefined;
      const g = gate();
      gates.set(msg.header.index, g);
      started.push(msg.header.index);
      onStart.resolve();
      await g.wait;
      return { type: "CHUNK", header: msg.header };
    };
    await using p = await openPair(t, {}, { handler, maxInFlight: 2 });
    const reqs = [0, 1, 2].map((index) =>
      p.a.request({ type: "GET_CHUNK", header: { payloadId: PAYLOAD, index } })
    );
    while (started.length < 2) {
      await onStart.promise;
      onStart = Promise.withResolvers<void>();
    }
    // Proving a negative needs some time to pass: the third must not start.
    await delay(100);
    assert.deepEqual(started, [0, 1]);
    assert.equal(p.b.inFlight, 2);
    gates.get(1)!.open();
    await onStart.promise;
    assert.deepEqual(started, [0, 1, 2]);
    gates.get(0)!.open();
    gates.get(2)!.open();
    const answers = await Promise.all(reqs);
    assert.deepEqual(answers.map((a) => a.header.index), [0, 1, 2]);
  });

  Deno.test(`${t.name}: PeerConnection.drain() refuses new requests and waits for running ones`, async () => {
    const g = gate();
    const running = Promise.withResolvers<void>();
    const handler: RequestHandler = async (msg) => {
      running.resolve();
      await g.wait;
      return { type: "PONG", header: msg.header };
    };
    await using p = await openPair(t, {}, { handler });
    const first = p.a.request({ type: "PING", header: { ts: 1 } });
    await running.promise;
    let drained = false;
    const drain = p.b.drain().then(() => drained = true);
    await assert.rejects(
      p.a.request({ type: "PING", header: { ts: 2 } }),
      (err) => err instanceof RemoteError && err.code === "shutting_down",
    );
    assert.equal(drained, false);
    g.open();
    assert.deepEqual((await first).header, { ts: 1 });
    await drain;
    assert.equal(drained, true);
    // Its own requests still work while draining.
    assert.equal((await p.b.request({ type: "PING", header: {} })).type, "PONG");
  });

  Deno.test(`${t.name}: the idle timeout closes a connection with no frames either way`, async () => {
    await using p = await openPair(t, { idleTimeoutMs: 150 });
    // Traffic keeps it open past the timeout...
    for (let i = 0; i < 4; i++) {
      await delay(50);
      await p.a.request({ type: "PING", header: {} });
    }
    assert.equal(p.a.closeReason, undefined);
    // ...silence closes it.
    await p.a.closed;
    assert.ok(p.a.closeError instanceof PeerTimeoutError);
    assert.match(p.a.closeReason!, /idle timeout/);
    await p.b.closed;
  });

  Deno.test(`${t.name}: aborting the signal closes the connection`, async () => {
    const ctl = new AbortController();
    await using p = await openPair(t, { signal: ctl.signal });
    const pending = p.a.request({ type: "PING", header: {} }, { timeoutMs: 5000 });
    ctl.abort(new Error("shutting down"));
    await assert.rejects(pending, /shutting down/);
    await p.a.closed;
    await p.b.closed;
    assert.match(p.a.closeReason!, /shutting down/);
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects with PeerTimeoutError when the peer stays silent`, async () => {
    await using raw = await openRaw(t, { handshakeTimeoutMs: 100 });
    await assert.rejects(raw.opened, PeerTimeoutError);
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects a peer with the wrong magic`, async () => {
    await using raw = await openRaw(t);
    await raw.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    await assert.rejects(
      raw.opened,
      (err) => err instanceof ProtocolError && err.code === "bad_magic",
    );
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects a peer of another protocol version`, async () => {
    await using raw = await openRaw(t);
    await raw.write(encodePreamble(1));
    await assert.rejects(raw.opened, VersionMismatchError);
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects a frame length over the limit`, async () => {
    await using raw = await openRaw(t);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, 0xffff_fff0);
    await raw.write(encodePreamble(), length);
    await assert.rejects(raw.opened, FrameTooLargeError);
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects a first frame that is not AUTH_NONCE`, async () => {
    await using raw = await openRaw(t);
    await raw.write(encodePreamble(), encodeFrame({ type: "PING", requestId: 1, header: {} }));
    await assert.rejects(
      raw.opened,
      (err) => err instanceof ProtocolError && err.code === "bad_handshake",
    );
    // The refusal is told to the other side.
    assert.equal((await raw.frameOf("ERROR")).header.code, "bad_handshake");
  });

  Deno.test(`${t.name}: PeerConnection.open() refuses a frame over 64 KiB before the handshake`, async () => {
    await using raw = await openRaw(t);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, 1024 * 1024);
    await raw.write(encodePreamble(), length);
    await assert.rejects(raw.opened, FrameTooLargeError);
  });

  Deno.test(`${t.name}: PeerConnection.open() refuses a HELLO without a proof of the network key`, async () => {
    await using raw = await openRaw(t);
    await raw.write(
      encodePreamble(),
      encodeFrame({ type: "HELLO", requestId: 0, header: hello("raw") }),
    );
    await assert.rejects(
      raw.opened,
      (err) => err instanceof ProtocolError && err.code === "bad_handshake",
    );
  });

  Deno.test(`${t.name}: PeerConnection.open() rejects a peer that ends the stream before HELLO`, async () => {
    await using raw = await openRaw(t);
    await raw.write(encodePreamble().subarray(0, 5));
    await raw.end();
    await assert.rejects(
      raw.opened,
      (err) => err instanceof ProtocolError && err.code === "truncated",
    );
  });

  Deno.test(`${t.name}: an oversized frame after the handshake closes the connection with its reason`, async () => {
    await using raw = await openRaw(t, { maxFrameLength: 1024 });
    await raw.handshake();
    const pc = await raw.opened;
    assert.equal(pc.remote.name, "raw");
    const pending = pc.request({ type: "PING", header: {} });
    await raw.write(
      encodeFrame({
        type: "CHUNK",
        requestId: 77,
        header: { payloadId: PAYLOAD, index: 0 },
        body: new Uint8Array(2048),
      }),
    );
    await assert.rejects(pending, /frame_too_large/);
    await pc.closed;
    assert.ok(pc.closeError instanceof FrameTooLargeError);
    assert.match(pc.closeReason!, /^FrameTooLargeError \(frame_too_large\): /);
  });

  Deno.test(`${t.name}: a second HELLO closes the connection with a ProtocolError`, async () => {
    await using raw = await openRaw(t);
    await raw.handshake();
    const pc = await raw.opened;
    await raw.write(encodeFrame({ type: "HELLO", requestId: 0, header: hello("raw") }));
    await pc.closed;
    assert.ok(pc.closeError instanceof ProtocolError);
    assert.equal((pc.closeError as ProtocolError).code, "unexpected_hello");
  });

  Deno.test(`${t.name}: an answer for an unknown requestId is ignored and reported`, async () => {
    const warnings: string[] = [];
    await using raw = await openRaw(t, { onWarning: (w) => warnings.push(w) });
    await raw.handshake();
    const pc = await raw.opened;
    await raw.write(encodeFrame({ type: "PONG", requestId: 999, header: {} }));
    // A request from the raw side proves the stray answer was read and skipped.
    await raw.write(encodeFrame({ type: "PING", requestId: 5, header: { ts: 5 } }));
    const pong = await raw.frameOf("PONG");
    assert.equal(pong.requestId, 5);
    assert.deepEqual(pong.header, { ts: 5 });
    assert.equal(pc.closeReason, undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /'PONG' answer for unknown request '999'/);
  });
}

Deno.test("connectPeer() connects over TCP and TLS, and the connect timeout does not outlive the connect", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const cert = await createLinkCert();
  const served = (async () => {
    const opened = await acceptLink(await listener.accept(), { cert });
    const pc = await PeerConnection.open(opened.conn, {
      hello: hello("server"),
      link: { ...link("server", "acceptor"), fingerprint: opened.fingerprint },
    });
    await pc.closed;
  })();
  const pc = await connectPeer({ hostname: "127.0.0.1", port: listener.addr.port }, {
    hello: hello("client"),
    link: { sign: IDS.client.sign },
    connectTimeoutMs: 200,
  });
  assert.equal(pc.remote.name, "server");
  await delay(250);
  assert.equal((await pc.request({ type: "PING", header: {} })).type, "PONG");
  pc.close();
  await pc.closed;
  await served;
});

Deno.test("connectPeer() rejects when nothing listens on the port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  await assert.rejects(
    connectPeer({ hostname: "127.0.0.1", port }, {
      hello: hello("client"),
      link: { sign: IDS.client.sign },
    }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("PeerConnection.open() rejects an invalid HELLO of ours with TypeError", async () => {
  const [x, y] = await memoryPair();
  await assert.rejects(
    PeerConnection.open(x, {
      hello: { ...hello("alice"), peerId: "nope" },
      link: link("alice", "dialer"),
    }),
    TypeError,
  );
  await y.readable.cancel();
  await y.writable.abort();
});

Deno.test("PeerConnection.request() rejects a type that is not a request with TypeError", async () => {
  await using p = await openPair(transports[0]);
  await assert.rejects(
    p.a.request({ type: "CHUNK", header: { payloadId: PAYLOAD, index: 0 } } as never),
    TypeError,
  );
});

Deno.test("PeerConnection.open() rejects with RemoteError when the peer answers ERROR in the handshake", async () => {
  await using raw = await openRaw(transports[0]);
  await raw.write(
    encodePreamble(),
    encodeFrame({ type: "ERROR", requestId: 0, header: { code: "busy", message: "Too many" } }),
  );
  await assert.rejects(raw.opened, (err) => err instanceof RemoteError && err.code === "busy");
});

Deno.test("tcp: small frames sent back to back are not held back by Nagle's algorithm", async () => {
  await using p = await openPair(transports[1]);
  // With Nagle on, the second small frame in one direction waits for the delayed
  // ack of the first (40 ms on Linux): 20 rounds would take 800 ms.
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    await p.a.request({ type: "PING", header: {} });
    await p.b.request({ type: "PING", header: {} });
  }
  const took = performance.now() - t0;
  assert.ok(took < 400, `20 round trips each way took ${took.toFixed(0)} ms`);
});
