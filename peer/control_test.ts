import assert from "node:assert/strict";
import type { z } from "zod";
import { type ControlAppOptions, type ControlNode, createControlApp } from "./control.ts";
import {
  COMPLETE,
  COMPLETE_BYTES,
  fakeNode,
  OWNER_TOKEN,
  ownerAuth,
  PARTIAL,
  PEER_B,
} from "./_control_fake.ts";
import {
  ActivityPage,
  ActivityRecord,
  CancelAnswer,
  DiscoveryReport,
  DownloadEvent,
  NetworkPayloadsAnswer,
  PayloadInfo,
  PayloadsAnswer,
  PeersAnswer,
  PutEvent,
  RemoveAnswer,
  StatusAnswer,
  WhereAnswer,
} from "../proto/control.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { NotFoundError, P2pError, PeerTimeoutError } from "../proto/errors.ts";
import { jsonLines } from "../proto/lines.ts";

/** A control app whose `request()` carries the owner's token unless told otherwise. */
type OwnerApp = { request(path: string, init?: RequestInit): Promise<Response> };

/** `createControlApp()` with `ownerAuth()`, every request sent with `OWNER_TOKEN`. */
function ownerApp(node: ControlNode, opts: Omit<ControlAppOptions, "auth"> = {}): OwnerApp {
  const app = createControlApp(node, { auth: ownerAuth(), ...opts });
  return {
    request: async (path, init = {}) => {
      const headers = new Headers(init.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${OWNER_TOKEN}`);
      return await app.request(path, { ...init, headers });
    },
  };
}

/** The JSON answer to `path`, checked to be 200 and to match `schema` exactly. */
async function answer<T extends z.ZodType>(
  app: OwnerApp,
  path: string,
  schema: T,
  init?: RequestInit,
): Promise<z.infer<T>> {
  const res = await app.request(path, init);
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
  const raw: unknown = await res.json();
  const parsed = schema.parse(raw);
  // Parsing drops fields the schema does not name: none may be dropped.
  assert.deepEqual(parsed, raw, `${path}: every field is in the schema`);
  return parsed;
}

/** The error answer to `path`: its status and body, checked against `ErrorBody`. */
async function failure(
  app: OwnerApp,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; code: string; message: string }> {
  const res = await app.request(path, init);
  const body = ErrorBody.parse(await res.json());
  return { status: res.status, code: body.error.code, message: body.error.message };
}

/** Every NDJSON line of an answer, parsed with `schema`. */
async function lines<T extends z.ZodType>(res: Response, schema: T): Promise<z.infer<T>[]> {
  assert.equal(res.headers.get("content-type"), "application/x-ndjson");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("x-accel-buffering"), "no");
  const out: z.infer<T>[] = [];
  for await (const line of jsonLines(res.body!)) out.push(schema.parse(line));
  return out;
}

Deno.test("createControlApp() answers status, peers, payloads, network payloads, where and discover as their schemas say", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const status = await answer(app, "/_p2p/status", StatusAnswer);
  assert.equal(status.name, "alice");
  const { peers } = await answer(app, "/_p2p/peers", PeersAnswer);
  assert.deepEqual(peers.map((p) => [p.peerId, p.stale]), [[PEER_B, true]]);
  const { payloads } = await answer(app, "/_p2p/payloads", PayloadsAnswer);
  assert.deepEqual(payloads.map((p) => p.payloadId), [COMPLETE, PARTIAL]);
  const net = await answer(app, "/_p2p/network/payloads", NetworkPayloadsAnswer);
  assert.equal(net.payloads[0].holders.length, 2);
  const where = await answer(app, `/_p2p/payloads/${COMPLETE}/where`, WhereAnswer);
  assert.deepEqual(where.rows.map((r) => r.count), [1, 3]);
  const report = await answer(app, "/_p2p/discover", DiscoveryReport, {
    method: "POST",
    body: JSON.stringify({ range: "127.0.0.2-3" }),
  });
  assert.deepEqual(report.ranges, ["127.0.0.2-3"]);
  const empty = await answer(app, "/_p2p/discover", DiscoveryReport, { method: "POST" });
  assert.equal(empty.found.length, 1);
});

Deno.test("createControlApp() answers bad input with 400, 404, 409 and 413 error bodies", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const post = (body: string): RequestInit => ({ method: "POST", body });
  const cases: [string, RequestInit | undefined, number, string, RegExp][] = [
    ["/_p2p/payloads/abc/content", undefined, 400, "invalid_id", /'abc' is too short/],
    ["/_p2p/payloads/xyz/content", undefined, 404, "unknown_payload", /No payload 'xyz'/],
    [`/_p2p/payloads/${"0".repeat(64)}/content`, undefined, 404, "unknown_payload", /get it/],
    [`/_p2p/payloads/${PARTIAL}/content`, undefined, 409, "incomplete", /1 of 3 chunks/],
    ["/_p2p/discover", post("{"), 400, "invalid_json", /not JSON/],
    ["/_p2p/discover", post('{"range": 5}'), 400, "invalid_body", /range/],
    ["/_p2p/discover", post('{"range": "lan"}'), 400, "invalid_range", /Invalid range 'lan'/],
    ["/_p2p/discover?progress=yes", post("{}"), 400, "invalid_query", /progress/],
    ["/_p2p/discover", post(" ".repeat(5000)), 413, "too_large", /4096 bytes/],
    ["/_p2p/events?type=", undefined, 400, "invalid_query", /type/],
    [`/_p2p/payloads?name=${"n".repeat(256)}`, post("x"), 400, "invalid_query", /255/],
    ["/_p2p/payloads", { method: "POST" }, 400, "empty_payload", /empty/],
    ["/_p2p/log?limit=0", undefined, 400, "invalid_query", /limit/],
    ["/_p2p/log?peer=xyz", undefined, 404, "unknown_peer", /No peer 'xyz'/],
    ["/_p2p/nothing", undefined, 404, "not_found", /GET \/_p2p\/nothing/],
  ];
  for (const [path, init, status, code, message] of cases) {
    const e = await failure(app, path, init);
    assert.deepEqual([e.status, e.code], [status, code], `${path}: ${e.message}`);
    assert.match(e.message, message, path);
  }
});

Deno.test("createControlApp() maps where() and remoteLog() failures by their class, and logs unexpected ones", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const where = `/_p2p/payloads/${COMPLETE}/where`;
  node.whereError = new NotFoundError("unknown_payload", "Cannot find the manifest of 'c…'");
  assert.deepEqual([(await failure(app, where)).status, (await failure(app, where)).code], [
    404,
    "unknown_payload",
  ]);
  node.whereError = new PeerTimeoutError("The tracker did not answer");
  assert.deepEqual(await failure(app, where), {
    status: 504,
    code: "timeout",
    message: "The tracker did not answer",
  });
  const log = `/_p2p/log?peer=${PEER_B}`;
  node.remoteLogError = new NotFoundError("unknown_peer", `Unknown peer '${PEER_B}'`);
  assert.deepEqual([(await failure(app, log)).status, (await failure(app, log)).code], [
    404,
    "unknown_peer",
  ]);
  node.remoteLogError = new Error("connect ECONNREFUSED");
  assert.deepEqual([(await failure(app, log)).status, (await failure(app, log)).code], [
    502,
    "peer_unreachable",
  ]);
  node.remoteLogError = new P2pError("unexpected_answer", "Expected LOG, got ERROR");
  assert.deepEqual([(await failure(app, log)).status, (await failure(app, log)).code], [
    502,
    "unexpected_answer",
  ]);
  node.networkError = new Error("disk on fire");
  const e = await failure(app, "/_p2p/network/payloads");
  assert.deepEqual([e.status, e.code, e.message], [503, "unavailable", "disk on fire"]);
  const logged = node.log.query({ type: "error" }).records.at(-1);
  assert.equal(logged?.during, "GET /_p2p/network/payloads");
});

Deno.test("GET /_p2p/log answers pages, another peer's valid records of the type, and follows with NDJSON", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  node.log.record("peer.start", {});
  node.log.record("conn.open", {});
  const page = await answer(app, "/_p2p/log?type=conn", ActivityPage);
  assert.deepEqual(page.records.map((r) => r.type), ["conn.open"]);
  const remote = await answer(app, `/_p2p/log?peer=${PEER_B}&type=peer`, ActivityPage);
  assert.deepEqual(remote, {
    records: [{ id: 1, ts: "2026-01-01T00:00:00.000Z", type: "peer.start", peerId: PEER_B }],
    next: 1,
  });
  const res = await app.request("/_p2p/log?follow=1&type=payload");
  node.log.record("conn.close", {});
  node.log.record("payload.put", { payloadId: COMPLETE });
  setTimeout(() => node.stop(), 50);
  const followed = await lines(res, ActivityRecord);
  assert.deepEqual(followed.map((r) => r.type), ["payload.put"]);
});

Deno.test("POST /_p2p/payloads streams stored, replicated and done events; a failure ends with an error event", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const res = await app.request("/_p2p/payloads?name=a.txt", { method: "POST", body: "hello" });
  const events = await lines(res, PutEvent);
  assert.deepEqual(events.map((e) => e.type), ["stored", "replicated", "done"]);
  const done = events[2];
  assert.ok(done.type === "done" && done.size === 5 && done.replicas[PEER_B] === 1);
  const empty = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  const failed = await lines(
    await app.request("/_p2p/payloads", { method: "POST", body: empty }),
    PutEvent,
  );
  assert.deepEqual(failed, [{
    type: "error",
    message: "Payload is empty",
    name: "P2pError",
    code: "empty_payload",
  }]);
});

Deno.test("POST /_p2p/downloads/:id streams progress, one chunk event per position with its source, then done", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const events = await lines(
    await app.request(`/_p2p/downloads/${PARTIAL}`, { method: "POST" }),
    DownloadEvent,
  );
  assert.deepEqual(events.map((e) => e.type), ["progress", "chunk", "chunk", "progress", "done"]);
  assert.deepEqual(
    events.flatMap((e) => e.type === "chunk" ? [[e.index, e.source]] : []),
    [[1, PEER_B], [2, PEER_B]],
  );
  const unknown = await lines(
    await app.request(`/_p2p/downloads/${"0".repeat(64)}`, { method: "POST" }),
    DownloadEvent,
  );
  assert.deepEqual(unknown.map((e) => e.type === "error" && e.code), ["unknown_payload"]);
});

Deno.test("GET /_p2p/payloads/:id/content streams the bytes; download=1 names the file, UTF-8 too", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const plain = await app.request(`/_p2p/payloads/${COMPLETE}/content`);
  assert.equal(plain.headers.get("content-disposition"), null);
  // Shared bytes on the owner's origin are never sniffed into a page, nor run as one.
  assert.equal(plain.headers.get("x-content-type-options"), "nosniff");
  assert.equal(plain.headers.get("content-security-policy"), "sandbox");
  assert.equal(plain.headers.get("content-length"), "5");
  assert.deepEqual(new Uint8Array(await plain.arrayBuffer()), COMPLETE_BYTES);
  const file = await app.request(`/_p2p/payloads/${COMPLETE}/content?download=1`);
  await file.body?.cancel();
  assert.equal(
    file.headers.get("content-disposition"),
    `attachment; filename="two words ?.txt"; filename*=UTF-8''two%20words%20%C3%A9.txt`,
  );
});

/** Reads server-sent events until `count` have come: their raw blocks. */
async function sseBlocks(res: Response, count: number): Promise<string[]> {
  const blocks: string[] = [];
  let buf = "";
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (blocks.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
        blocks.push(buf.slice(0, end));
        buf = buf.slice(end + 2);
      }
    }
  } finally {
    await reader.cancel();
  }
  return blocks;
}

Deno.test("GET /_p2p/events streams activity as server-sent events, resumes after Last-Event-ID, and ends when the peer stops", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const first = node.log.record("payload.put", { payloadId: COMPLETE });
  node.log.record("conn.open", {});
  const res = await app.request("/_p2p/events?type=payload");
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("x-accel-buffering"), "no");
  const [block] = await sseBlocks(res, 1);
  const fields = block.split("\n").sort();
  assert.deepEqual(fields, [
    `data: ${JSON.stringify(first)}`,
    "event: activity",
    `id: ${first.id}`,
  ]);

  const resumed = await app.request("/_p2p/events", {
    headers: { "last-event-id": String(first.id) },
  });
  const later = node.log.record("peer.stop", {});
  const blocks = await sseBlocks(resumed, 2);
  assert.deepEqual(
    blocks.map((b) => ActivityRecord.parse(JSON.parse(b.split("\n")[1].slice(6))).type),
    ["conn.open", later.type],
  );

  const open = await app.request("/_p2p/events");
  node.stop();
  let text = "";
  for await (const part of open.body!.pipeThrough(new TextDecoderStream())) text += part;
  assert.match(text, /event: activity/);
});

Deno.test("GET /_p2p/events sends a ': ping' comment every pingMs and stops following when the client goes", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node, { pingMs: 20 });
  const res = await app.request("/_p2p/events?type=none");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(": ping\n\n: ping\n\n")) text += (await reader.read()).value;
  assert.match(text, /^(: ping\n\n)+$/);
  assert.equal(node.listeners(), 1);
  await reader.cancel();
  for (let i = 0; i < 50 && node.listeners() > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(node.listeners(), 0, "the log is no longer followed");
});

Deno.test("a download stream stops following the log and the store when its client goes", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const gate = Promise.withResolvers<void>();
  node.downloadGate = gate.promise;
  const res = await app.request(`/_p2p/downloads/${PARTIAL}`, { method: "POST" });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  assert.match((await reader.read()).value ?? "", /"type":"progress"/);
  assert.equal(node.listeners(), 2, "the log and the store are followed");
  await reader.cancel();
  for (let i = 0; i < 50 && node.listeners() > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(node.listeners(), 0, "while the download itself goes on");
  gate.resolve();
});

Deno.test("createControlApp() describes a payload by prefix or name, removes it unless it holds a last copy, and cancels a download's answers", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const info = await answer(app, `/_p2p/payloads/${COMPLETE.slice(0, 6)}`, PayloadInfo);
  assert.deepEqual([info.payloadId, info.here, info.complete], [COMPLETE, true, true]);
  // A name the network catalogue knows (the fake's: two.bin, held here too).
  assert.equal((await answer(app, "/_p2p/payloads/two.bin", PayloadInfo)).payloadId, COMPLETE);

  // An open download answer is closed by DELETE /_p2p/downloads/:ref.
  const gate = Promise.withResolvers<void>();
  node.downloadGate = gate.promise;
  const res = await app.request(`/_p2p/downloads/${PARTIAL.slice(0, 8)}`, { method: "POST" });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  assert.match((await reader.read()).value ?? "", /"type":"progress"/);
  assert.deepEqual(
    await answer(app, `/_p2p/downloads/${PARTIAL}`, CancelAnswer, { method: "DELETE" }),
    { payloadId: PARTIAL, cancelled: 1 },
  );
  gate.resolve();
  await reader.cancel();

  // Not while it downloads.
  const status = node.status.bind(node);
  node.status = () => ({ ...status(), downloads: [COMPLETE] });
  const busy = await failure(app, `/_p2p/payloads/${COMPLETE}`, { method: "DELETE" });
  assert.deepEqual([busy.status, busy.code], [409, "downloading"]);
  node.status = status;
  // The fake's where(): this peer holds position 0, bob 0-2: no last copy.
  const removed = await answer(app, `/_p2p/payloads/${COMPLETE}`, RemoveAnswer, {
    method: "DELETE",
  });
  assert.deepEqual([removed.freedBytes, removed.lastCopies], [4, 0]);
  assert.equal(node.log.query({ type: "payload.remove" }).records.length, 1);
  // Only this peer holds position 0 of PARTIAL: refused, then forced.
  node.where = () =>
    Promise.resolve({
      chunks: 3,
      rows: [{ peerId: "a1".repeat(20), address: "x", have: "80", count: 1, via: "self" }],
    });
  const refused = await failure(app, `/_p2p/payloads/${PARTIAL}`, { method: "DELETE" });
  assert.deepEqual([refused.status, refused.code], [409, "last_copy"]);
  assert.match(refused.message, /only known copy of 1 of the 3 chunks/);
  const forced = await answer(app, `/_p2p/payloads/${PARTIAL}?force=1`, RemoveAnswer, {
    method: "DELETE",
  });
  assert.equal(forced.lastCopies, 1);
});

Deno.test("createControlApp() gives node.get() a signal that aborts when the download's client goes away", async () => {
  await using node = await fakeNode();
  const app = ownerApp(node);
  const gate = Promise.withResolvers<void>();
  node.downloadGate = gate.promise;
  const get = node.get.bind(node);
  const watching = Promise.withResolvers<AbortSignal>();
  node.get = (id, onProgress) => {
    if (onProgress?.signal) watching.resolve(onProgress.signal);
    return get(id, onProgress);
  };
  const res = await app.request(`/_p2p/downloads/${PARTIAL}`, { method: "POST" });
  const reader = res.body!.getReader();
  await reader.read();
  const signal = await watching.promise;
  assert.equal(signal.aborted, false);
  const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
  await reader.cancel();
  await aborted;
  gate.resolve();
});
