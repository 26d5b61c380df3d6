import assert from "node:assert/strict";
import fc from "fast-check";
import { LinkAuth, type LinkAuthOptions, type LinkRole } from "./link_auth.ts";
import { peerIdFromPublicKey } from "./signature.ts";
import { toBase64Url } from "./ids.ts";
import type { Message, MessageInit } from "./messages.ts";
import { newNetworkKey } from "./network_key.ts";

interface TestIdentity {
  peerId: string;
  publicKey: string;
  sign: (data: Uint8Array) => Promise<Uint8Array>;
}

async function identity(): Promise<TestIdentity> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return {
    peerId: await peerIdFromPublicKey(raw),
    publicKey: toBase64Url(raw),
    sign: async (d) =>
      new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, d as BufferSource)),
  };
}

const alice = await identity();
const bob = await identity();
const FP = crypto.getRandomValues(new Uint8Array(32));

function machine(
  role: LinkRole,
  id: TestIdentity,
  opts: Partial<LinkAuthOptions> = {},
): LinkAuth {
  return new LinkAuth({
    role,
    fingerprint: FP,
    hello: {
      peerId: id.peerId,
      name: role,
      version: "1",
      ports: { chunk: 1 },
      publicKey: id.publicKey,
    },
    sign: id.sign,
    ...opts,
  });
}

function asMessage(m: MessageInit): Message {
  return { body: new Uint8Array(), ...m } as Message;
}

/** Runs two machines against each other until neither has anything to send; returns all sent. */
async function converse(a: LinkAuth, b: LinkAuth) {
  const sentByA: MessageInit[] = [a.start()];
  const sentByB: MessageInit[] = [b.start()];
  let toB = [...sentByA];
  let toA = [...sentByB];
  while (toA.length + toB.length > 0) {
    const [forB, forA] = [toB, toA];
    toA = [];
    toB = [];
    for (const m of forB) {
      const step = await b.receive(asMessage(m));
      toA.push(...step.send);
      sentByB.push(...step.send);
    }
    for (const m of forA) {
      const step = await a.receive(asMessage(m));
      toB.push(...step.send);
      sentByA.push(...step.send);
    }
  }
  return { sentByA, sentByB };
}

Deno.test("LinkAuth: two sides with the same key prove each other's identity", async () => {
  const key = newNetworkKey();
  const a = machine("dialer", alice, { networkKey: key });
  const b = machine("acceptor", bob, { networkKey: key, expectPeerId: undefined });
  const { sentByA } = await converse(a, b);
  assert.deepEqual(sentByA.map((m) => m.type), ["AUTH_NONCE", "AUTH_KEY", "HELLO"]);
  assert.equal(a.remote?.peerId, bob.peerId);
  assert.equal(b.remote?.peerId, alice.peerId);
  assert.equal(a.error, undefined);
});

Deno.test("LinkAuth: an open network (no key) still proves identities", async () => {
  const a = machine("dialer", alice);
  const b = machine("acceptor", bob);
  await converse(a, b);
  assert.equal(a.remote?.peerId, bob.peerId);
  assert.equal(b.remote?.peerId, alice.peerId);
});

Deno.test("LinkAuth: different network keys fail with network_key_mismatch and no HELLO is sent", async () => {
  const a = machine("dialer", alice, { networkKey: newNetworkKey() });
  const b = machine("acceptor", bob, { networkKey: newNetworkKey() });
  const { sentByA, sentByB } = await converse(a, b);
  assert.equal(a.error?.code, "network_key_mismatch");
  assert.equal(b.error?.code, "network_key_mismatch");
  assert.ok(![...sentByA, ...sentByB].some((m) => m.type === "HELLO"), "no identity revealed");
  assert.equal(a.remote, undefined);
});

Deno.test("LinkAuth: a keyed side refuses an open-network side", async () => {
  const a = machine("dialer", alice, { networkKey: newNetworkKey() });
  const b = machine("acceptor", bob);
  await converse(a, b);
  assert.equal(a.error?.code, "network_key_mismatch");
  assert.equal(b.remote, undefined);
});

Deno.test("LinkAuth: different certificate fingerprints (a man in the middle) fail", async () => {
  const a = machine("dialer", alice, { fingerprint: crypto.getRandomValues(new Uint8Array(32)) });
  const b = machine("acceptor", bob);
  await converse(a, b);
  assert.equal(a.remote, undefined);
  assert.equal(b.remote, undefined);
  assert.equal(b.error?.code, "network_key_mismatch");
});

Deno.test("LinkAuth: a HELLO claiming another peer's id and public key without its private key is refused", async () => {
  const mallory = await identity();
  // Mallory claims bob's id and key but signs with its own private key.
  const b = machine("acceptor", alice);
  const m = machine("dialer", { ...bob, sign: mallory.sign });
  await converse(m, b);
  assert.equal(b.remote, undefined);
  assert.equal(b.error?.code, "unauthorized");
  assert.match(b.error?.message ?? "", /bad signature/);
});

Deno.test("LinkAuth: a peerId that is not the hash of the public key is refused", async () => {
  const b = machine("acceptor", alice);
  const m = machine("dialer", { ...bob, peerId: alice.peerId });
  await converse(m, b);
  assert.equal(b.error?.code, "unauthorized");
  assert.match(b.error?.message ?? "", /not the hash of its public key/);
});

Deno.test("LinkAuth: a proven peer other than the expected one is refused with unexpected_peer", async () => {
  const carol = await identity();
  const a = machine("dialer", alice, { expectPeerId: carol.peerId });
  const b = machine("acceptor", bob);
  await converse(a, b);
  assert.equal(a.remote, undefined);
  assert.equal(a.error?.code, "unexpected_peer");
});

Deno.test("LinkAuth: a side's own messages sent back to it (reflection) never authenticate", async () => {
  const a = machine("dialer", alice);
  const first = a.start();
  const step = await a.receive(asMessage(first));
  assert.equal(step.error?.code, "bad_handshake");
  assert.equal(a.remote, undefined);
});

Deno.test("LinkAuth: an ERROR from the other side ends the handshake with its code", async () => {
  const a = machine("dialer", alice);
  a.start();
  const step = await a.receive(
    asMessage({ type: "ERROR", requestId: 0, header: { code: "busy", message: "Too busy" } }),
  );
  assert.equal(step.error?.code, "busy");
  assert.deepEqual(step.send, []);
});

Deno.test("LinkAuth: messages out of order are refused with bad_handshake and an ERROR to send", async () => {
  const a = machine("dialer", alice);
  a.start();
  const step = await a.receive(
    asMessage({
      type: "HELLO",
      requestId: 0,
      header: { peerId: bob.peerId, name: "b", version: "1", ports: { chunk: 1 } },
    }),
  );
  assert.equal(step.error?.code, "bad_handshake");
  assert.equal(step.send[0]?.type, "ERROR");
  // Spent: later messages change nothing.
  const again = await a.receive(
    asMessage({ type: "AUTH_NONCE", requestId: 0, header: { nonce: "A".repeat(43) } }),
  );
  assert.equal(again.error?.code, "bad_handshake");
  assert.equal(a.remote, undefined);
});

Deno.test("LinkAuth fuzz: random, truncated, replayed and reordered messages never throw and never authenticate", async () => {
  // A real earlier conversation between mallory (who holds no key of this network) and
  // bob, and one between alice and bob with the right key: their messages are replayed.
  const key = newNetworkKey();
  const earlier = await converse(
    machine("dialer", alice, { networkKey: key }),
    machine("acceptor", bob, { networkKey: key }),
  );
  const replayable = [...earlier.sentByA, ...earlier.sentByB];
  const b64 = fc.uint8Array({ minLength: 0, maxLength: 40 }).map(toBase64Url);
  const arbitraryMessage: fc.Arbitrary<MessageInit> = fc.oneof(
    fc.constantFrom(...replayable),
    b64.map((nonce) => ({ type: "AUTH_NONCE", requestId: 0, header: { nonce } }) as MessageInit),
    fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) =>
      ({ type: "AUTH_KEY", requestId: 0, header: { proof: toBase64Url(b) } }) as MessageInit
    ),
    fc.record({ sig: b64, claim: fc.constantFrom(alice, bob) }).map(({ sig, claim }) =>
      ({
        type: "HELLO",
        requestId: 0,
        header: {
          peerId: claim.peerId,
          name: "x",
          version: "1",
          ports: { chunk: 1 },
          publicKey: claim.publicKey,
          auth: { scheme: "p2p-link-v1", signature: sig },
        },
      }) as MessageInit
    ),
    fc.constant({ type: "PING", requestId: 1, header: {} } as MessageInit),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(arbitraryMessage, { maxLength: 6 }), async (msgs) => {
      const target = machine("acceptor", bob, { networkKey: key });
      target.start();
      for (const m of msgs) {
        const step = await target.receive(asMessage(m));
        assert.equal(step.remote, undefined);
      }
      assert.equal(target.remote, undefined);
    }),
    { numRuns: 300 },
  );
});
