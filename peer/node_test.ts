import assert from "node:assert/strict";
import { PeerNode, type PeerOptions, recordServiceEvent } from "./node.ts";
import { PeerLog } from "./activity.ts";
import { openPeerData } from "./data_dir.ts";
import { connectPeer } from "./dial.ts";
import { testIdentity } from "./_link_fixtures.ts";
import { StatusAnswer } from "../proto/control.ts";

function options(dataDir: string): PeerOptions {
  return { host: "127.0.0.1", port: 0, httpPort: 0, dataDir, name: "n", seeds: [], replicas: 0 };
}

Deno.test("PeerNode.start() serves the given listener and says the ports it was given in HELLO and status", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = await openPeerData(dir);
    const chunkListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const node = PeerNode.start(options(dir), {
      data,
      chunkListener,
      ports: { http: 4001, pingback: 4002 },
      httpStats: () => ({
        connections: 1,
        requests: 2,
        forwarded: 3,
        failures: 0,
        idleUpstream: 0,
      }),
    });
    assert.equal(node.chunkPort, chunkListener.addr.port);
    assert.equal(node.pingbackPort, 4002);
    const c = await testIdentity("c");
    const conn = await connectPeer(chunkListener.addr, { hello: c.hello, link: { sign: c.sign } });
    assert.equal(conn.remote.peerId, node.identity.peerId);
    // Answered only once the node has taken the connection.
    assert.equal((await conn.request({ type: "PING", header: {} })).type, "PONG");
    assert.deepEqual(conn.remote.ports, { chunk: node.chunkPort, pingback: 4002, http: 4001 });
    assert.equal(conn.remote.host, "127.0.0.1");
    const status = StatusAnswer.parse(node.status());
    assert.equal(status.http?.requests, 2);
    assert.equal(status.tracker, null);
    assert.equal(status.connections, 1);
    conn.close();
    await node.stop(0);
    await node.stop(0);
    assert.ok(node.signal.aborted);
    assert.deepEqual(node.log.query({ type: "peer" }).records.map((r) => r.type), [
      "peer.start",
      "peer.stop",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recordServiceEvent() folds busy rejects and failed handshakes per address and code, and records the rest as they come", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-node-events-" });
  try {
    const path = `${dir}/activity.jsonl`;
    const log = await PeerLog.open(path);
    for (let i = 0; i < 50; i++) {
      recordServiceEvent(log, "conn.reject", {
        remote: `198.51.100.7:${4000 + i}`,
        from: "198.51.100.7",
        code: "busy",
        reason: "too many connections from this address",
      });
      recordServiceEvent(log, "conn.error", {
        remote: `[2001:db8::1]:${4000 + i}`,
        code: "network_key_mismatch",
        reason: "wrong key",
      });
    }
    // Already folded by the service, so never folded again; other events untouched.
    for (let i = 0; i < 8; i++) {
      recordServiceEvent(log, "conn.reject", { from: "198.51.100.8", code: "rate_limited" });
      recordServiceEvent(log, "conn.open", { remote: "198.51.100.9:1" });
    }
    const now = log.query({ limit: 1000 }).records;
    const count = (type: string, code?: string) =>
      now.filter((r) => r.type === type && (code === undefined || r.code === code)).length;
    assert.equal(count("conn.reject", "busy"), 5);
    assert.equal(count("conn.error"), 5);
    assert.equal(count("conn.reject", "rate_limited"), 8);
    assert.equal(count("conn.open"), 8);
    assert.ok(now.filter((r) => r.type === "conn.error").every((r) => r.from === "2001:db8::1"));
    log.close();
    // At close the counted ones are written: the file accounts for every event.
    const records = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    for (const [type, code] of [["conn.reject", "busy"], ["conn.error", "network_key_mismatch"]]) {
      const of = records.filter((r) => r.type === type && r.code === code);
      assert.equal(of.reduce((n, r) => n + (r.folded ? r.count : 1), 0), 50, type);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
