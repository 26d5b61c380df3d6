/**
 * The peer's main HTTP server with `tls`: HTTPS with the given certificate, the control
 * API behind the token as over HTTP, the web app's cookie marked Secure, and the
 * client commands (as child processes) working against it.
 */
import assert from "node:assert/strict";
import { startPeer } from "../peer/server.ts";
import { testCert } from "../lib/http_relay/_tls_fixture.ts";
import { StatusAnswer } from "../proto/control.ts";
import { tempDir } from "./_tracker_process.ts";
import { p2pClient } from "./_peer_process.ts";

/** Runs `main.ts` with `args`, `env` added and `stdin` given; its exit and output. */
function cli(env: Record<string, string>, stdin: Uint8Array | undefined, ...args: string[]) {
  return p2pClient(args, stdin, 30_000, undefined, env);
}

Deno.test("startPeer() with tls serves the control API over HTTPS behind the token, and a Secure cookie", async () => {
  using cert = await testCert();
  await using dir = await tempDir();
  const prevHome = Deno.env.get("P2P_HOME");
  // The registry of running peers goes to this test's folder.
  Deno.env.set("P2P_HOME", dir.path);
  const peer = await startPeer({
    host: "127.0.0.1",
    port: 0,
    httpPort: 0,
    pingbackPort: 0,
    dataDir: `${dir.path}/a`,
    name: "secure",
    seeds: [],
    replicas: 0,
    tls: { cert: cert.cert, key: cert.key },
  });
  try {
    assert.match(peer.httpUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const { client } = cert;
    const denied = await fetch(`${peer.httpUrl}/_p2p/status`, { client });
    assert.equal(denied.status, 401);
    assert.equal((await denied.json()).error.code, "unauthorized");
    const token = (await Deno.readTextFile(peer.tokenFile)).trim();
    const status = StatusAnswer.parse(
      await (await fetch(`${peer.httpUrl}/_p2p/status`, {
        client,
        headers: { authorization: `Bearer ${token}` },
      })).json(),
    );
    assert.equal(status.name, "secure");
    // The page's own origin is the https one.
    const same = await fetch(`${peer.httpUrl}/_p2p/status`, {
      client,
      headers: { authorization: `Bearer ${token}`, origin: peer.httpUrl },
    });
    assert.equal(same.status, 200);
    await same.body?.cancel();
    const plainOrigin = peer.httpUrl.replace("https:", "http:");
    const other = await fetch(`${peer.httpUrl}/_p2p/status`, {
      client,
      headers: { authorization: `Bearer ${token}`, origin: plainOrigin },
    });
    assert.equal(other.status, 403);
    await other.body?.cancel();
    assert.ok(peer.loginUrl.startsWith(`${peer.httpUrl}/_p2p/login?once=`), peer.loginUrl);
    const login = await fetch(peer.loginUrl, { client, redirect: "manual" });
    await login.body?.cancel();
    assert.equal(login.status, 303);
    assert.match(login.headers.get("set-cookie") ?? "", /; HttpOnly; SameSite=Strict; Secure$/);
    // The client commands, with the certificate trusted (fetch reads DENO_CERT, the
    // streamed upload of put goes through node:https, which reads NODE_EXTRA_CA_CERTS),
    // find the token in the registry under P2P_HOME.
    await Deno.writeTextFile(`${dir.path}/cert.pem`, cert.cert);
    const env = {
      P2P_HOME: dir.path,
      DENO_CERT: `${dir.path}/cert.pem`,
      NODE_EXTRA_CA_CERTS: `${dir.path}/cert.pem`,
    };
    const put = await cli(
      env,
      new TextEncoder().encode("over tls"),
      "put",
      "-",
      "--node",
      peer.httpUrl,
    );
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^[0-9a-f]{64}\n$/);
    const where = await cli(env, undefined, "status", "--json", "--node", peer.httpUrl);
    assert.equal(where.code, 0, where.stderr);
    assert.equal(JSON.parse(where.stdout).payloads, 1);
    // The registry lists the https URLs.
    const entry = JSON.parse(
      await Deno.readTextFile(`${dir.path}/running/${peer.node.identity.peerId}.json`),
    );
    assert.equal(entry.urls[0], peer.httpUrl);
    assert.ok(entry.urls.includes(peer.httpUrl.replace("127.0.0.1", "localhost")), entry.urls);
  } finally {
    await peer.stop();
    if (prevHome === undefined) Deno.env.delete("P2P_HOME");
    else Deno.env.set("P2P_HOME", prevHome);
  }
  // This peer's entry is gone. (Not "the folder is empty": P2P_HOME is process-wide,
  // and a peer another test file starts in this process meanwhile registers there too.)
  const left = [...Deno.readDirSync(`${dir.path}/running`)].map((e) => e.name);
  assert.ok(!left.includes(`${peer.node.identity.peerId}.json`), `left: ${left.join(", ")}`);
});
