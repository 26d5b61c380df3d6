import assert from "node:assert/strict";
import {
  DownloadEvent,
  EventsQuery,
  LastEventId,
  LogQuery,
  NetworkPayloadsAnswer,
  PayloadsAnswer,
  PeersAnswer,
  PutEvent,
  PutQuery,
  ServerEvents,
  StatusAnswer,
  WhereAnswer,
} from "./control.ts";

const PEER = "ab".repeat(20);
const ID = "cd".repeat(32);

/** A status answer as a peer sends it today. */
const status = {
  peerId: PEER,
  name: "alice",
  version: "0.1.0",
  ports: { chunk: 5801, pingback: 5800, http: 5805, app: 5810 },
  host: "0.0.0.0",
  dataDir: "/home/a/.p2p",
  tracker: { url: "http://127.0.0.1:5700", ok: false, lastError: "connection refused" },
  payloads: 2,
  completePayloads: 1,
  storedBytes: 3145728,
  knownPeers: 1,
  connections: 2,
  downloads: [ID],
  http: { connections: 1, requests: 9, forwarded: 8, failures: 0, idleUpstream: 1 },
  memory: { rss: 80_000_000, heapUsed: 9_000_000, external: 2_000_000 },
};

Deno.test("StatusAnswer accepts a peer's status, with or without tracker and HTTP counters", () => {
  assert.deepEqual(StatusAnswer.parse(status), status);
  const { http: _, ...early } = { ...status, tracker: null };
  assert.deepEqual(StatusAnswer.parse(early), early);
});

Deno.test("StatusAnswer rejects a bad peerId, a missing field and a negative count", () => {
  assert.equal(StatusAnswer.safeParse({ ...status, peerId: "x" }).success, false);
  const { memory: _, ...noMemory } = status;
  assert.equal(StatusAnswer.safeParse(noMemory).success, false);
  assert.equal(StatusAnswer.safeParse({ ...status, payloads: -1 }).success, false);
  assert.equal(StatusAnswer.safeParse({ ...status, downloads: ["nope"] }).success, false);
});

Deno.test("PeersAnswer, PayloadsAnswer, NetworkPayloadsAnswer and WhereAnswer accept today's answers", () => {
  const peers = {
    peers: [{
      peerId: PEER,
      host: "127.0.0.3",
      ports: { chunk: 4001 },
      sources: ["seed", "scan"],
      firstSeen: 1,
      lastSeen: 2,
      failures: 0,
      stale: false,
    }],
  };
  assert.deepEqual(PeersAnswer.parse(peers), peers);
  const payloads = {
    payloads: [{
      payloadId: ID,
      size: 5,
      chunkSize: 1048576,
      chunks: 1,
      held: 1,
      complete: true,
      name: "a.txt",
      addedAt: 1_700_000_000_000,
    }],
  };
  assert.deepEqual(PayloadsAnswer.parse(payloads), payloads);
  const net = {
    payloads: [{
      payloadId: ID,
      size: 5,
      chunks: 1,
      holders: [{ peerId: PEER, name: "alice", held: 1, complete: true }],
    }],
    errors: [{ source: "tracker", message: "HTTP 503" }],
  };
  assert.deepEqual(NetworkPayloadsAnswer.parse(net), net);
  const where = {
    chunks: 9,
    rows: [
      { peerId: PEER, name: "a", address: "127.0.0.2:4000", have: "ff80", count: 9, via: "self" },
      { peerId: "tracker", address: "http://t:5700", have: "ff80", count: 9, via: "tracker" },
    ],
  };
  assert.deepEqual(WhereAnswer.parse(where), where);
});

Deno.test("the list answers reject an unknown peer source, a bad payload id and odd hex", () => {
  const peer = {
    peerId: PEER,
    host: "h",
    ports: { chunk: 1 },
    sources: ["gossip"],
    firstSeen: 1,
    lastSeen: 2,
    failures: 0,
    stale: false,
  };
  assert.equal(PeersAnswer.safeParse({ peers: [peer] }).success, false);
  assert.equal(
    PayloadsAnswer.safeParse({
      payloads: [{
        payloadId: "CD".repeat(32),
        size: 1,
        chunkSize: 1,
        chunks: 1,
        held: 1,
        complete: true,
        addedAt: 1,
      }],
    }).success,
    false,
  );
  const row = { peerId: PEER, address: "a", have: "f", count: 1, via: "self" };
  assert.equal(WhereAnswer.safeParse({ chunks: 1, rows: [row] }).success, false);
});

Deno.test("PutEvent and DownloadEvent accept every event a stream sends and reject unknown types", () => {
  const put = [
    { type: "stored", payloadId: ID, size: 5, chunks: 1 },
    { type: "replicated", index: 0, copies: 1, done: 1, chunks: 1 },
    {
      type: "done",
      payloadId: ID,
      size: 5,
      chunks: 1,
      created: true,
      replicas: { [PEER]: 1 },
      underReplicated: 0,
    },
    { type: "error", message: "Payload is empty", name: "P2pError", code: "empty_payload" },
    { type: "error", message: "boom", name: "Error" },
  ];
  for (const e of put) assert.deepEqual(PutEvent.parse(e), e);
  const download = [
    {
      type: "progress",
      payloadId: ID,
      size: 5,
      chunks: 1,
      done: 0,
      bytes: 0,
      fetchedBytes: 0,
      seconds: 0.01,
      sources: 2,
    },
    { type: "chunk", index: 0, source: "local" },
    {
      type: "done",
      payloadId: ID,
      size: 5,
      bytes: 5,
      seconds: 0.2,
      resumed: 0,
      chunksBySource: { [PEER]: 1 },
      dropped: [{ source: "tracker", reason: "timeout" }],
    },
  ];
  for (const e of download) assert.deepEqual(DownloadEvent.parse(e), e);
  assert.equal(PutEvent.safeParse({ type: "progress" }).success, false);
  assert.equal(DownloadEvent.safeParse({ type: "chunk", index: -1, source: "x" }).success, false);
  assert.equal(DownloadEvent.safeParse({ type: "error", message: "no name" }).success, false);
});

Deno.test("ServerEvents.activity keeps every field of a record", () => {
  const r = { id: 7, ts: "2026-01-01T00:00:00.000Z", type: "payload.put", payloadId: ID };
  assert.deepEqual(ServerEvents.activity.parse(r), r);
  assert.equal(ServerEvents.activity.safeParse({ id: -1, ts: "", type: "x" }).success, false);
});

Deno.test("request schemas: LogQuery leaves since out when absent, the queries bound their text, LastEventId is a count", () => {
  assert.deepEqual(LogQuery.parse({}), { limit: 100 });
  assert.deepEqual(LogQuery.parse({ since: "5", limit: "10", follow: "1", peer: PEER }), {
    since: 5,
    limit: 10,
    follow: "1",
    peer: PEER,
  });
  // A peer is a reference (id, prefix or name), resolved by the peer: bounded text.
  assert.equal(LogQuery.parse({ peer: "bob" }).peer, "bob");
  const long = { peer: "x".repeat(256) };
  for (const bad of [{ limit: "0" }, { limit: "1001" }, { peer: " " }, long, { follow: "yes" }]) {
    assert.equal(LogQuery.safeParse(bad).success, false, JSON.stringify(bad));
  }
  assert.equal(PutQuery.safeParse({ name: "" }).success, false);
  assert.equal(PutQuery.safeParse({ name: "n".repeat(256) }).success, false);
  assert.equal(EventsQuery.safeParse({ type: "t".repeat(65) }).success, false);
  assert.equal(LastEventId.parse("12"), 12);
  assert.equal(LastEventId.safeParse("-1").success, false);
  assert.equal(LastEventId.safeParse("x").success, false);
});
