/**
 * Peer exchange against a stranger, on real processes on loopback (issue 11): a
 * member-less stranger completes a link to peer a and, asked for its peers, answers
 * with forged records of peer b (its address changed, or re-signed with the
 * stranger's key, or unsigned) and with validly signed records of made-up peers at
 * silent addresses and at the stranger's own HTTP server. The forged records are
 * dropped and recorded; b's entry never moves; the gateway never forwards to any
 * address the stranger named; and ten silent addresses cost one bounded wait, not
 * one per `put`.
 */
import assert from "node:assert/strict";
import { p2pClient, spawnPair } from "./_peer_process.ts";
import { tempDir } from "./_tracker_process.ts";
import { connectPeer } from "../peer/dial.ts";
import { testIdentity } from "../peer/_fakes.ts";
import type { WirePeer } from "../proto/messages.ts";
import { PeersAnswer } from "../proto/control.ts";

/** A TCP listener that takes connections and never says a word; counts them. */
function silentListener(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })().catch(() => undefined);
  return {
    port: listener.addr.port,
    get accepted() {
      return conns.length;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) c.close();
      await accepting;
    },
  };
}

Deno.test("forged peer records are dropped, the gateway never forwards to a stranger's address, and silent addresses cost one wait", async () => {
  await using dir = await tempDir();
  await using pair = await spawnPair(dir.path, { replicas: 2 });
  const { a, aLog, b } = pair;

  // The stranger's HTTP server: every request it gets is a forwarding that must not happen.
  let forwarded = 0;
  await using trap = Deno.serve({ hostname: "127.0.0.20", port: 0, onListen() {} }, () => {
    forwarded++;
    return new Response("<script>fetch('/_p2p/status')</script>", {
      headers: { "content-type": "text/html" },
    });
  });
  const trapPort = trap.addr.port;
  await using stack = new AsyncDisposableStack();
  const silent = Array.from(
    { length: 10 },
    (_, i) => stack.use(silentListener(`127.0.0.${30 + i}`)),
  );

  const stranger = await testIdentity("stranger");
  const bFile = JSON.parse(await Deno.readTextFile(`${dir.path}/b/identity.json`));
  const made = await Promise.all(Array.from({ length: 11 }, (_, i) => testIdentity(`made${i}`)));
  const bAtTrap = {
    peerId: b.peerId,
    host: "127.0.0.20",
    ports: { chunk: trapPort, http: trapPort },
  };
  const records: WirePeer[] = [
    // b's id and key, the trap's address, signed by the stranger: does not verify.
    {
      ...await stranger.record("127.0.0.20", bAtTrap.ports),
      peerId: b.peerId,
      publicKey: bFile.publicKey,
    },
    // b's id with the stranger's key: the key does not hash to the id.
    { ...await stranger.record("127.0.0.20", bAtTrap.ports), peerId: b.peerId },
    // Unsigned.
    bAtTrap,
    // Made-up peers, validly signed by themselves: ten at silent addresses, one at the trap.
    ...await Promise.all(
      silent.map((s, i) => made[i].record(`127.0.0.${30 + i}`, { chunk: s.port, http: trapPort })),
    ),
    await made[10].record("127.0.0.20", { chunk: trapPort, http: trapPort }),
  ];
  const conn = await connectPeer({ hostname: a.host, port: a.port }, {
    hello: stranger.hello,
    link: { sign: stranger.sign },
    handler: (msg) =>
      msg.type === "PEERS_REQ" ? { type: "PEERS", header: { peers: records } } : undefined,
  });
  try {
    const exchanged = await aLog.waitFor(
      (r) => r.type === "exchange" && r.with === stranger.peerId,
      "a to ask the stranger for its peers",
    );
    assert.equal(exchanged.dropped, 3, JSON.stringify(exchanged));
    assert.equal(exchanged.learned, 11);
    const drops = aLog.records.filter((r) =>
      r.type === "exchange.drop" && r.from === stranger.peerId
    );
    assert.equal(drops.length, 3);

    // Two puts of 5 bytes: b gets its copy; the silent addresses are dialed once in all.
    const file = `${dir.path}/five.txt`;
    await Deno.writeTextFile(file, "hello");
    for (const n of [1, 2]) {
      const put = await p2pClient(["put", file, "--json", "--node", a.http]);
      assert.equal(put.code, 0, put.stderr);
      const res = JSON.parse(put.stdout);
      assert.deepEqual(Object.keys(res.replicas), [b.peerId], `put ${n}: ${put.stdout}`);
      assert.equal(res.underReplicated, 1, "two copies asked, one proven peer holds one");
    }
    for (const s of silent) {
      assert.ok(s.accepted <= 1, `a silent address was dialed ${s.accepted} times`);
    }

    // The gateway: b is reached at its own address, the made-up peers not at all.
    const via = (id: string) => fetch(`${a.http}/_p2p/peers/${id}/index.html`, { headers: a.auth });
    const toB = await via(b.peerId);
    await toB.body?.cancel();
    for (const p of made) {
      const res = await via(p.peerId);
      await res.body?.cancel();
      assert.ok(res.status >= 400, `forwarded to made-up peer ${p.name}: ${res.status}`);
    }
    assert.equal(forwarded, 0, "nothing reached the stranger's server");
    const listed = await fetch(`${a.http}/_p2p/peers`, { headers: a.auth });
    const bRow = PeersAnswer.parse(await listed.json()).peers.find((p) => p.peerId === b.peerId);
    assert.ok(bRow);
    assert.equal(bRow.host, "127.0.0.3", "b's entry never moved");
  } finally {
    conn.close();
    await conn.closed;
  }
});
