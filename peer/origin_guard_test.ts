import assert from "node:assert/strict";
import { hostProblem, originProblem, ownHosts, requestOrigin } from "./origin_guard.ts";

const machine = (addresses: string[]) => ({ hostname: () => "Box", addresses: () => addresses });

Deno.test("ownHosts() names the listen address, loopback names, the host name, and interfaces only when listening everywhere", () => {
  const lan = machine(["127.0.0.1", "198.51.100.20", "fe80::1%eth0"]);
  assert.deepEqual(
    [...ownHosts("127.0.0.2", 5805, lan)].sort(),
    ["127.0.0.2:5805", "box.local:5805", "box:5805"],
  );
  assert.deepEqual(
    [...ownHosts("0.0.0.0", 5805, lan)].sort(),
    [
      "0.0.0.0:5805",
      "127.0.0.1:5805",
      "198.51.100.20:5805",
      "[::1]:5805",
      "[fe80::1]:5805",
      "box.local:5805",
      "box:5805",
      "localhost:5805",
    ],
  );
  const on80 = ownHosts("127.0.0.1", 80, lan);
  assert.ok(on80.has("localhost") && on80.has("127.0.0.1:80") && on80.has("[::1]"));
});

Deno.test("hostProblem() accepts only the own names, in any case", () => {
  const own = ownHosts("127.0.0.1", 5805, machine([]));
  assert.equal(hostProblem("LocalHost:5805", own), undefined);
  assert.match(hostProblem("evil.example:5805", own)!, /not a name of this peer/);
  assert.match(hostProblem("127.0.0.1:5806", own)!, /not a name/);
  assert.match(hostProblem(undefined, own)!, /no Host/);
});

Deno.test("originProblem() refuses other origins and other sites, and lets clients without Origin through", () => {
  const own = "http://127.0.0.1:5805";
  const h = (init: Record<string, string>) => new Headers(init);
  assert.equal(originProblem(h({}), own), undefined);
  assert.equal(originProblem(h({ origin: own }), own), undefined);
  assert.equal(originProblem(h({ "sec-fetch-site": "none" }), own), undefined);
  assert.match(originProblem(h({ origin: "http://127.0.0.3:80" }), own)!, /may not use/);
  assert.match(originProblem(h({ origin: "null" }), own)!, /may not use/);
  assert.match(originProblem(h({ "sec-fetch-site": "same-site" }), own)!, /another site/);
  assert.equal(
    requestOrigin(
      h({ host: "127.0.0.1:9", "x-forwarded-host": "a:1", "x-forwarded-proto": "https" }),
    ),
    "https://a:1",
  );
  assert.equal(requestOrigin(h({ host: "127.0.0.1:9" })), "http://127.0.0.1:9");
});
