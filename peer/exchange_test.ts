import assert from "node:assert/strict";
import { PeerExchange } from "./exchange.ts";
import type { PeerConnection } from "./connection.ts";
import type { KnownPeer } from "./peer_table.ts";
import { fakeLog, memoryTable, peerIdOf, scriptedConn } from "./_fakes.ts";

/** A connection to `name` that answers PEERS? with `peers`. */
function knowing(name: string, peers: string[]) {
  return scriptedConn(name, () => ({
    type: "PEERS",
    header: {
      peers: peers.map((p, i) => ({
        peerId: peerIdOf(p),
        host: `127.0.0.${i + 10}`,
        ports: { chunk: 5801 },
      })),
    },
  }));
}

Deno.test("PeerExchange.contactSeeds() learns the peers each seed knows and logs a seed that fails", async () => {
  await using table = await memoryTable();
  const log = fakeLog();
  const seed = knowing("seed", ["x", "y"]);
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
  assert.deepEqual(table.list().map((p) => p.peerId).sort(), [peerIdOf("x"), peerIdOf("y")].sort());
  assert.deepEqual(table.get(peerIdOf("x"))?.sources, ["exchange"]);
  assert.equal(log.of("exchange")[0].learned, 2);
  assert.equal(log.of("seed.fail")[0].address, "127.0.0.3:2");
  assert.deepEqual(
    connected.sort(),
    [peerIdOf("x"), peerIdOf("y")].sort(),
    "known peers are greeted",
  );
});

Deno.test("PeerExchange.round() asks up to three known peers, then ages the table out", async () => {
  await using table = await memoryTable();
  for (const name of ["p", "q", "r", "s"]) {
    await table.upsert({ peerId: peerIdOf(name), host: "127.0.0.4", ports: { chunk: 1 } }, "seed");
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
        return Promise.resolve(knowing("z", ["new"]));
      },
    },
  });
  await exchange.round();
  assert.equal(asked.length, 3);
  assert.ok(table.get(peerIdOf("new")));
});
