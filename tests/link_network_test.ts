/**
 * The peer link between real peer processes on loopback addresses: two networks with
 * different keys never exchange a payload, a false identity is refused at the link, a
 * client without the key that sends requests where the proofs belong gets no answer,
 * and a transfer's bytes on the wire hold none of the payload's plaintext (except
 * with `--insecure-plaintext`, which proves the capture sees the bytes).
 */
import assert from "node:assert/strict";
import { followLog, p2pClient, peerAddress, type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { tempDir } from "./_tracker_process.ts";
import { contains } from "./_capture.ts";
import { connectPeer } from "../peer/dial.ts";
import { formatNetworkKey, newNetworkKey } from "../proto/network_key.ts";
import { P2pError, UnauthorizedError } from "../proto/errors.ts";
import { fromBase64Url } from "../proto/ids.ts";
import { dialLink } from "../peer/link_tls.ts";
import { encodeFrame, encodePreamble, FrameDecoder } from "../proto/frame.ts";
import type { MessageInit } from "../proto/messages.ts";
import { concatBytes } from "../proto/bytes.ts";

const MiB = 1024 * 1024;

/** A payload of `size` bytes: a marker text repeated, easy to find on the wire. */
function markedPayload(size: number): { bytes: Uint8Array; needle: Uint8Array } {
  const text = new TextEncoder().encode("P2P-PLAINTEXT-MARKER-0123456789-");
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += text.length) bytes.set(text.subarray(0, size - i), i);
  return { bytes, needle: text };
}

async function writeKeyFile(path: string): Promise<string> {
  await Deno.writeTextFile(path, formatNetworkKey(newNetworkKey()) + "\n", { mode: 0o600 });
  return path;
}

async function put(peer: PeerProcess, file: string): Promise<string> {
  const run = await p2pClient(["put", file, "--json", "--node", peer.http]);
  assert.equal(run.code, 0, `put on ${peer.host}: ${run.stderr}`);
  return String(JSON.parse(run.stdout).payloadId);
}

function get(peer: PeerProcess, id: string, out: string) {
  return p2pClient(["get", id, "-o", out, "--json", "--node", peer.http]);
}

Deno.test("two networks with different keys: a payload put in one cannot be fetched from the other, and the link is refused", async () => {
  await using dir = await tempDir();
  const key1 = await writeKeyFile(`${dir.path}/one.key`);
  const key2 = await writeKeyFile(`${dir.path}/two.key`);
  const keyed = (key: string) => ["--network-key-file", key];
  await using a1 = await spawnPeer({
    dataDir: `${dir.path}/a1`,
    host: "127.0.0.2",
    replicas: 1,
    args: keyed(key1),
  });
  await using a1Log = await followLog(a1);
  await using a2 = await spawnPeer({
    dataDir: `${dir.path}/a2`,
    host: "127.0.0.3",
    seeds: [peerAddress(a1)],
    args: keyed(key1),
  });
  // b1 of the other network is given a1 as a seed: its link must be refused.
  await using b1 = await spawnPeer({
    dataDir: `${dir.path}/b1`,
    host: "127.0.0.4",
    seeds: [peerAddress(a1)],
    args: keyed(key2),
  });
  await using b2 = await spawnPeer({
    dataDir: `${dir.path}/b2`,
    host: "127.0.0.5",
    seeds: [peerAddress(b1)],
    args: keyed(key2),
  });
  await a1Log.waitFor((r) => r.type === "conn.open" && r.peerId === a2.peerId, "a2 to connect");
  const refused = await a1Log.waitFor(
    (r) => r.type === "conn.error" && r.code === "network_key_mismatch",
    "the refusal of b1's link",
  );
  assert.match(String(refused.remote), /^127\.0\.0\.1:|^127\.0\.0\.4:/);
  assert.ok(
    !a1Log.records.some((r) =>
      r.type === "conn.open" && [b1.peerId, b2.peerId].includes(String(r.peerId))
    ),
    "no peer of the other network completed a link",
  );

  const { bytes } = markedPayload(3 * MiB + 5);
  await Deno.writeFile(`${dir.path}/in.bin`, bytes);
  const id = await put(a1, `${dir.path}/in.bin`);
  const inNetwork = await get(a2, id, `${dir.path}/a2.bin`);
  assert.equal(inNetwork.code, 0, inNetwork.stderr);
  assert.deepEqual(await Deno.readFile(`${dir.path}/a2.bin`), bytes);
  for (const [name, p] of [["b1", b1], ["b2", b2]] as const) {
    const out = await get(p, id, `${dir.path}/${name}.bin`);
    assert.notEqual(out.code, 0, `${name} of the other network fetched the payload`);
    await assert.rejects(Deno.stat(`${dir.path}/${name}.bin`), Deno.errors.NotFound);
  }
  // Nothing was served to the other network: a1 sent no chunk to b1 or b2.
  assert.ok(
    !a1Log.records.some((r) =>
      r.type.startsWith("chunk.") && [b1.peerId, b2.peerId].includes(String(r.peerId))
    ),
  );

  // A direct dial from this process with the other network's key gets one clear line.
  const { testIdentity } = await import("../peer/_link_fixtures.ts");
  const stranger = await testIdentity("stranger");
  const err = await connectPeer({ hostname: a1.host, port: a1.port }, {
    hello: stranger.hello,
    link: { sign: stranger.sign, networkKey: newNetworkKey() },
  }).then(() => undefined, (e) => e);
  assert.ok(err instanceof UnauthorizedError, String(err));
  assert.equal(err.code, "network_key_mismatch");
  assert.equal(
    err.message,
    `Peer at ${peerAddress(a1)} is not in this network (network key differs)`,
  );
});

Deno.test("a client claiming another peer's id and public key without its private key is refused at the link", async () => {
  await using dir = await tempDir();
  await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2" });
  await using aLog = await followLog(a);
  await using b = await spawnPeer({ dataDir: `${dir.path}/b`, host: "127.0.0.3" });
  const bFile = JSON.parse(await Deno.readTextFile(`${dir.path}/b/identity.json`));
  assert.equal(fromBase64Url(bFile.publicKey).length, 32);
  const { testIdentity } = await import("../peer/_link_fixtures.ts");
  const mallory = await testIdentity("mallory");
  // b's id and public key, signed with mallory's private key. The dialer checks a's
  // HELLO first, so its side may complete; a never takes a request and closes.
  const outcome = await connectPeer({ hostname: a.host, port: a.port }, {
    hello: { ...mallory.hello, peerId: b.peerId, publicKey: bFile.publicKey },
    link: { sign: mallory.sign },
  }).then(async (conn) => {
    await assert.rejects(conn.request({ type: "PING", header: {} }, { timeoutMs: 5000 }));
    await conn.closed;
    return conn.closeError;
  }, (e) => e);
  assert.ok(outcome instanceof P2pError, String(outcome));
  assert.equal(outcome.code, "unauthorized", String(outcome));
  const refused = await aLog.waitFor(
    (r) => r.type === "conn.error" && r.code === "unauthorized",
    "the refusal of the false identity",
  );
  assert.match(String(refused.reason), /bad signature/);
  assert.ok(!aLog.records.some((r) => r.type === "conn.open" && r.peerId === b.peerId));
  // The peer table of a has no entry for b at mallory's address.
  const peers = await fetch(`${a.http}/_p2p/peers`, { headers: a.auth });
  const text = await peers.text();
  assert.ok(!text.includes(b.peerId), "a noted the claimed id");
});

/** A TCP forwarder on `listenHost` (port 0) to `target` that records both directions. */
function recordingProxy(listenHost: string, target: { host: string; port: number }) {
  const listener = Deno.listen({ hostname: listenHost, port: 0 });
  const captured: Uint8Array[] = [];
  let bytes = 0;
  const pipes = new Set<Promise<unknown>>();
  const copy = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      for await (const chunk of from.readable) {
        captured.push(chunk.slice());
        bytes += chunk.length;
        let at = 0;
        while (at < chunk.length) at += await to.write(chunk.subarray(at));
      }
    } catch { /* reset */ }
    try {
      await to.closeWrite();
    } catch { /* gone */ }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: target.host, port: target.port });
      const both = Promise.all([copy(client, upstream), copy(upstream, client)]).finally(() => {
        for (const c of [client, upstream]) {
          try {
            c.close();
          } catch { /* closed */ }
        }
      });
      pipes.add(both);
    }
  })();
  return {
    addr: listener.addr,
    get bytes() {
      return bytes;
    },
    wire(): Uint8Array {
      const out = new Uint8Array(bytes);
      let at = 0;
      for (const c of captured) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.allSettled(pipes);
    },
  };
}

for (const plaintext of [false, true]) {
  const mode = plaintext ? "with --insecure-plaintext" : "encrypted";
  Deno.test(`on the wire (${mode}): chunks fetched from a peer ${plaintext ? "show" : "hide"} the payload's plaintext`, async () => {
    await using dir = await tempDir();
    const args = plaintext ? ["--insecure-plaintext"] : [];
    await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", args });
    await using proxy = recordingProxy("127.0.0.4", { host: a.host, port: a.port });
    const { bytes, needle } = markedPayload(2 * MiB + 77);
    await Deno.writeFile(`${dir.path}/in.bin`, bytes);
    const payloadId = await put(a, `${dir.path}/in.bin`);
    const { testIdentity } = await import("../peer/_link_fixtures.ts");
    const me = await testIdentity("capture");
    {
      await using conn = await connectPeer(proxy.addr, {
        hello: me.hello,
        link: { sign: me.sign, plaintext },
      });
      assert.equal(conn.remote.peerId, a.peerId);
      for (const index of [0, 1, 2]) {
        const chunk = await conn.request({ type: "GET_CHUNK", header: { payloadId, index } });
        assert.deepEqual(chunk.body, bytes.subarray(index * MiB, (index + 1) * MiB));
      }
    }
    assert.ok(
      proxy.bytes > bytes.length,
      `the chunks went through the proxy (${proxy.bytes} bytes)`,
    );
    const wire = proxy.wire();
    if (plaintext) assert.ok(contains(wire, needle), "the capture shows the plaintext");
    else assert.ok(!contains(wire, needle), "no plaintext of the payload on the wire");
  });
}

Deno.test("a plaintext link is refused when only one end runs with --insecure-plaintext", async () => {
  await using dir = await tempDir();
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    args: ["--insecure-plaintext"],
  });
  await using aLog = await followLog(a);
  await using b = await spawnPeer({
    dataDir: `${dir.path}/b`,
    host: "127.0.0.3",
    seeds: [peerAddress(a)],
  });
  const refused = await aLog.waitFor(
    (r) => r.type === "conn.error" && r.code === "plaintext_refused",
    "the refusal of an encrypted dialer by a plaintext peer",
  );
  assert.match(String(refused.reason), /--insecure-plaintext/);
  assert.ok(!aLog.records.some((r) => r.type === "conn.open" && r.peerId === b.peerId));
});

Deno.test("a client without the network key that skips the proofs gets no answer to LOG_REQ, PEERS_REQ, MANIFEST_REQ, GET_CHUNK or PUT_CHUNK", async () => {
  await using dir = await tempDir();
  const key = await writeKeyFile(`${dir.path}/net.key`);
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    replicas: 1,
    args: ["--network-key-file", key],
  });
  await using aLog = await followLog(a);
  const { bytes } = markedPayload(100_000);
  await Deno.writeFile(`${dir.path}/shared.bin`, bytes);
  const payloadId = await put(a, `${dir.path}/shared.bin`);
  const before = await (await fetch(`${a.http}/_p2p/status`, { headers: a.auth })).json();
  const requests: MessageInit[] = [
    { type: "LOG_REQ", requestId: 1, header: {} },
    { type: "PEERS_REQ", requestId: 1, header: {} },
    { type: "MANIFEST_REQ", requestId: 1, header: { payloadId } },
    { type: "GET_CHUNK", requestId: 1, header: { payloadId, index: 0 } },
    {
      type: "PUT_CHUNK",
      requestId: 1,
      header: { payloadId: "ab".repeat(32), index: 0 },
      body: bytes,
    },
  ];
  let lastId = Math.max(0, ...aLog.records.map((r) => r.id));
  for (const request of requests) {
    // TLS as any dialer gets it, then the request where the proofs of the key belong.
    const tcp = await Deno.connect({ hostname: a.host, port: a.port });
    const link = await dialLink(tcp);
    assert.ok("conn" in link, "the link's TLS start");
    const writer = link.conn.writable.getWriter();
    // The peer may close before it has read all of it (the PUT_CHUNK): a broken pipe.
    await writer.write(concatBytes(encodePreamble(), encodeFrame(request))).catch(() => {});
    const got: string[] = [];
    const decoder = new FrameDecoder();
    const reader = link.conn.readable.getReader();
    // Until the peer ends the connection (a reset or a TLS stream cut short is an end too).
    for (let r = await readOrEnd(reader); r; r = await readOrEnd(reader)) {
      for (const m of decoder.push(r)) {
        got.push(m.type === "ERROR" ? `ERROR ${m.header.code}` : m.type);
      }
    }
    try {
      link.conn.close();
    } catch { /* closed already, with its stream */ }
    // What a keyless client sees: the peer's nonce and a refusal, then the end.
    assert.ok(
      got.every((t) => t === "AUTH_NONCE" || t.startsWith("ERROR")),
      `${request.type} got ${got.join(", ")}`,
    );
    // A frame over the 64 KiB allowed before the proofs (the 100 kB PUT_CHUNK) ends the
    // connection at its length field; the others are answered with an ERROR first.
    if (request.type !== "PUT_CHUNK") {
      assert.ok(got.some((t) => t.startsWith("ERROR")), `${request.type} got ${got.join(", ")}`);
    }
    const refusal = await aLog.waitFor(
      (r) => r.type === "conn.error" && r.id > lastId,
      `the refusal of ${request.type}`,
    );
    lastId = refusal.id;
    if (request.type !== "PUT_CHUNK") {
      assert.match(String(refusal.reason), new RegExp(request.type));
    }
  }
  assert.ok(!aLog.records.some((r) => r.type === "conn.open"), "no link opened");
  assert.ok(!aLog.records.some((r) => String(r.type).startsWith("chunk.")), "no chunk moved");
  const after = await (await fetch(`${a.http}/_p2p/status`, { headers: a.auth })).json();
  assert.deepEqual(after.store, before.store, "the store is as it was");
});

/** The next bytes, or undefined at the end (a reset or a TLS stream cut short counts as the end). */
async function readOrEnd(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<Uint8Array | undefined> {
  try {
    const { value, done } = await reader.read();
    return done ? undefined : value;
  } catch {
    return undefined;
  }
}
