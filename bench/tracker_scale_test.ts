import assert from "node:assert/strict";
import { figuresOf, Http1 } from "./tracker_scale.ts";

Deno.test("Http1 sends requests on one keep-alive connection and counts every byte both ways", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) =>
      req.method === "POST"
        ? new Response(`got ${(await req.text()).length}`)
        : new Response("no", { status: 404 }),
  );
  const c = await Http1.connect("127.0.0.1", server.addr.port);
  try {
    assert.equal(await c.request("POST", "/x", "hello"), "got 5");
    assert.equal(await c.request("POST", "/x", "a".repeat(100_000)), "got 100000");
    assert.ok(c.sent > 100_005, `${c.sent} bytes sent`);
    assert.ok(c.read > 2 * "got 5".length, `${c.read} bytes read`);
    await assert.rejects(c.request("GET", "/missing"), /answered 404: no/);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("figuresOf() gives the ratios to the first size with their targets, and the cores measured at the largest", () => {
  const figures = figuresOf([
    { size: 100, bytes: 1000, cpu: 0.001, req: 400, ans: 600, cores: 0.5, rate: 500 },
    { size: 10_000, bytes: 1100, cpu: 0.0012, req: 400, ans: 700, cores: 0.6, rate: 499 },
  ]);
  const byName = new Map(figures.map((f) => [f.name, f]));
  const bytes = byName.get("heartbeat bytes at 10,000 vs 100 peers")!;
  assert.equal(bytes.value, 1.1);
  assert.deepEqual(bytes.target, { max: 1.5 });
  assert.ok(bytes.reference);
  const cpu = byName.get("tracker CPU per heartbeat at 10,000 vs 100 peers")!;
  assert.ok(Math.abs(cpu.value! - 1.2) < 1e-9);
  const cores = byName.get("tracker CPU with 10,000 peers heartbeating every 20 s")!;
  assert.equal(cores.value, 0.6);
  assert.deepEqual(cores.target, { max: 1 });
  assert.equal(cores.flag, undefined);
  // A tracker that could not keep the rate is flagged.
  const [slow] = figuresOf([
    { size: 10_000, bytes: 1100, cpu: 0.003, req: 400, ans: 700, cores: 1, rate: 330 },
  ]).filter((f) => f.unit === "cores");
  assert.match(slow.flag ?? "", /fell behind/);
});
