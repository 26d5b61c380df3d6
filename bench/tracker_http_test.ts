import assert from "node:assert/strict";
import { heartbeatScript } from "./tracker_http.ts";

Deno.test("heartbeatScript() posts one JSON body per (host, port) pair", () => {
  const lua = heartbeatScript(3, 2);
  const bodies = [...lua.matchAll(/\[\[\n(.*)\]\]/g)].map((m) => JSON.parse(m[1]));
  assert.deepEqual(bodies.map((b) => b.port), [42_000, 42_001, 42_002]);
  assert.ok(bodies.every((b) => b.host.startsWith("127.")));
  assert.match(lua, /wrk\.headers\["Content-Type"\] = "application\/json"/);
  assert.match(lua, /wrk\.method = "POST"/);
});
