/**
 * LAN discovery on a real virtual LAN: network namespaces joined by a bridge (see
 * `_netns.ts`), one p2p peer per host namespace on the default ports, plus two
 * devices that answer on the pingback port without being honest peers. Every
 * command runs inside the namespaces; nothing is sent anywhere else.
 */
import assert from "node:assert/strict";
import { createLan, type Lan, type LanHost, netnsUnavailable } from "./_netns.ts";
import { p2pClient, type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { REPO_ROOT, tempDir } from "./_tracker_process.ts";
import type { DiscoveryReport } from "../proto/discovery.ts";
import { formatNetworkKey, newNetworkKey } from "../proto/network_key.ts";

const unavailable = await netnsUnavailable();
if (unavailable) console.log(`LAN discovery tests skipped: ${unavailable}`);

/** The control token of the peer in each host namespace, by namespace name. */
const tokens = new Map<string, string>();

/** Starts a peer in `host`'s namespace on the default ports (5800, 5801, 5805). */
async function lanPeer(
  host: LanHost,
  dataDir: string,
  extra: string[] = [],
): Promise<PeerProcess> {
  const peer = await spawnPeer({
    dataDir,
    host: host.ip,
    name: host.name.slice(-2),
    netns: host.name,
    args: [
      ...["--port", "5801", "--http-port", "5805", "--pingback-port", "5800", "--app-port", "5810"],
      ...extra,
    ],
  });
  tokens.set(host.name, peer.token);
  return peer;
}

/** Runs a client command inside `host`'s namespace against the peer there; parses `--json`. */
async function client<T>(host: LanHost, args: string[]): Promise<T> {
  const r = await p2pClient(
    [...args, "--json", "--node", `http://${host.ip}:5805`, "--token", tokens.get(host.name)!],
    undefined,
    30_000,
    host.name,
  );
  assert.equal(r.code, 0, `p2p ${args.join(" ")} in ${host.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface PeerRow {
  peerId: string;
  host: string;
  sources: string[];
  rttMs?: number;
  stale: boolean;
  failures: number;
  /** ISO 8601, as every time in the CLI's JSON. */
  lastSeen: string;
}

/** A fake device (`tests/_fake_pingback.ts`) on `host`'s pingback port. */
async function fakeDevice(lan: Lan, host: LanHost, mode: string): Promise<void> {
  const child = lan.spawn(host, [
    Deno.execPath(),
    "run",
    "-A",
    "tests/_fake_pingback.ts",
    mode,
    host.ip,
    "5800",
  ], { cwd: REPO_ROOT });
  const ready = Promise.withResolvers<void>();
  (async () => {
    let out = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += text;
      if (out.includes("listening")) ready.resolve();
    }
    ready.reject(new Error(`fake device '${mode}' in ${host.name} ended before it listened`));
  })();
  child.stderr.pipeTo(new WritableStream()).catch(() => undefined);
  await ready.promise;
}

function rejectedReason(report: DiscoveryReport, address: string): string {
  return report.rejected.find((r) => r.address === address)?.reason ?? "";
}

/** Why a scan did not count an address: as a device, or as a known peer now stale. */
function reasonFor(report: DiscoveryReport, address: string): string {
  return [...report.rejected, ...report.stale].find((r) => r.address === address)?.reason ?? "";
}

/** Polls `check` (a query of a peer's state) until it holds, at most `ms`. */
async function eventually<T>(what: string, ms: number, check: () => Promise<T | undefined>) {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

Deno.test({
  name: "LAN discovery on a virtual LAN of network namespaces",
  ignore: unavailable !== undefined,
  // Namespaces, children and their pipes are torn down by the disposers below.
  async fn(t) {
    // Make sure the npm packages main.ts needs are cached: the namespaces have no route out.
    const cache = await new Deno.Command(Deno.execPath(), {
      args: ["cache", "main.ts", "tests/_fake_pingback.ts"],
      cwd: REPO_ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(cache.success, new TextDecoder().decode(cache.stderr));

    await using dirs = await tempDir("p2p-lan-");
    await using lan = await createLan({ hosts: 9 });
    const [h1, h2, h3, h4, h5, h6, h7, h8, h9] = lan.hosts;
    const peers: PeerProcess[] = [];
    await using _stopPeers = {
      [Symbol.asyncDispose]: async () => {
        await Promise.all(peers.map((p) => p.kill()));
      },
    };
    const started = await Promise.all(
      [h1, h2, h3, h4, h5].map((h) => lanPeer(h, `${dirs.path}/${h.name.slice(-2)}`)),
    );
    peers.push(...started);
    const [p1, p2, p3, p4, p5] = started;
    await fakeDevice(lan, h6, "other-json");
    await fakeDevice(lan, h7, "bad-signature");
    const others = [p2, p3, p4, p5];
    let ninth: PeerProcess | undefined;

    await t.step(
      "p2p discover finds every other peer of the /28 and rejects the fakes",
      async () => {
        const t0 = performance.now();
        const report = await client<DiscoveryReport>(h1, ["discover", lan.cidr]);
        const wall = (performance.now() - t0) / 1000;
        assert.deepEqual(report.ranges, ["10.77.0.1-10.77.0.14"]);
        assert.deepEqual(
          report.found.map((f) => f.peerId).sort(),
          others.map((p) => p.peerId).sort(),
        );
        for (const f of report.found) {
          const p = others.find((o) => o.peerId === f.peerId)!;
          assert.equal(f.host, p.host);
          assert.deepEqual([f.ports.pingback, f.ports.chunk, f.ports.http], [5800, 5801, 5805]);
          assert.equal(f.change, "new");
        }
        // local-devices saw every other host, since each answers ARP: 4 peers, 2 fakes
        // and h8 and h9, where nothing listens yet.
        assert.equal(report.devices, 8);
        assert.match(rejectedReason(report, `${h8.ip}:5800`), /refused/);
        assert.match(rejectedReason(report, `${h9.ip}:5800`), /refused/);
        const rejected = new Map(report.rejected.map((r) => [r.address, r.reason]));
        assert.match(rejected.get(`${h6.ip}:5800`) ?? "", /not a p2p pingback answer/);
        assert.match(
          rejected.get(`${h7.ip}:5800`) ?? "",
          /signature of peer [0-9a-f]{40} does not verify/,
        );
        assert.equal(report.stale.length, 0);
        console.log(
          `discovery of ${lan.cidr}: ${report.found.length} peers identified, ` +
            `${report.rejected.length} devices rejected, among ${report.devices} devices, in ` +
            `${report.seconds.toFixed(2)} s in the peer (${wall.toFixed(2)} s for the whole ` +
            `\`p2p discover\` command, Deno start included)`,
        );
      },
    );

    await t.step("p2p peers lists them as found by scan, with a round-trip time", async () => {
      const { length } = others;
      const rows = await client<PeerRow[]>(h1, ["peers"]);
      assert.equal(rows.length, length);
      for (const r of rows) {
        assert.ok(r.sources.includes("scan"), JSON.stringify(r));
        assert.equal(typeof r.rttMs, "number");
        assert.equal(r.stale, false);
      }
    });

    await t.step("a peer that leaves is marked stale by the next scan", async () => {
      await p5.stop("SIGTERM");
      const report = await client<DiscoveryReport>(h1, ["discover", lan.cidr]);
      assert.deepEqual(report.stale.map((s) => s.peerId), [p5.peerId]);
      assert.equal(report.found.length, 3);
      assert.ok(report.found.every((f) => f.change === "known"));
      const rows = await client<PeerRow[]>(h1, ["peers"]);
      const gone = rows.find((r) => r.peerId === p5.peerId)!;
      assert.equal(gone.stale, true);
      assert.ok(gone.failures >= 1);
      assert.ok(rows.filter((r) => r.peerId !== p5.peerId).every((r) => !r.stale));
    });

    await t.step(
      "peer exchange spreads the list from one seed (without the stale peer)",
      async () => {
        const p8 = await lanPeer(h8, `${dirs.path}/h8`, ["--peer", `${h1.ip}:5801`]);
        peers.push(p8);
        const want = [p1, p2, p3, p4].map((p) => p.peerId).sort();
        const rows = await eventually("h8 to learn the LAN from its seed", 15_000, async () => {
          const rows = await client<PeerRow[]>(h8, ["peers"]);
          return want.every((id) => rows.some((r) => r.peerId === id)) ? rows : undefined;
        });
        for (const id of [p2, p3, p4].map((p) => p.peerId)) {
          const r = rows.find((x) => x.peerId === id)!;
          assert.ok(r.sources.includes("exchange"), JSON.stringify(r));
        }
        assert.equal(rows.some((r) => r.peerId === p5.peerId), false);
      },
    );

    await t.step("a peer that answers from a new address updates its entry", async () => {
      await p4.stop("SIGTERM");
      const moved = "10.77.0.12";
      for (
        const args of [
          ["addr", "del", `${h4.ip}/28`, "dev", "eth0"],
          ["addr", "add", `${moved}/28`, "dev", "eth0"],
        ]
      ) {
        const r = await new Deno.Command("ip", { args: ["-n", h4.name, ...args] }).output();
        assert.ok(r.success, new TextDecoder().decode(r.stderr));
      }
      const again = await lanPeer({ ...h4, ip: moved }, `${dirs.path}/h4`);
      peers.push(again);
      assert.equal(again.peerId, p4.peerId);
      const report = await client<DiscoveryReport>(h1, ["discover", lan.cidr]);
      const f = report.found.find((x) => x.peerId === p4.peerId);
      assert.ok(f, JSON.stringify(report));
      assert.equal(f.host, moved);
      // "known" when h1 learned the move first: the restarted peer greets it, and its
      // newer signed record, proven by a handshake at the new address, moved the entry.
      assert.ok(["moved", "known"].includes(f.change), f.change);
      // The old address is no reason to call it stale.
      assert.equal(report.stale.some((s) => s.peerId === p4.peerId), false);
      const rows = await client<PeerRow[]>(h1, ["peers"]);
      assert.equal(rows.find((r) => r.peerId === p4.peerId)?.host, moved);
    });

    await t.step("p2p peer --scan finds the LAN at start by itself", async () => {
      const p9 = await lanPeer(h9, `${dirs.path}/h9`, [
        "--scan",
        lan.cidr,
        "--scan-interval",
        "600",
      ]);
      peers.push(p9);
      ninth = p9;
      const want = [p1, p2, p3, p4].map((p) => p.peerId);
      const rows = await eventually("h9's scan at start", 15_000, async () => {
        const rows = await client<PeerRow[]>(h9, ["peers"]);
        return want.every((id) => rows.some((r) => r.peerId === id && r.sources.includes("scan")))
          ? rows
          : undefined;
      });
      assert.equal(rows.find((r) => r.peerId === p4.peerId)?.host, "10.77.0.12");
    });

    await t.step("with a network key, a peer tells who it is only to a member", async () => {
      const keyFile = `${dirs.path}/net.key`;
      await Deno.writeTextFile(keyFile, formatNetworkKey(newNetworkKey()) + "\n", { mode: 0o600 });
      const keyed = ["--network-key-file", keyFile];
      await p3.stop("SIGTERM");
      peers.push(await lanPeer(h3, `${dirs.path}/h3`, keyed));
      // An open peer's scan: h3 only says a protected network is there.
      const open = await client<DiscoveryReport>(h2, ["discover", lan.cidr]);
      assert.equal(open.found.some((f) => f.peerId === p3.peerId), false);
      assert.match(reasonFor(open, `${h3.ip}:5800`), /a protected p2p network is here/);
      // A member's scan: h3 is found, and the open peers are not members.
      await ninth!.stop("SIGTERM");
      peers.push(await lanPeer(h9, `${dirs.path}/h9`, keyed));
      const member = await client<DiscoveryReport>(h9, ["discover", lan.cidr]);
      assert.deepEqual(member.found.map((f) => f.peerId), [p3.peerId]);
      assert.match(reasonFor(member, `${h2.ip}:5800`), /not a member of this network/);
    });

    await t.step("a restarted peer greets the peers it knew, without scanning", async () => {
      await p1.stop("SIGTERM");
      const restarted = Date.now();
      const again = await lanPeer(h1, `${dirs.path}/h1`);
      peers.push(again);
      const rows = await eventually("h1 to reconnect to a known peer", 15_000, async () => {
        const rows = await client<PeerRow[]>(h1, ["peers"]);
        return rows.some((r) => r.peerId === p2.peerId && Date.parse(r.lastSeen) >= restarted)
          ? rows
          : undefined;
      });
      assert.ok(rows.length >= 4);
      const log = await p2pClient(
        [
          ...["log", "--type", "discover", "--json", "--node", `http://${h1.ip}:5805`],
          ...["--token", tokens.get(h1.name)!],
        ],
        undefined,
        30_000,
        h1.name,
      );
      assert.equal(log.code, 0, log.stderr);
      // The scans asked for before the restart are in the log; none ran since.
      const scans = log.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l))
        .filter((r) => r.type === "discover.start");
      assert.equal(scans.length, 3);
      assert.ok(scans.every((r) => Date.parse(r.ts) < restarted), JSON.stringify(scans));
    });
  },
});
