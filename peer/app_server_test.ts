import assert from "node:assert/strict";
import { createAppServer } from "./app_server.ts";
import { startedPeer } from "./_started_peer.ts";
import { viaToken } from "./gateway.ts";

const SELF = "ab".repeat(20);

Deno.test("createAppServer() with a front serves requests that came through the main server, and redirects the others there", async () => {
  const listening: { url?: string } = {};
  const app = await createAppServer({ via: viaToken(SELF), main: () => listening.url });
  const early = await app.request("/");
  assert.equal(early.status, 503, "before the main server listens");
  assert.equal((await early.json()).error.code, "starting");

  listening.url = "http://127.0.0.1:5805";
  const direct = await app.request("/app.js?v=1");
  assert.equal(direct.status, 307);
  assert.equal(direct.headers.get("location"), "http://127.0.0.1:5805/app.js?v=1");
  assert.equal(direct.headers.get("cache-control"), "no-store", "ports change: never cached");
  const other = await app.request("/", { headers: { via: viaToken("cd".repeat(20)) } });
  assert.equal(other.status, 307, "another peer's main server is not this one's");

  for (const via of [viaToken(SELF), `1.1 p2p-${"cd".repeat(6)}, ${viaToken(SELF)}`]) {
    const res = await app.request("/", { headers: { via } });
    assert.equal(res.status, 200, via);
    assert.match(await res.text(), /<script/);
  }
});

Deno.test("startPeer(): the built-in app's own port sends a browser to the main server, which serves the page whole", async () => {
  await using peer = await startedPeer("127.0.0.5", { appPort: 0 });
  assert.ok(peer.appUrl);
  const direct = await fetch(`${peer.appUrl}/index.html?x=1`, { redirect: "manual" });
  await direct.body?.cancel();
  assert.equal(direct.status, 307);
  assert.equal(direct.headers.get("location"), `${peer.httpUrl}/index.html?x=1`);
  // Followed, it lands on the main server: the page and its control API answer.
  const page = await fetch(`${peer.appUrl}/`);
  assert.equal(page.status, 200);
  assert.equal(page.url, `${peer.httpUrl}/`);
  assert.match(await page.text(), /<script/);
  const api = await fetch(new URL("_p2p/status", page.url));
  await api.body?.cancel();
  assert.equal(api.status, 401, "the control API is there (without the token)");
});
