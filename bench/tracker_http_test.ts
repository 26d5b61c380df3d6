import assert from "node:assert/strict";
import { heartbeatScript } from "./tracker_http.ts";
import { testIdentity } from "../tracker/_test_setup.ts";
import { RegisterPeerRequest } from "../proto/tracker.ts";
import { verifyRegistration } from "../proto/tracker_auth.ts";

Deno.test("heartbeatScript() posts signed heartbeats of each (host, port) pair, signed in order", async () => {
  const ids = [await testIdentity(), await testIdentity(), await testIdentity()];
  const lua = await heartbeatScript(ids, 2, 2, 1_000);
  const bodies = [...lua.matchAll(/\[\[\n([^\]]*)\]\]/g)].map((m) =>
    RegisterPeerRequest.parse(JSON.parse(m[1]))
  );
  assert.deepEqual(bodies.map((b) => [b.port, b.signedAt]), [
    [42_000, 1_000],
    [42_000, 1_001],
    [42_001, 1_000],
    [42_001, 1_001],
    [42_002, 1_000],
    [42_002, 1_001],
  ]);
  assert.deepEqual(bodies.map((b) => b.peerId), ids.flatMap((id) => [id.peerId, id.peerId]));
  for (const b of bodies) assert.ok(await verifyRegistration(b));
  assert.ok(bodies.every((b) => b.host?.startsWith("127.")));
  assert.match(lua, /wrk\.headers\["Content-Type"\] = "application\/json"/);
  assert.match(lua, /wrk\.method = "POST"/);
});
