/**
 * The web app's modules without a browser: they type-check as browser code (their
 * own `deno.json`: `checkJs` and the DOM library), the app server serves every file
 * the page and its imports name, and the pure parts (NDJSON lines, answer checks,
 * routes, formatting, activity in words) do what the views count on.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./_tracker_process.ts";
import { createAppServer } from "../peer/app_server.ts";
import { ApiError, check, EventLines } from "../peer/app/static/answers.js";
import { fileName, fmtBytes, percent, viaWords } from "../peer/app/static/format.js";
import { parseRoute, plainIds } from "../peer/app/static/state.js";
import { describe, groupRecords, kindOf } from "../peer/app/static/view_activity.js";

Deno.test("web app modules type-check as browser code with checkJs", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "check",
      "--config",
      "peer/app/static/deno.json",
      "peer/app/static/app.js",
    ],
    cwd: REPO_ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text);
});

Deno.test("app server serves the page, its styles and every module its imports name", async () => {
  const app = await createAppServer();
  const seen = new Set<string>();
  const get = async (path: string) => {
    const res = await app.request(path);
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    return { type: res.headers.get("content-type") ?? "", text: await res.text() };
  };
  const page = await get("/");
  const refs = [...page.text.matchAll(/(?:href|src)="([^"#]+)"/g)].map((m) => m[1]);
  assert.ok(refs.includes("app.js") && refs.includes("app.css"), refs.join(" "));
  const queue = refs.map((r) => new URL(r, "http://app/").pathname);
  while (queue.length) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const { type, text } = await get(path);
    if (!/\.m?js$/.test(path)) continue;
    assert.match(type, /^text\/javascript/, path);
    for (const m of text.matchAll(/\b(?:from|import)\s*"(\.{1,2}\/[^"]+)"/g)) {
      queue.push(new URL(m[1], `http://app${path}`).pathname);
    }
  }
  for (
    const f of [
      "/vendor/preact/preact.mjs",
      "/vendor/signals/signals.mjs",
      "/vendor/qrcode-generator/qrcode.mjs",
      "/view_activity.js",
    ]
  ) assert.ok(seen.has(f), `${f} is not reached from the page`);
  const res = await app.request("/vendor/README.md");
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("EventLines splits NDJSON at any boundary and turns an error event into an ApiError", () => {
  const text = '{"type":"stored","size":3}\n{"type":"replicated","done":1}\n' +
    '{"type":"done","payloadId":"x"}\n';
  for (let cut = 0; cut <= text.length; cut++) {
    const lines = new EventLines();
    const events = [
      ...lines.push(text.slice(0, cut)),
      ...lines.push(text.slice(cut)),
      ...lines.end(),
    ];
    assert.deepEqual(events.map((e) => e.type), ["stored", "replicated", "done"], `cut ${cut}`);
    assert.equal(lines.done?.payloadId, "x");
  }
  const last = new EventLines();
  assert.deepEqual(last.push('{"type":"done"}').length, 0);
  assert.equal(last.end()[0].type, "done");
  assert.throws(
    () =>
      new EventLines().push('{"type":"error","message":"Cannot find the manifest","code":"x"}\n'),
    (err) =>
      err instanceof ApiError && err.message === "Cannot find the manifest" && err.code === "x",
  );
  assert.throws(() => new EventLines().push("<html>\n"), /not JSON: '<html>'/);
  assert.throws(() => new EventLines().push("[1]\n"), /without a type/);
});

Deno.test("check() names the first field an answer lacks or has of the wrong kind", () => {
  const id = "ab".repeat(32);
  const ok = check({ payloadId: id, size: 3, extra: true }, {
    payloadId: "payloadId",
    size: "number",
  }, "x");
  assert.equal((ok as { size: number }).size, 3);
  assert.throws(() => check(null, { a: "string" }, "status"), /The peer's status is not an object/);
  assert.throws(
    () => check({ payloadId: "ABC", size: 3 }, { payloadId: "payloadId" }, "payload"),
    /The peer's payload has no usable 'payloadId' \(expected payloadId\)/,
  );
  assert.throws(() => check({ size: -1 }, { size: "number" }, "payload"), /'size'/);
  check({}, { name: "string?" }, "optional");
  assert.throws(
    () => check({ name: 3 }, { name: "string?" }, "payload"),
    /'name' \(expected string\)/,
  );
});

Deno.test("parseRoute() reads the tab and the payload of a share link", () => {
  const id = "cd".repeat(32);
  assert.deepEqual(parseRoute(""), { tab: "payloads", id: null });
  assert.deepEqual(parseRoute(`#/payloads/${id}`), { tab: "payloads", id });
  assert.deepEqual(parseRoute(`#/payloads/${id.toUpperCase()}`), { tab: "payloads", id });
  assert.deepEqual(parseRoute("#/peers"), { tab: "peers", id: null });
  assert.deepEqual(parseRoute("#/activity/x"), { tab: "activity", id: null });
  assert.deepEqual(parseRoute("#/nonsense"), { tab: "payloads", id: null });
  assert.deepEqual(parseRoute("#main"), { tab: "payloads", id: null });
});

Deno.test("formatting: sizes, percentages, file names, plain words", () => {
  assert.equal(fmtBytes(12), "12 B");
  assert.equal(fmtBytes(16 * 1024 * 1024), "16.0 MiB");
  assert.equal(fmtBytes(undefined), "—");
  assert.equal(percent(1, 3), 33);
  assert.equal(percent(5, 0), 100);
  assert.equal(fileName("dir/holiday.bin", "ab".repeat(32)), "holiday.bin");
  assert.equal(fileName(undefined, "ab".repeat(32)), "abababababababab.bin");
  assert.equal(viaWords("HAVE?"), "asked directly");
});

Deno.test("activity: failures are said in words, routine traffic is told apart", () => {
  const r = (type: string, more: Record<string, unknown> = {}) => ({
    id: 1,
    ts: "",
    type,
    ...more,
  });
  assert.equal(kindOf(r("exchange")), "routine");
  assert.equal(kindOf(r("chunk.sent")), "routine");
  assert.equal(kindOf(r("query.have")), "routine");
  assert.equal(kindOf(r("exchange.fail")), "error");
  assert.equal(kindOf(r("download.fail")), "error");
  assert.equal(kindOf(r("error")), "error");
  assert.equal(kindOf(r("download.done")), "event");
  assert.equal(
    describe(
      r("conn.fail", { peerId: "ef".repeat(20), address: "127.0.0.9:1", message: "refused" }),
    ),
    "Could not reach efefefef at 127.0.0.9:1: refused",
  );
  assert.equal(
    describe(r("error", { during: "GET /_p2p/where", message: "boom" })),
    "Something went wrong during GET /_p2p/where: boom",
  );
  assert.equal(describe(r("something.new", { n: 2 })), "Something new: n 2");
  for (const t of ["download.start", "offer.accepted", "tracker.error", "replicate.fail"]) {
    assert.doesNotMatch(describe(r(t)), /undefined|\[object/, t);
  }
});

Deno.test("activity: runs of routine records and of the same refusal become one group each", () => {
  let id = 0;
  const r = (type: string, more: Record<string, unknown> = {}) => ({
    id: ++id,
    ts: "",
    type,
    ...more,
  });
  const records = [
    r("download.done"),
    r("exchange"),
    r("chunk.sent"),
    r("control.refused", { code: "unauthorized", path: "/_p2p/status" }),
    r("control.refused", { code: "unauthorized", path: "/_p2p/peers" }),
    r("control.refused", { code: "forbidden_origin", path: "/_p2p/peers" }),
    r("query.have"),
  ];
  const shape = (gs: ReturnType<typeof groupRecords>) =>
    gs.map((g) => `${g.kind}:${g.records.map((x) => x.id).join(",")}`);
  assert.deepEqual(shape(groupRecords(records, false)), [
    "one:1",
    "routine:2,3",
    "same:4,5",
    "one:6",
    "routine:7",
  ]);
  assert.deepEqual(shape(groupRecords(records, true)), [
    "one:1",
    "one:2",
    "one:3",
    "same:4,5",
    "one:6",
    "one:7",
  ]);
});

Deno.test("plainIds() shortens the ids in a peer's message", () => {
  const payload = "d1".repeat(32);
  const peer = "ef".repeat(20);
  assert.equal(
    plainIds(`No reachable source holds chunks 6,7 of payload '${payload}' (2 of 16 missing)`),
    "No reachable source holds chunks 6,7 of payload 'd1d1d1d1d1d1' (2 of 16 missing)",
  );
  assert.equal(plainIds(`Peer ${peer} refused`), "Peer 'efefefef' refused");
});
