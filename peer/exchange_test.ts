import assert from "node:assert/strict";
import { PeerExchange, selfRecord } from "./exchange.ts";
import { verifyPeerRecord } from "../proto/peer_record.ts";
import type { PeerConnection } from "./connection.ts";
import type { KnownPeer } from "./peer_table.ts";
import {
  fakeLog,
  memoryTable,
  peerIdOf,
  scriptedConn,
  type TestIdentity,
  testIdentity,
} from "./_fakes.ts";
import type { WirePeer } from "../proto/messages.ts";

/** A connection to `name` that answers PEERS? with the records of `peers`, signed by each. */
async function knowing(name: string, peers: TestIdentity[], extra: WirePeer[] = []) {
  const records = await Promise.all(
    peers.map((p, i) => p.record(`127.0.0.${i + 10}`, { chunk: 5801 })),
  );
  return scriptedConn(name, () => ({ type: "PEERS", header: { peers: [...records, ...extra] } }));
}

Deno.test("PeerExchange.contactSeeds() learns the peers each seed knows and logs a seed that fails", async () => {
  await using table = await memoryTable();
  const log = fakeLog();
  const [x, y] = [await testIdentity("x"), await testIdentity("y")];
  const seed = await knowing("seed", [x, y]);
  const connected: string[] = [];
  const exchange = new PeerExchange({
    seeds: [{ host: "127.0.0.2", port: 1 }, { host: "127.0.0.3", port: 2 }],
    table,
    log,
    pool: {
      connect: (host) =>
        host === "127.0.0.2" ? Promise.resolve(seed) : Promise.reject(new Error("refused")),
      connectKnown: (p: KnownPeer) => {
        connected.push(p.peerId);
        return Promise.resolve(undefined);
      },
    },
  });
  await exchange.contactSeeds();
  assert.deepEqual(seed.sent.map((m) => m.type), ["PEERS_REQ"]);
  assert.deepEqual(table.list().map((p) => p.peerId).sort(), [x.peerId, y.peerId].sort());
  assert.deepEqual(table.get(x.peerId)?.sources, ["exchange"]);
  assert.equal(table.getProven(x.peerId), undefined, "a record is learned, not proven");
  assert.equal(log.of("exchange")[0].learned, 2);
  assert.equal(log.of("seed.fail")[0].address, "127.0.0.3:2");
  assert.deepEqual(
    connected.sort(),
    [x.peerId, y.peerId].sort(),
    "known peers are greeted",
  );
});

Deno.test("PeerExchange.round() asks up to three known peers, then ages the table out", async () => {
  await using table = await memoryTable();
  const fresh = await testIdentity("new");
  const conns = new Map<string, PeerConnection>();
  for (const name of ["p", "q", "r", "s"]) {
    await table.upsert({ peerId: peerIdOf(name), host: "127.0.0.4", ports: { chunk: 1 } }, "seed");
    conns.set(peerIdOf(name), await knowing(name, [fresh]));
  }
  const asked: string[] = [];
  const exchange = new PeerExchange({
    seeds: [],
    table,
    log: fakeLog(),
    pool: {
      connect: () => Promise.reject(new Error("not used")),
      connectKnown: (p: KnownPeer): Promise<PeerConnection | undefined> => {
        asked.push(p.peerId);
        return Promise.resolve(conns.get(p.peerId));
      },
    },
  });
  await exchange.round();
  assert.equal(asked.length, 3);
  assert.ok(table.get(fresh.peerId));
});

Deno.test("PeerExchange drops records that do not verify, and a forged record never moves a proven peer", async () => {
  await using table = await memoryTable();
  const log = fakeLog();
  const victim = await testIdentity("victim");
  const mallory = await testIdentity("mallory");
  await table.learnRecord(await victim.record("127.0.0.2", { chunk: 1 }, 1000));
  await table.upsert({ peerId: victim.peerId, host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  const good = await victim.record("127.0.0.2", { chunk: 1 }, 1000);
  const forged: WirePeer[] = [
    // The victim's record with the address changed.
    { ...good, host: "127.0.0.66", seq: 5000 },
    // The victim's id with mallory's key, signed by mallory.
    { ...await mallory.record("127.0.0.66", { chunk: 1 }, 5000), peerId: victim.peerId },
    // No signature at all.
    { peerId: victim.peerId, host: "127.0.0.66", ports: { chunk: 1 } },
  ];
  const conn = scriptedConn("m", () => ({ type: "PEERS", header: { peers: forged } }));
  const exchange = new PeerExchange({
    seeds: [],
    table,
    log,
    pool: {
      connect: () => Promise.reject(new Error("not used")),
      connectKnown: () => Promise.resolve(undefined),
    },
  });
  assert.equal(await exchange.exchangeWith(conn), 0);
  assert.equal(log.of("exchange.drop").length, 3);
  assert.equal(log.of("exchange")[0].dropped, 3);
  assert.equal(table.getProven(victim.peerId)?.host, "127.0.0.2");
  assert.deepEqual(table.unproven(), [], "nothing to dial at the forged address");
});

Deno.test("selfRecord() signs this peer's record at its host, or its LAN address when it listens on all", async () => {
  const me = await testIdentity("me");
  const own = await selfRecord(me, { host: "127.0.0.9", ports: { chunk: 5801 }, name: "me" })();
  assert.equal(own?.host, "127.0.0.9");
  assert.ok((await verifyPeerRecord(own!)).ok);
  const lan = selfRecord(me, { host: "0.0.0.0", ports: { chunk: 5801 }, name: "me" }, () => [
    { family: "IPv4", address: "127.0.0.1" },
    { family: "IPv4", address: "198.51.100.3" },
  ]);
  assert.equal((await lan())?.host, "198.51.100.3");
  assert.equal(await lan(), await lan(), "made once");
  const none = selfRecord(me, { host: "0.0.0.0", ports: { chunk: 1 }, name: "me" }, () => []);
  assert.equal(await none(), undefined);
});
