import assert from "node:assert/strict";
import fc from "fast-check";
import { linkedPair } from "./_fakes.ts";
import { HttpTunnels } from "./http_tunnel.ts";
import type { RequestHandler } from "./connection.ts";
import { TunnelMux, type TunnelStream } from "./tunnel_mux.ts";
import type { P2pError } from "../proto/errors.ts";
import { MAX_TUNNEL_DATA, TUNNEL_WINDOW } from "../proto/messages.ts";

const CHUNK = new Uint8Array(1024 * 1024).fill(7);
const PAYLOAD_ID = "a".repeat(64);

/** A pair of linked peers whose `b` hands each tunnel it takes to `served`. */
async function tunnelPair(opts: { maxPerLink?: number; maxTotal?: number } = {}) {
  const served: TunnelStream[] = [];
  const waiting: ((s: TunnelStream) => void)[] = [];
  const tunnels = new HttpTunnels({
    serve: (s) => {
      const w = waiting.shift();
      if (w) w(s as TunnelStream);
      else served.push(s as TunnelStream);
    },
    ...opts,
  });
  // b also serves a 1 MiB chunk, as a peer does while tunnels stream.
  const handler: RequestHandler = (msg, conn) => {
    if (msg.type === "HTTP_OPEN") return tunnels.accept(msg, conn);
    if (msg.type !== "GET_CHUNK") return undefined;
    return { type: "CHUNK", header: msg.header, body: CHUNK };
  };
  const pair = await linkedPair({ b: handler });
  /** The next stream `b` takes. */
  const next = () =>
    served.length > 0
      ? Promise.resolve(served.shift()!)
      : new Promise<TunnelStream>((r) => waiting.push(r));
  return Object.assign(pair, { tunnels, next });
}

async function readAll(s: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(100_000);
  for (let n; (n = await s.read(buf)) !== null;) parts.push(buf.slice(0, n));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

function pattern(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + (i >> 10)) & 0xff);
}

Deno.test("TunnelMux: a stream carries bytes both ways, and HTTP_END ends each way's reads", async () => {
  await using p = await tunnelPair();
  const [opened, accepted] = await Promise.all([p.a.tunnels.open({ remote: "b" }), p.next()]);
  assert.equal(opened.id % 2, 1, "the dialer opens odd ids");
  assert.equal(accepted.remoteAddr.hostname, `_p2p-${p.ids.a.peerId}`);
  const up = pattern(300_000);
  const down = pattern(123_457).reverse();
  const [gotUp, gotDown] = await Promise.all([
    readAll(accepted),
    readAll(opened),
    opened.write(up).then(() => opened.closeWrite()),
    accepted.write(down).then(() => accepted.closeWrite()),
  ]);
  assert.deepEqual(gotUp, up);
  assert.deepEqual(gotDown, down);
  await Promise.all([opened.closed, accepted.closed]);
  assert.equal(p.a.tunnels.outbound + p.b.tunnels.inbound + p.tunnels.open, 0);
});

Deno.test("TunnelMux: a reader that stalls holds at most one window, the writer waits, and chunks on the same link still flow", async () => {
  await using p = await tunnelPair();
  const [opened, accepted] = await Promise.all([p.a.tunnels.open({ remote: "b" }), p.next()]);
  const big = pattern(4 * 1024 * 1024);
  // A write resolves once its bytes are taken: the first window at once...
  await opened.write(big.subarray(0, TUNNEL_WINDOW));
  assert.equal(opened.credit, 0);
  // ...and the rest waits for credit, which a reader that does not read never gives.
  let written = false;
  const writing = opened.write(big.subarray(TUNNEL_WINDOW)).then(() => written = true);
  // The window's frames go one after the other; a PING's answer comes after those
  // sent before it were taken at the other end.
  for (let i = 0; i < 64 && accepted.buffered < TUNNEL_WINDOW; i++) {
    await p.a.request({ type: "PING", header: {} });
  }
  assert.equal(accepted.buffered, TUNNEL_WINDOW);
  assert.equal(written, false);
  // Chunk traffic on the same link is not held up by the stalled stream.
  for (let index = 0; index < 5; index++) {
    const chunk = await p.a.request({
      type: "GET_CHUNK",
      header: { payloadId: PAYLOAD_ID, index },
    });
    assert.deepEqual(chunk.body, CHUNK);
  }
  assert.equal(accepted.buffered, TUNNEL_WINDOW, "still one window, no more");
  assert.equal(written, false);
  const got = new Uint8Array(big.length);
  let at = 0;
  const buf = new Uint8Array(MAX_TUNNEL_DATA);
  while (at < big.length) {
    const n = await accepted.read(buf);
    assert.ok(n !== null);
    assert.ok(accepted.buffered <= TUNNEL_WINDOW);
    got.set(buf.subarray(0, n), at);
    at += n;
  }
  await writing;
  assert.deepEqual(got, big);
  opened.close();
  assert.equal(await accepted.read(buf), null);
});

Deno.test("TunnelStream: a writer may reuse its buffer once write() resolved", async () => {
  await using p = await tunnelPair();
  const [opened, accepted] = await Promise.all([p.a.tunnels.open({ remote: "b" }), p.next()]);
  const buf = new Uint8Array(MAX_TUNNEL_DATA);
  const sent: Uint8Array[] = [];
  const reading = readAll(accepted);
  for (let i = 0; i < 8; i++) {
    buf.fill(i + 1);
    sent.push(buf.slice());
    await opened.write(buf);
  }
  await opened.closeWrite();
  const got = await reading;
  assert.deepEqual(got, new Uint8Array(sent.flatMap((b) => [...b])));
  accepted.close();
});

Deno.test("TunnelMux: more bytes than the credit given reset the stream (flow_control), and the link stays up", async () => {
  await using p = await tunnelPair();
  const [opened, accepted] = await Promise.all([p.a.tunnels.open({ remote: "b" }), p.next()]);
  const body = new Uint8Array(MAX_TUNNEL_DATA);
  // Bypass the stream's own accounting: five frames are over the 256 KiB window.
  for (let i = 0; i < 5; i++) {
    await p.a.send({ type: "HTTP_DATA", requestId: opened.id, header: {}, body });
  }
  await accepted.closed;
  await opened.closed;
  await assert.rejects(opened.write(new Uint8Array(1)), (e: P2pError) => e.code === "flow_control");
  assert.ok(accepted.buffered <= TUNNEL_WINDOW);
  assert.equal((await p.a.request({ type: "PING", header: { ts: 1 } })).type, "PONG");
});

Deno.test("HttpTunnels: tunnels over the limit in all are refused with too_many_tunnels", async () => {
  await using p = await tunnelPair({ maxPerLink: 5, maxTotal: 1 });
  const first = await p.a.tunnels.open({ remote: "b" });
  await assert.rejects(
    p.a.tunnels.open({ remote: "b" }),
    (e: P2pError) => e.code === "too_many_tunnels" && /open here/.test(e.message),
  );
  assert.equal(p.tunnels.open, 1);
  first.close();
  await p.next().then((s) => s.closed);
  assert.equal(p.tunnels.open, 0);
});

Deno.test("HttpTunnels: tunnels over the limit per link are refused with too_many_tunnels", async () => {
  await using p = await tunnelPair({ maxPerLink: 2, maxTotal: 3 });
  const first = await Promise.all([
    p.a.tunnels.open({ remote: "b" }),
    p.a.tunnels.open({ remote: "b" }),
  ]);
  await assert.rejects(
    p.a.tunnels.open({ remote: "b" }),
    (e: P2pError) => e.code === "too_many_tunnels" && /on this link/.test(e.message),
  );
  first[0].close();
  await p.next().then((s) => s.closed);
  // One stream left on the link: a new one fits again.
  const again = await p.a.tunnels.open({ remote: "b" });
  assert.equal(p.b.tunnels.inbound, 2);
  again.close();
  first[1].close();
});

Deno.test("TunnelMux: the opener's own limit is checked before anything is sent", async () => {
  const sent: string[] = [];
  const mux = new TunnelMux({
    send: (m) => (sent.push(m.type), Promise.resolve()),
    odd: true,
    maxStreams: 1,
  });
  const first = mux.open({ remote: "b" });
  await assert.rejects(mux.open({ remote: "b" }), (e: P2pError) => e.code === "too_many_tunnels");
  assert.deepEqual(sent, ["HTTP_OPEN"]);
  mux.close(new Error("link closed"));
  await assert.rejects(first, /link closed/);
  assert.equal(mux.outbound, 0);
});

Deno.test("TunnelMux: a peer that serves no tunnels, ids of the wrong side or in use, and a closed link", async () => {
  await using p = await linkedPair({ b: () => undefined });
  await assert.rejects(
    p.a.tunnels.open({ remote: "b" }),
    (e: P2pError) => e.code === "unsupported",
  );
  assert.equal(p.a.tunnels.outbound, 0);
  assert.throws(() => p.b.tunnels.accept(2, "x"), (e: P2pError) => e.code === "bad_stream");
  const s = p.b.tunnels.accept(1, "x");
  assert.throws(() => p.b.tunnels.accept(1, "x"), (e: P2pError) => e.code === "bad_stream");
  p.a.close();
  await s.closed;
  assert.equal(await s.read(new Uint8Array(10)), null);
  await assert.rejects(s.write(new Uint8Array(1)));
  await assert.rejects(p.a.tunnels.open({ remote: "b" }));
});

Deno.test("TunnelMux: random stream frames from the other side never throw, and no stream holds more than its window", () => {
  const frame = fc.record({
    type: fc.constantFrom("HTTP_OPENED", "HTTP_DATA", "HTTP_WINDOW", "HTTP_END", "HTTP_RESET"),
    requestId: fc.integer({ min: 0, max: 6 }),
    size: fc.integer({ min: 1, max: MAX_TUNNEL_DATA }),
    credit: fc.integer({ min: 1, max: TUNNEL_WINDOW }),
  });
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 40 }), (frames) => {
      const sent: string[] = [];
      const mux = new TunnelMux({ send: (m) => (sent.push(m.type), Promise.resolve()), odd: true });
      const streams = [2, 4, 6].map((id) => mux.accept(id, "x"));
      for (const f of frames) {
        const header = f.type === "HTTP_WINDOW"
          ? { credit: f.credit }
          : f.type === "HTTP_RESET"
          ? { code: "closed", message: "m" }
          : {};
        const body = f.type === "HTTP_DATA" ? new Uint8Array(f.size) : new Uint8Array();
        assert.equal(
          mux.receive({ type: f.type, requestId: f.requestId, header, body } as never),
          true,
        );
        for (const s of streams) assert.ok(s.buffered <= TUNNEL_WINDOW);
      }
      mux.close(new Error("end"));
      assert.equal(mux.inbound, 0);
    }),
  );
});
