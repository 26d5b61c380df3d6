import assert from "node:assert/strict";
import { startPeer } from "./server.ts";
import { StatusAnswer } from "../proto/control.ts";

Deno.test("startPeer() binds every port before the node starts, so HELLO and status carry them all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const peer = await startPeer({
      host: "127.0.0.1",
      port: 0,
      httpPort: 0,
      pingbackPort: 0,
      appPort: 0,
      dataDir: dir,
      name: "s",
      seeds: [],
      replicas: 0,
    });
    try {
      const token = (await Deno.readTextFile(peer.tokenFile)).trim();
      const status = StatusAnswer.parse(
        await (await fetch(`${peer.httpUrl}/_p2p/status`, {
          headers: { authorization: `Bearer ${token}` },
        })).json(),
      );
      const ports = status.ports;
      assert.equal(peer.httpUrl, `http://127.0.0.1:${ports.http}`);
      assert.equal(peer.appUrl, `http://127.0.0.1:${ports.app}`);
      assert.equal(ports.chunk, peer.node.chunkPort);
      assert.equal(ports.pingback, peer.node.pingbackPort);
      assert.ok(status.http && status.http.requests >= 1, "the main server's counters");
      const start = peer.node.log.query({ type: "peer.start" }).records[0];
      // The TLS link port listens once the link certificate is made, just after start.
      const { tls, ...bound } = ports;
      assert.ok(tls !== undefined && tls === await peer.node.linkTls, "the TLS link port");
      assert.deepEqual(start.ports, bound, "the first record already knows every bound port");
      const pingback = await (await fetch(`http://127.0.0.1:${ports.pingback}/`)).json();
      assert.deepEqual(pingback.ports, bound);
    } finally {
      await peer.stop();
      await peer.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts a peer with one port taken by another listener; asserts it fails with AddrInUse. */
async function startsWithPortTaken(
  which: (port: number) => { port?: number; httpPort?: number },
): Promise<void> {
  const dir = await Deno.makeTempDir();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await assert.rejects(
      startPeer({
        host: "127.0.0.1",
        port: 0,
        httpPort: 0,
        appPort: 0,
        dataDir: dir,
        name: "s",
        seeds: [],
        replicas: 0,
        ...which(taken.addr.port),
      }),
      Deno.errors.AddrInUse,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("startPeer() on a chunk port in use fails and leaves nothing open", async () => {
  await startsWithPortTaken((port) => ({ port }));
});

Deno.test("startPeer() on an HTTP port in use closes what it had started and fails", async () => {
  await startsWithPortTaken((httpPort) => ({ httpPort }));
});
