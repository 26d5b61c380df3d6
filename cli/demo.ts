/**
 * `p2p demo`: the main job on embedded defaults, printed step by step. It starts a
 * tracker on 127.0.0.1 with a temporary database, registers two peers, uploads
 * payloads, announces chunk holdings, reads everything back and stops. Only
 * loopback is used.
 *
 * @module
 */
import { startTracker } from "../tracker/server.ts";
import { type RunningPeer, startPeer } from "../peer/server.ts";
import { fromHex } from "../proto/ids.ts";
import { bitfieldFromIndices, hasBit } from "../proto/bitfield.ts";
import { loadIdentity } from "../peer/identity.ts";
import { TrackerClient } from "../peer/tracker_client.ts";
import { sha256Hex } from "../proto/manifest.ts";
import { ActivityPage } from "../proto/activity.ts";
import { StatusAnswer } from "../proto/control.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { P2pError } from "../proto/errors.ts";
import { HolderList, PeerList, UploadResponse } from "../proto/tracker.ts";
import { hostPort } from "../lib/net_addr.ts";
import type { z } from "zod";

/** A step of the demo did not behave as it should. */
export class DemoError extends P2pError {
  constructor(message: string) {
    super("demo_failed", message);
  }
}

/** Runs the demo, printing what happens; throws if any step does not behave. */
export async function runDemo(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-demo-" });
  const tracker = await startTracker({
    host: "127.0.0.1",
    port: 0,
    db: `${dir}/tracker.kv`,
    log: `${dir}/tracker-activity.jsonl`,
    peerTtl: 60,
    maxUpload: 64 * 1024 * 1024,
  });
  const step = (text: string) => console.log(`\n== ${text}`);
  const call = async <S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body?: BodyInit,
    type = "application/json",
  ): Promise<z.infer<S>> => {
    const res = await fetch(tracker.url + path, {
      method,
      body,
      headers: body ? { "content-type": type } : {},
    });
    const data = await res.json();
    if (!res.ok) {
      throw new DemoError(`${method} ${path} answered ${res.status}: ${JSON.stringify(data)}`);
    }
    return schema.parse(data);
  };
  try {
    console.log(`tracker listening on ${tracker.url} (temporary db in ${dir})`);

    step("two peers register; a (host, port) is never stored twice");
    const peers: Record<string, string> = {};
    // Each peer signs its own registration and announcements with its identity key.
    const clients: Record<string, TrackerClient> = {};
    for (const [name, host] of [["alice", "127.0.0.2"], ["bob", "127.0.0.3"]]) {
      const identity = await loadIdentity(`${dir}/${name}-identity`);
      clients[name] = new TrackerClient(tracker.url, { identity });
      const r = await clients[name].register({ host, port: 5801, name });
      peers[name] = r.peer.peerId;
      console.log(
        `${name.padEnd(6)} ${
          hostPort(host, 5801)
        } -> peerId ${r.peer.peerId} (created: ${r.created})`,
      );
    }
    const again = await clients.alice.register({ host: "127.0.0.2", port: 5801, name: "alice" });
    console.log(
      `alice heartbeats -> same peerId: ${
        again.peer.peerId === peers.alice
      } (created: ${again.created})`,
    );
    const list = await call(PeerList, "GET", "/peers");
    console.log(`GET /peers -> ${list.peers.length} live peers`);

    step("uploads get a payloadId derived from SHA-256 of the content");
    const text = "Hello from p2p! The same bytes always give the same payloadId.";
    const up = await call(UploadResponse, "POST", "/payloads?name=hello.txt", text, "text/plain");
    console.log(
      `text  ${up.size} B -> ${up.payloadId} (${up.chunks} chunk, created: ${up.created})`,
    );
    const dup = await call(UploadResponse, "POST", "/payloads", JSON.stringify({ payload: text }));
    console.log(
      `same text as JSON -> same id: ${dup.payloadId === up.payloadId} (created: ${dup.created})`,
    );
    const blob = new Uint8Array(3 * 1024 * 1024 + 12345);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 2654435761) >>> 24;
    const big = await call(
      UploadResponse,
      "POST",
      "/payloads?name=blob.bin",
      blob,
      "application/octet-stream",
    );
    console.log(
      `binary ${big.size} B -> ${big.payloadId} (${big.chunks} chunks of ${big.chunkSize} B)`,
    );

    step("peers announce which chunk positions they hold");
    await clients.alice.announce(
      big.payloadId,
      peers.alice,
      bitfieldFromIndices(big.chunks, [0, 2]),
    );
    await clients.bob.announce(
      big.payloadId,
      peers.bob,
      bitfieldFromIndices(big.chunks, [1, 2, 3]),
    );
    const holders = await call(HolderList, "GET", `/payloads/${big.payloadId}/peers`);
    console.log(`tracker holds every chunk: ${holders.tracker.holds}`);
    for (const h of holders.peers) {
      console.log(
        `  ${h.name?.padEnd(6)} ${
          hostPort(h.host, h.port)
        } holds ${h.count}/${holders.chunks}: ${h.ranges}`,
      );
    }

    step("the bytes come back verified");
    const res = await fetch(`${tracker.url}/payloads/${big.payloadId}/content`);
    const back = new Uint8Array(await res.arrayBuffer());
    const same = (await sha256Hex(back)) === (await sha256Hex(blob));
    console.log(`GET /payloads/{id}/content -> ${back.length} B, identical: ${same}`);
    if (!same) throw new DemoError("content read back differs from the upload");

    step("bad input gets a clear error and the tracker keeps serving");
    for (
      const [method, path, body] of [
        ["POST", "/peers", "{not json"],
        ["POST", "/peers", JSON.stringify({ port: 70000 })],
        ["GET", `/payloads/${"0".repeat(64)}`, undefined],
      ] as const
    ) {
      const r = await fetch(tracker.url + path, {
        method,
        body,
        headers: { "content-type": "application/json" },
      });
      const e = ErrorBody.parse(await r.json());
      console.log(
        `${method} ${path.slice(0, 24)}… -> ${r.status} ${e.error.code}: ${e.error.message}`,
      );
    }

    await peerDemo(tracker.url, dir, step);

    step("every action is in the tracker's activity log");
    const act = ActivityPage.parse(
      await (await fetch(`${tracker.url}/activity?limit=1000`)).json(),
    );
    const counts = new Map<string, number>();
    for (const r of act.records) counts.set(r.type, (counts.get(r.type) ?? 0) + 1);
    console.log([...counts].map(([t, n]) => `${t}: ${n}`).join(", "));
  } finally {
    await tracker.stop();
    await Deno.remove(dir, { recursive: true });
  }
  console.log("\ndemo finished: peers and tracker stopped, temporary files removed");
}

/** Three peers on 127.0.0.2-4: put with replication, a multi-source get, the chunk map, a log read over TCP. */
async function peerDemo(
  trackerUrl: string,
  dir: string,
  step: (text: string) => void,
): Promise<void> {
  step("three peers start on 127.0.0.2, .3 and .4 and find each other");
  const peers: RunningPeer[] = [];
  try {
    for (const [i, name] of ["alice", "bob", "carol"].entries()) {
      const host = `127.0.0.${i + 2}`;
      const seeds = peers.length ? [{ host: "127.0.0.2", port: peers[0].node.chunkPort }] : [];
      peers.push(
        await startPeer({
          host,
          port: 0,
          httpPort: 0,
          pingbackPort: 0,
          appPort: 0,
          dataDir: `${dir}/${name}`,
          name,
          tracker: i === 2 ? trackerUrl : undefined,
          seeds,
          replicas: 1,
        }),
      );
      const n = peers[i].node;
      console.log(
        `${name.padEnd(6)} ${n.identity.peerId} tcp ${hostPort(host, n.chunkPort)} http ${
          peers[i].httpUrl
        }`,
      );
    }
    const [a, b, c] = peers.map((p) => p.node);
    // bob learned of carol through alice (peer exchange) or carol's hello.
    await new Promise((r) => setTimeout(r, 300));

    step("alice puts 6 MiB; each chunk is pushed to one other peer (--replicas 1)");
    const size = 6 * 1024 * 1024 + 777;
    let seed = 7;
    const source = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        const chunk = new Uint8Array(Math.min(65536, size - sent));
        for (let i = 0; i < chunk.length; i++) {
          chunk[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
        }
        sent += chunk.length;
        ctrl.enqueue(chunk);
        if (sent >= size) ctrl.close();
      },
    });
    let sent = 0;
    const put = await a.put(source, "demo.bin");
    console.log(`payloadId ${put.payloadId}: ${put.size} B in ${put.chunks} chunks`);
    for (const [peerId, n] of Object.entries(put.replicas)) {
      console.log(`  pushed ${n} chunks to ${b.identity.peerId === peerId ? "bob" : "carol"}`);
    }

    step("dave joins, knowing only alice, and gets it from several peers at once, verified");
    peers.push(
      await startPeer({
        host: "127.0.0.5",
        port: 0,
        httpPort: 0,
        pingbackPort: 0,
        appPort: 0,
        dataDir: `${dir}/dave`,
        name: "dave",
        seeds: [{ host: "127.0.0.2", port: a.chunkPort }],
        replicas: 1,
      }),
    );
    const d = peers[3].node;
    await new Promise((r) => setTimeout(r, 200));
    const res = await d.get(put.payloadId);
    const names: Record<string, string> = {
      [a.identity.peerId]: "alice",
      [b.identity.peerId]: "bob",
      [c.identity.peerId]: "carol",
      tracker: "tracker",
    };
    console.log(
      `fetched ${res.bytes} B in ${(res.seconds * 1000).toFixed(0)} ms; chunks from ` +
        Object.entries(res.chunksBySource).map(([id, n]) => `${names[id] ?? id.slice(0, 8)} ${n}`)
          .join(", "),
    );

    step("who holds which chunk (p2p where)");
    const w = await d.where(put.payloadId);
    for (const r of w.rows) {
      const bits = fromHex(r.have);
      let map = "";
      for (let i = 0; i < w.chunks; i++) map += hasBit(bits, i) ? "█" : "·";
      console.log(`  ${(r.name ?? r.peerId.slice(0, 8)).padEnd(8)} ${map} ${r.count}/${w.chunks}`);
    }

    step("alice reads bob's activity log over TCP (p2p log --peer)");
    for (const r of (await a.remoteLog(b.identity.peerId, undefined, 5))) {
      console.log(
        `  #${r.id} ${r.type} ${
          r.payloadId ? "payload " + String(r.payloadId).slice(0, 12) + "…" : ""
        }`,
      );
    }

    step("alice asks the peers she knows on their pingback ports; answers signed (p2p discover)");
    const found = await a.discover("127.0.0.2-127.0.0.5");
    for (const f of found.found) {
      console.log(`  ${f.name.padEnd(6)} ${f.host} verified, ${f.rttMs} ms (${f.change})`);
    }

    step("HTTP over the peer network: alice's main server hands a request to dave's app by id");
    const viaAlice = `${peers[0].httpUrl}/_p2p/peers/${d.identity.peerId}/`;
    const page = await fetch(viaAlice);
    const title = /<title>([^<]*)<\/title>/i.exec(await page.text())?.[1] ?? "?";
    console.log(`  GET ${viaAlice} -> ${page.status} "${title}" (dave's web app)`);
    console.log(`    sandboxed: ${page.headers.get("content-security-policy")}`);
    // Dave's control API is his owner's: through alice it answers 401, even with
    // alice's token (which alice never passes on).
    const aliceToken = (await Deno.readTextFile(peers[0].tokenFile)).trim();
    const refused = await fetch(`${viaAlice}_p2p/status`, {
      headers: { authorization: `Bearer ${aliceToken}` },
    });
    const code = (await refused.json()).error?.code;
    console.log(`  GET …/_p2p/status -> ${refused.status} ${code} (dave's control API is dave's)`);
    const daveToken = (await Deno.readTextFile(peers[3].tokenFile)).trim();
    const status = StatusAnswer.parse(
      await (await fetch(`${peers[3].httpUrl}/_p2p/status`, {
        headers: { authorization: `Bearer ${daveToken}` },
      })).json(),
    );
    console.log(`  dave, with his token: ${status.name}, ${status.payloads} payload(s)`);
  } finally {
    for (const p of peers) await p.stop();
  }
}
