import assert from "node:assert/strict";
import { probePingback, scan } from "./discovery.ts";
import { loadIdentity } from "./identity.ts";
import { startPingback } from "./pingback.ts";
import { type FakeMode, fakePingbackHandler } from "../tests/_fake_pingback.ts";
import { parseRange, PINGBACK_PROOF_LABEL, type ScanProgress } from "../proto/discovery.ts";
import { keyProof, newNetworkKey, OPEN_NETWORK_KEY } from "../proto/network_key.ts";
import { toBase64Url } from "../proto/ids.ts";
import { serveLocal } from "../tests/_serve.ts";

const serve = (host: string, port: number, handler: Deno.ServeHandler<Deno.NetAddr>) =>
  serveLocal(handler, host, port);

async function tempIdentity() {
  const dir = await Deno.makeTempDir({ prefix: "p2p-pingback-" });
  try {
    return await loadIdentity(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("pingback server answers GET / with a signed answer that probePingback() verifies", async () => {
  const identity = await tempIdentity();
  const requests: { status: number; signed: boolean }[] = [];
  await using pb = await startPingback({
    hostname: "127.0.0.1",
    port: 0,
    identity,
    name: "alpha",
    ports: () => ({ chunk: 5801, http: 5805 }),
    onRequest: (f) => requests.push(f),
  });
  const r = await probePingback("127.0.0.1", pb.addr.port);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.answer.peerId, identity.peerId);
  assert.equal(r.answer.name, "alpha");
  assert.deepEqual(r.answer.ports, { pingback: pb.addr.port, chunk: 5801, http: 5805 });
  assert.ok(r.rttMs >= 0);
  assert.deepEqual(requests, [{ from: "127.0.0.1", status: 200, signed: true }]);

  // Without a nonce: the same facts, unsigned.
  const plain = await (await fetch(`http://127.0.0.1:${pb.addr.port}/`)).json();
  assert.equal(plain.peerId, identity.peerId);
  assert.equal(plain.signature, undefined);
});

Deno.test("pingback server rejects a bad nonce, other paths and other methods with JSON errors", async () => {
  await using pb = await startPingback({
    hostname: "127.0.0.1",
    port: 0,
    identity: await tempIdentity(),
    name: "alpha",
    ports: () => ({ chunk: 5801 }),
  });
  const base = `http://127.0.0.1:${pb.addr.port}`;
  const cases: [string, RequestInit, number, string][] = [
    ["/?nonce=short", {}, 400, "bad_request"],
    [`/?nonce=${"%00".repeat(20)}`, {}, 400, "bad_request"],
    [`/?nonce=${"a".repeat(129)}`, {}, 400, "bad_request"],
    ["/admin", {}, 404, "not_found"],
    ["/", { method: "POST", body: "x" }, 405, "method_not_allowed"],
  ];
  for (const [path, init, status, code] of cases) {
    const res = await fetch(base + path, init);
    assert.equal(res.status, status, path);
    assert.equal((await res.json()).error.code, code, path);
  }
  // Still serving.
  assert.ok((await probePingback("127.0.0.1", pb.addr.port)).ok);
});

for (
  const [mode, reason] of [
    ["other-json", /not a p2p pingback answer/],
    ["bad-signature", /signature of peer [0-9a-f]{40} does not verify/],
    ["impostor", /does not belong to the public key/],
    ["unsigned", /did not sign our nonce/],
  ] as [FakeMode, RegExp][]
) {
  Deno.test(`probePingback() rejects a device that answers as '${mode}'`, async () => {
    await using fake = await serve("127.0.0.1", 0, await fakePingbackHandler(mode, 5800));
    const r = await probePingback("127.0.0.1", fake.addr.port);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.answered);
    assert.match(!r.ok ? r.reason : "", reason);
  });
}

Deno.test("probePingback() gives a reason for refusal, silence, garbage, oversize and HTTP errors", async () => {
  // Refused: a port nobody listens on.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = closed.addr.port;
  closed.close();
  const refused = await probePingback("127.0.0.1", closedPort);
  assert.ok(!refused.ok && !refused.answered);
  assert.match(!refused.ok ? refused.reason : "", /refused/);

  // Silent: accepts, never answers.
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })();
  const quiet = await probePingback("127.0.0.1", silent.addr.port, { timeoutMs: 200 });
  assert.ok(!quiet.ok && !quiet.answered);
  assert.match(!quiet.ok ? quiet.reason : "", /no answer within 200 ms/);
  for (const c of held) c.close();

  // Garbage: not HTTP at all.
  using junk = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const junkServing = (async () => {
    for await (const c of junk) {
      await c.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
      c.close();
    }
  })();
  const notHttp = await probePingback("127.0.0.1", junk.addr.port);
  assert.ok(!notHttp.ok);
  assert.match(!notHttp.ok ? notHttp.reason : "", /not an HTTP answer/);

  // Oversize: a body beyond the limit is not read to its end.
  await using big = await serve("127.0.0.1", 0, () => new Response("x".repeat(1 << 20)));
  const huge = await probePingback("127.0.0.1", big.addr.port);
  assert.ok(!huge.ok);
  assert.match(!huge.ok ? huge.reason : "", /answer longer than/);

  // An HTTP error.
  await using missing = await serve("127.0.0.1", 0, () => new Response("no", { status: 404 }));
  const notFound = await probePingback("127.0.0.1", missing.addr.port);
  assert.ok(!notFound.ok && notFound.answered);
  assert.match(!notFound.ok ? notFound.reason : "", /HTTP 404/);

  silent.close();
  junk.close();
  await accepting.catch(() => undefined);
  await junkServing.catch(() => undefined);
});

Deno.test("scan() keeps verified peers, drops itself, rejects fakes and reports silent known peers", async () => {
  const [me, other] = [await tempIdentity(), await tempIdentity()];
  // Every device listens on one pingback port, on its own loopback address.
  await using a = await startPingback({
    hostname: "127.0.0.2",
    port: 0,
    identity: other,
    name: "other",
    ports: () => ({ chunk: 5801 }),
  });
  const port = a.addr.port;
  await using self = await startPingback({
    hostname: "127.0.0.3",
    port,
    identity: me,
    name: "me",
    ports: () => ({ chunk: 5801 }),
  });
  await using fake = await serve("127.0.0.4", port, await fakePingbackHandler("other-json", port));
  await using liar = await serve(
    "127.0.0.5",
    port,
    await fakePingbackHandler("bad-signature", port),
  );
  assert.ok(self.addr.port === port && fake.addr.port === port && liar.addr.port === port);
  const ranges = [parseRange("127.0.0.2-127.0.0.6")];
  const progress: ScanProgress[] = [];
  const result = await scan({
    ranges,
    onProgress: (p) => progress.push(p),
    known: [
      // Known at an address where nobody answers now.
      { host: "127.0.0.7", port, peerId: "f".repeat(40) },
      // Known, and still there.
      { host: "127.0.0.2", port, peerId: other.peerId },
    ],
    self: me.peerId,
    pingbackPort: port,
    timeoutMs: 500,
    // The devices an ARP table would show for the range (local-devices itself is
    // exercised on a real virtual LAN in tests/lan_discovery_test.ts).
    devices: (r) => {
      assert.equal(r, ranges[0]);
      return Promise.resolve(
        ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
          .map((ip) => ({ ip, mac: "02:00:00:00:00:00" })),
      );
    },
  });
  assert.equal(result.devices, 5);
  assert.equal(result.probed, 6);
  assert.deepEqual(result.found.map((f) => [f.host, f.answer.peerId]), [[
    "127.0.0.2",
    other.peerId,
  ]]);
  assert.deepEqual(
    result.rejected.map((r) => r.address).sort(),
    [`127.0.0.4:${port}`, `127.0.0.5:${port}`, `127.0.0.6:${port}`],
  );
  assert.deepEqual(result.silent.map((s) => s.peerId), ["f".repeat(40)]);
  // Progress: the devices listed, then one line per probe that ended, up to all 6.
  assert.deepEqual(progress[0], { phase: "devices", devices: 5, probed: 0, total: 6, found: 0 });
  assert.deepEqual(progress.slice(1).map((p) => p.probed), [1, 2, 3, 4, 5, 6]);
  assert.ok(progress.slice(1).every((p) => p.phase === "probing" && p.total === 6));
  // Our own answer (127.0.0.3) is not counted as found: the other peer alone is.
  assert.equal(progress.at(-1)?.found, 1);
});

Deno.test("scan() still probes known peers when listing devices fails, and says why", async () => {
  const other = await tempIdentity();
  await using a = await startPingback({
    hostname: "127.0.0.1",
    port: 0,
    identity: other,
    name: "other",
    ports: () => ({ chunk: 5801 }),
  });
  const result = await scan({
    ranges: [parseRange("127.0.0.1/32")],
    known: [{ host: "127.0.0.1", port: a.addr.port, peerId: other.peerId }],
    self: "e".repeat(40),
    devices: () => Promise.reject(new Error("Cannot list LAN devices: arp is missing")),
  });
  assert.equal(result.devicesError, "Cannot list LAN devices: arp is missing");
  assert.equal(result.found.length, 1);
  assert.equal(result.silent.length, 0);
});

/** A raw TCP device that answers each GET with `answer(target)`, then closes. */
function rawDevice(answer: (target: string) => Promise<string>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(4096);
      let text = "";
      while (!text.includes("\r\n\r\n")) {
        const n = await conn.read(buf.subarray(0)).catch(() => null);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      const target = text.split(" ")[1] ?? "/";
      await conn.write(new TextEncoder().encode(await answer(target))).catch(() => 0);
      conn.close();
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving.catch(() => undefined);
    },
  };
}

Deno.test("probePingback() reads a chunked answer, and calls a malformed head not HTTP", async () => {
  const handler = await fakePingbackHandler("bad-signature", 5800);
  await using chunked = rawDevice(async (target) => {
    const json = await (await handler(new Request(`http://device${target}`))).text();
    const half = Math.floor(json.length / 2);
    const [a, b] = [json.slice(0, half), json.slice(half)];
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
      `${a.length.toString(16)}\r\n${a}\r\n${b.length.toString(16)};x=1\r\n${b}\r\n0\r\n\r\n`;
  });
  const signed = await probePingback("127.0.0.1", chunked.port);
  assert.ok(!signed.ok && signed.answered);
  assert.match(!signed.ok ? signed.reason : "", /signature of peer [0-9a-f]{40} does not verify/);

  await using malformed = rawDevice(() =>
    Promise.resolve("HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\n{}")
  );
  const bad = await probePingback("127.0.0.1", malformed.port);
  assert.ok(!bad.ok && !bad.answered);
  assert.match(!bad.ok ? bad.reason : "", /^not an HTTP answer \(Bad upstream response head/);
});

Deno.test("keyed pingback: only a caller that proves the key learns the identity; others get 'protected'", async () => {
  const identity = await tempIdentity();
  const key = newNetworkKey();
  const requests: { status: number; signed: boolean; protected?: boolean }[] = [];
  await using pb = await startPingback({
    hostname: "127.0.0.1",
    port: 0,
    identity,
    name: "keyed",
    networkKey: key,
    ports: () => ({ chunk: 5801 }),
    onRequest: (f) => requests.push(f),
  });
  const port = pb.addr.port;
  // A member: the key proven both ways.
  const member = await probePingback("127.0.0.1", port, { networkKey: key });
  assert.ok(member.ok, JSON.stringify(member));
  assert.equal(member.answer.peerId, identity.peerId);
  // A stranger without the key, one with another key, and a plain GET learn nothing.
  const open = await probePingback("127.0.0.1", port);
  assert.ok(!open.ok && /protected p2p network/.test(open.reason));
  const other = await probePingback("127.0.0.1", port, { networkKey: newNetworkKey() });
  assert.ok(!other.ok && /protected p2p network/.test(other.reason));
  const plain = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  assert.deepEqual(JSON.parse(plain), { p2p: "protected" });
  assert.ok(!plain.includes(identity.peerId) && !plain.includes(identity.publicKey));
  // A replayed proven request gets nothing either.
  const nonce = "n".repeat(22);
  const proof = toBase64Url(await keyProof(key, PINGBACK_PROOF_LABEL, [nonce]));
  const url = `http://127.0.0.1:${port}/?nonce=${nonce}&proof=${proof}`;
  assert.equal((await (await fetch(url)).json()).peerId, identity.peerId);
  assert.deepEqual(await (await fetch(url)).json(), { p2p: "protected" });
  assert.deepEqual(requests.map((r) => r.protected ?? false), [
    false,
    true,
    true,
    true,
    false,
    true,
  ]);
});

Deno.test("keyed probe: an open peer's answer is not a member of the network", async () => {
  const identity = await tempIdentity();
  await using pb = await startPingback({
    hostname: "127.0.0.1",
    port: 0,
    identity,
    name: "open",
    ports: () => ({ chunk: 5801 }),
  });
  const r = await probePingback("127.0.0.1", pb.addr.port, { networkKey: newNetworkKey() });
  assert.ok(!r.ok && /not a member of this network/.test(r.reason), JSON.stringify(r));
  // With the open network's key (no key given), it answers as today.
  assert.ok((await probePingback("127.0.0.1", pb.addr.port, { networkKey: OPEN_NETWORK_KEY })).ok);
});
