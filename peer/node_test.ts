import assert from "node:assert/strict";
import { PeerNode, type PeerOptions } from "./node.ts";
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
