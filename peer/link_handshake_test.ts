import assert from "node:assert/strict";
import { RemoteError } from "../proto/answers.ts";
import { PeerTimeoutError, ProtocolError, UnauthorizedError } from "../proto/errors.ts";
import { encodeFrame, FrameDecoder, MAX_FRAME_LENGTH } from "../proto/frame.ts";
import type { HelloHeader, Message, MessageInit } from "../proto/messages.ts";
import {
  afterLinkError,
  HANDSHAKE_MAX_FRAME,
  LinkHandshake,
  type LinkOptions,
} from "./link_handshake.ts";
import { type TestIdentity, testIdentity } from "./_link_fixtures.ts";

const IDS = { a: await testIdentity("a"), b: await testIdentity("b") };

/** One side of a fake link: what it sent (decoded by the other side), its failures. */
interface Side {
  handshake: LinkHandshake;
  decoder: FrameDecoder;
  /** Messages the other side has yet to take. */
  outbox: Message[];
  sent: MessageInit[];
  failures: Error[];
  ended: boolean;
  remote?: HelloHeader;
}

function side(
  id: TestIdentity,
  link: Partial<LinkOptions> & Pick<LinkOptions, "role">,
  opts: { maxFrameLength?: number; timeoutMs?: number } = {},
): Side {
  const decoder = new FrameDecoder();
  const peerDecoder = new FrameDecoder();
  const s: Side = {
    decoder,
    outbox: [],
    sent: [],
    failures: [],
    ended: false,
    handshake: new LinkHandshake({
      link: { sign: id.sign, ...link },
      hello: id.hello,
      decoder,
      maxFrameLength: opts.maxFrameLength,
      timeoutMs: opts.timeoutMs ?? 5000,
      send: (msg) => {
        s.sent.push(msg);
        s.outbox.push(...peerDecoder.push(encodeFrame(msg)));
        return Promise.resolve();
      },
      endWrites: () => {
        s.ended = true;
        return Promise.resolve();
      },
      fail: (err) => void s.failures.push(err),
    }),
  };
  s.outbox.push(...peerDecoder.push(s.handshake.greeting()));
  return s;
}

/** Hands each side's messages to the other until neither has more. */
async function run(a: Side, b: Side): Promise<void> {
  while (a.outbox.length + b.outbox.length > 0) {
    for (const msg of a.outbox.splice(0)) if (!b.remote) b.remote = await b.handshake.receive(msg);
    for (const msg of b.outbox.splice(0)) if (!a.remote) a.remote = await a.handshake.receive(msg);
  }
}

Deno.test("LinkHandshake proves both sides and raises the frame cap once done", async () => {
  const a = side(IDS.a, { role: "dialer" });
  const b = side(IDS.b, { role: "acceptor" });
  assert.equal(a.decoder.maxFrameLength, HANDSHAKE_MAX_FRAME);
  a.handshake.start();
  b.handshake.start();
  await run(a, b);
  assert.equal(a.remote?.peerId, IDS.b.peerId);
  assert.equal(b.remote?.peerId, IDS.a.peerId);
  assert.equal(a.handshake.remote?.peerId, IDS.b.peerId);
  assert.deepEqual(a.sent.map((m) => m.type), ["AUTH_KEY", "HELLO"]);
  assert.equal(a.decoder.maxFrameLength, MAX_FRAME_LENGTH);
  assert.equal(b.decoder.maxFrameLength, MAX_FRAME_LENGTH);
  assert.deepEqual([...a.failures, ...b.failures], []);
  // Done: the deadlines are cleared (the timer sanitizer would see a leak).
});

Deno.test("LinkHandshake keeps a maxFrameLength under HANDSHAKE_MAX_FRAME throughout", async () => {
  const a = side(IDS.a, { role: "dialer" }, { maxFrameLength: 4096 });
  const b = side(IDS.b, { role: "acceptor" }, { maxFrameLength: HANDSHAKE_MAX_FRAME });
  assert.equal(a.decoder.maxFrameLength, 4096);
  await run(a, b);
  assert.ok(a.remote && b.remote);
  assert.equal(a.decoder.maxFrameLength, 4096);
  assert.equal(b.decoder.maxFrameLength, HANDSHAKE_MAX_FRAME);
});

Deno.test("LinkHandshake throws RangeError for a maxFrameLength out of range", () => {
  assert.throws(() => side(IDS.a, { role: "dialer" }, { maxFrameLength: 0 }), RangeError);
});

Deno.test("LinkHandshake refuses another network key with ERROR, ends its writes and fails", async () => {
  const a = side(IDS.a, { role: "dialer", networkKey: new Uint8Array(32).fill(1) });
  const b = side(IDS.b, { role: "acceptor", networkKey: new Uint8Array(32).fill(2) });
  await run(a, b);
  assert.equal(a.remote, undefined);
  assert.equal(b.remote, undefined);
  const refused = [...a.failures, ...b.failures];
  assert.ok(refused.length > 0);
  assert.ok(
    refused.every((err) =>
      (err instanceof UnauthorizedError && err.code === "network_key_mismatch") ||
      (err instanceof RemoteError && err.code === "network_key_mismatch")
    ),
  );
  assert.ok(a.ended || b.ended);
  assert.ok([...a.sent, ...b.sent].some((m) => m.type === "ERROR"));
});

Deno.test("LinkHandshake refuses a proven peer other than expectPeerId with unexpected_peer", async () => {
  const a = side(IDS.a, { role: "dialer", expectPeerId: "0".repeat(40) });
  const b = side(IDS.b, { role: "acceptor" });
  await run(a, b);
  assert.equal(a.remote, undefined);
  const [err] = a.failures;
  assert.ok(err instanceof UnauthorizedError && err.code === "unexpected_peer");
  assert.equal(a.sent.at(-1)?.type, "ERROR");
  assert.ok(a.ended);
});

Deno.test("LinkHandshake fails with PeerTimeoutError when not done within timeoutMs", async () => {
  const failed = Promise.withResolvers<Error>();
  const handshake = new LinkHandshake({
    link: { role: "acceptor", sign: IDS.a.sign },
    hello: IDS.a.hello,
    decoder: new FrameDecoder(),
    timeoutMs: 20,
    send: () => Promise.resolve(),
    endWrites: () => Promise.resolve(),
    fail: failed.resolve,
  });
  handshake.start();
  const err = await failed.promise;
  assert.ok(err instanceof PeerTimeoutError);
  assert.match(err.message, /'20' ms/);
  handshake.stop();
});

Deno.test("LinkHandshake.stop() clears the deadline and ignores later messages", async () => {
  const a = side(IDS.a, { role: "dialer" }, { timeoutMs: 10 });
  const b = side(IDS.b, { role: "acceptor" });
  a.handshake.start();
  a.handshake.stop();
  a.handshake.stop(); // idempotent
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(a.failures, []);
  for (const msg of b.outbox.splice(0)) assert.equal(await a.handshake.receive(msg), undefined);
  assert.deepEqual(a.sent, []);
});

Deno.test("afterLinkError() names what a handshake message means once the link is up", () => {
  const msg = (m: MessageInit) => ({ body: new Uint8Array(), ...m }) as Message;
  const hello = afterLinkError(msg({ type: "HELLO", requestId: 0, header: IDS.a.hello }));
  assert.ok(hello instanceof ProtocolError && hello.code === "unexpected_hello");
  const nonce = afterLinkError(msg({ type: "AUTH_NONCE", requestId: 0, header: { nonce: "AA" } }));
  assert.ok(nonce instanceof ProtocolError && nonce.code === "bad_handshake");
  assert.match(nonce.message, /'AUTH_NONCE' after the link handshake/);
  const refusal = afterLinkError(
    msg({ type: "ERROR", requestId: 0, header: { code: "busy", message: "Too many links" } }),
  );
  assert.ok(refusal instanceof RemoteError && refusal.code === "busy");
  const answer = { type: "ERROR", requestId: 3, header: { code: "busy", message: "" } } as const;
  assert.equal(afterLinkError(msg(answer)), undefined);
  assert.equal(afterLinkError(msg({ type: "PING", requestId: 1, header: { ts: 1 } })), undefined);
});
