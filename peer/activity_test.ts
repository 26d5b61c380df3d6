import assert from "node:assert/strict";
import { PeerLog } from "./activity.ts";

Deno.test("PeerLog.record() appends JSON lines and query() pages them by id and type", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-log-" });
  try {
    const log = await PeerLog.open(`${dir}/activity.jsonl`);
    for (let i = 0; i < 5; i++) log.record("chunk.sent", { index: i });
    log.record("conn.open", { remote: "127.0.0.2:5801" });
    assert.deepEqual(log.query({ type: "chunk", limit: 2 }).records.map((r) => r.index), [3, 4]);
    const page = log.query({ type: "chunk", limit: 3, since: 0 });
    assert.deepEqual(page.records.map((r) => r.index), [0, 1, 2]);
    assert.equal(page.next, 3);
    const rest = log.query({ type: "chunk", since: page.next!, limit: 10 });
    assert.deepEqual(rest.records.map((r) => r.index), [3, 4]);
    assert.equal(rest.next, null);
    log.close();
    const lines = (await Deno.readTextFile(`${dir}/activity.jsonl`)).trim().split("\n");
    assert.equal(lines.length, 6);
    assert.equal(JSON.parse(lines[5]).type, "conn.open");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PeerLog continues ids after a restart and rotates the file by size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-log-" });
  try {
    const path = `${dir}/activity.jsonl`;
    const a = await PeerLog.open(path, { maxBytes: 600, keepFiles: 2 });
    for (let i = 0; i < 30; i++) a.record("tick", { i, pad: "x".repeat(20) });
    a.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["activity.1.jsonl", "activity.2.jsonl", "activity.jsonl"]);
    const b = await PeerLog.open(path, { maxBytes: 600, keepFiles: 2 });
    assert.equal(b.lastId, 30);
    assert.equal(b.record("tock").id, 31);
    b.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PeerLog.follow() sees new records until unsubscribed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-log-" });
  try {
    const log = await PeerLog.open(`${dir}/activity.jsonl`);
    const seen: string[] = [];
    const stop = log.follow((r) => seen.push(r.type));
    log.record("a");
    log.record("b");
    stop();
    log.record("c");
    assert.deepEqual(seen, ["a", "b"]);
    log.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PeerLog.refused() folds a flood of one refusal from one address into a count, written at close at the latest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-log-" });
  try {
    const path = `${dir}/activity.jsonl`;
    const log = await PeerLog.open(path);
    const refusal = { status: 401, code: "unauthorized", method: "GET", path: "/_p2p/status" };
    let made = 0;
    for (let i = 0; i < 1000; i++) {
      if (log.refused("control.refused", { ...refusal, from: "127.0.0.9" })) made++;
    }
    assert.ok(log.refused("control.refused", { ...refusal, from: "127.0.0.8" }), "another address");
    assert.ok(log.refused("control.refused", { ...refusal, from: "127.0.0.9", code: "x" }));
    assert.equal(made, 5, "the first five of the minute are records of their own");
    log.close();
    const records = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(records.length, 8);
    const summary = records.find((r) => r.folded);
    assert.deepEqual({ ...summary, id: 0, ts: "", first: "", last: "" }, {
      id: 0,
      ts: "",
      type: "control.refused",
      from: "127.0.0.9",
      code: "unauthorized",
      status: 401,
      count: 995,
      first: "",
      last: "",
      folded: true,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
