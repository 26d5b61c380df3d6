import assert from "node:assert/strict";
import { LanScan } from "./lan_scan.ts";
import type { ScanOptions, ScanResult } from "./discovery.ts";
import { fakeLog, memoryTable, peerIdOf } from "./_fakes.ts";
import { InvalidInputError } from "../proto/errors.ts";
import type { PingbackAnswer } from "../proto/discovery.ts";

const SELF = peerIdOf("self");

function answer(name: string, chunk: number): PingbackAnswer {
  return {
    service: "p2p",
    protocol: 1,
    version: "0.1.0",
    peerId: peerIdOf(name),
    name,
    publicKey: "A".repeat(43),
    ports: { pingback: 5800, chunk },
  };
}

Deno.test("LanScan.discover() records new, moved and silent peers and reports them", async () => {
  await using table = await memoryTable(SELF);
  await table.upsert(
    { peerId: peerIdOf("moved"), host: "127.0.0.7", ports: { chunk: 1, pingback: 5800 } },
    "seed",
  );
  await table.upsert(
    { peerId: peerIdOf("quiet"), host: "127.0.0.8", ports: { chunk: 1, pingback: 5800 } },
    "seed",
  );
  const log = fakeLog();
  const asked: ScanOptions[] = [];
  const met: string[][] = [];
  const scan = new LanScan({
    self: SELF,
    table,
    log,
    meet: (p) => (met.push([p.peerId, p.host]), Promise.resolve()),
    pingbackPort: 6000,
    signal: new AbortController().signal,
    scan: (opts): Promise<ScanResult> => {
      asked.push(opts);
      return Promise.resolve({
        devices: 3,
        probed: 5,
        found: [
          { ok: true, host: "127.0.0.5", answer: answer("new", 5801), rttMs: 2 },
          { ok: true, host: "127.0.0.6", answer: answer("moved", 5801), rttMs: 3 },
        ],
        rejected: [{ address: "127.0.0.9:6000", reason: "no answer" }],
        silent: [{ peerId: peerIdOf("quiet"), address: "127.0.0.8:5800", reason: "refused" }],
      });
    },
  });
  const report = await scan.discover("127.0.0.0/29");
  assert.deepEqual(report.ranges, ["127.0.0.1-127.0.0.6"]);
  assert.equal(asked[0].pingbackPort, 6000);
  assert.equal(asked[0].self, SELF);
  assert.deepEqual(
    asked[0].known.map((k) => k.peerId).sort(),
    [peerIdOf("moved"), peerIdOf("quiet")].sort(),
  );
  assert.deepEqual(report.found.map((f) => [f.name, f.change]), [["new", "new"], [
    "moved",
    "moved",
  ]]);
  assert.equal(report.stale.length, 1);
  assert.equal(table.get(peerIdOf("new"))?.host, "127.0.0.5");
  assert.ok(table.get(peerIdOf("new"))?.sources.includes("scan"));
  // A scan only teaches addresses: the moved peer stays at its proven address until a
  // handshake at the new one proves it there, and the new one is not proven yet.
  assert.equal(table.getProven(peerIdOf("moved"))?.host, "127.0.0.7");
  assert.deepEqual(
    table.unproven().map((p) => [p.peerId, p.host]).sort(),
    [[peerIdOf("moved"), "127.0.0.6"], [peerIdOf("new"), "127.0.0.5"]].sort(),
  );
  assert.equal(table.getProven(peerIdOf("new")), undefined);
  // Each peer found at an address not proven yet is met there at once.
  assert.deepEqual(
    met.sort(),
    [[peerIdOf("moved"), "127.0.0.6"], [peerIdOf("new"), "127.0.0.5"]].sort(),
  );
  assert.equal(table.get(peerIdOf("quiet"))?.failures, 1);
  assert.deepEqual(
    log.records.map((r) => r.type),
    [
      "discover.start",
      "discover.peer",
      "discover.peer",
      "discover.reject",
      "discover.stale",
      "discover.done",
    ],
  );
});

Deno.test("LanScan.discover() without a range scans the interfaces' subnets, and refuses when there are none", async () => {
  await using table = await memoryTable(SELF);
  const ranges: string[][] = [];
  const lan = (interfaces: Deno.NetworkInterfaceInfo[]) =>
    new LanScan({
      self: SELF,
      table,
      log: fakeLog(),
      signal: new AbortController().signal,
      interfaces: () => interfaces,
      scan: (opts) => {
        ranges.push(opts.ranges.map((r) => `${r.first}-${r.last}`));
        return Promise.resolve({ devices: 0, probed: 0, found: [], rejected: [], silent: [] });
      },
    });
  const loopback: Deno.NetworkInterfaceInfo = {
    family: "IPv4",
    name: "lo",
    address: "127.0.0.1",
    netmask: "255.0.0.0",
    scopeid: null,
    cidr: "127.0.0.1/8",
    mac: "00:00:00:00:00:00",
  };
  await assert.rejects(
    lan([loopback]).discover(),
    (err) => err instanceof InvalidInputError && err.code === "nothing_to_scan",
  );
  const report = await lan([{
    ...loopback,
    name: "eth0",
    address: "10.9.8.7",
    cidr: "10.9.8.7/30",
  }])
    .discover();
  assert.deepEqual(report.ranges, ["10.9.8.5-10.9.8.6"]);
  assert.equal(ranges.length, 1);
});
