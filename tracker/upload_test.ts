import assert from "node:assert/strict";
import { InvalidInputError } from "../proto/errors.ts";
import { CHUNK_SIZE, sha256Hex } from "../proto/manifest.ts";
import { PayloadTooLargeError } from "./errors.ts";
import { ingest } from "./upload.ts";
import { testTracker } from "./_test_setup.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { PayloadList, UploadResponse } from "../proto/tracker.ts";

/** A sink that keeps the chunks it is given, by index. */
function fakeStore() {
  const chunks = new Map<number, Uint8Array>();
  const keep = (index: number, bytes: Uint8Array) => {
    chunks.set(index, bytes.slice());
    return Promise.resolve();
  };
  return Object.assign(keep, { chunks });
}

Deno.test("ingest() cuts a stream into stored chunks and returns their manifest", async () => {
  const store = fakeStore();
  const data = new Uint8Array(CHUNK_SIZE + 10).map((_, i) => i % 251);
  const parts = [
    data.subarray(0, 7),
    data.subarray(7, CHUNK_SIZE + 3),
    data.subarray(CHUNK_SIZE + 3),
  ];
  const manifest = await ingest(store, ReadableStream.from(parts), data.length);
  assert.equal(manifest.size, data.length);
  assert.deepEqual(manifest.chunks, [
    await sha256Hex(data.subarray(0, CHUNK_SIZE)),
    await sha256Hex(data.subarray(CHUNK_SIZE)),
  ]);
  assert.equal(store.chunks.size, 2);
});

Deno.test("ingest() stops reading once the stream is over the limit", async () => {
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      pulled++;
      ctrl.enqueue(new Uint8Array(1000));
    },
  });
  await assert.rejects(
    ingest(fakeStore(), endless, 2500),
    (err) => err instanceof PayloadTooLargeError && /at least 3000 bytes/.test(err.message),
  );
  assert.ok(pulled <= 4, `pulled ${pulled} parts`);
});

Deno.test("ingest() refuses an empty payload and a stream that breaks off, as the caller's doing", async () => {
  await assert.rejects(
    ingest(fakeStore(), ReadableStream.from([]), 10),
    (err) => err instanceof InvalidInputError && err.code === "empty_payload",
  );
  const broken = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      ctrl.error(new TypeError("connection reset"));
    },
  });
  await assert.rejects(
    ingest(fakeStore(), broken, 10),
    (err) => err instanceof InvalidInputError && err.code === "incomplete_body",
  );
});

Deno.test("POST /payloads keeps the tags of ?tag= and of JSON, merged over uploads", async () => {
  await using t = await testTracker();
  const up = async (path: string, init: RequestInit) => {
    const res = await t.request(path, { method: "POST", ...init });
    assert.ok(res.status < 300, await res.clone().text());
    return UploadResponse.parse(await res.json()).payloadId;
  };
  const id = await up("/payloads?name=notes.md&tag=work&tag=2026-report&tag=Work", {
    body: "some notes",
  });
  const row = async () => (await t.store.getPayload(id))!;
  assert.deepEqual((await row()).tags, ["work", "2026-report"]);
  // The same bytes again, in JSON with a new tag and one in the query: both added.
  await up("/payloads?tag=café", {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ payload: "some notes", tags: ["work", "minutes"] }),
  });
  assert.deepEqual((await row()).tags, ["work", "2026-report", "café", "minutes"]);
  const plain = await up("/payloads", { body: "no tags" });
  assert.equal((await t.store.getPayload(plain))!.tags, undefined);
  // GET /payloads lists them; a payload without tags has none.
  const list = PayloadList.parse(await (await t.request("/payloads")).json());
  const byId = new Map(list.payloads.map((p) => [p.payloadId, p]));
  assert.deepEqual(byId.get(id)?.tags, ["work", "2026-report", "café", "minutes"]);
  assert.equal(byId.get(plain)?.tags, undefined);
});

Deno.test("POST /payloads refuses a bad tag or too many with one line, storing nothing", async () => {
  await using t = await testTracker();
  const many = Array.from({ length: 33 }, (_, i) => `tag=t${i}`).join("&");
  const cases: [string, RequestInit, string][] = [
    ["/payloads?tag=two%20words", { body: "x" }, "Tag 'two words' is not valid"],
    ["/payloads?tag=", { body: "x" }, "Tag '' is not valid"],
    [`/payloads?tag=${"x".repeat(65)}`, { body: "x" }, "Tag 'xxx"],
    [`/payloads?${many}`, { body: "x" }, "Cannot take 33 tags: a payload has at most 32"],
    ["/payloads?tag=a,b", { body: "x" }, "Tag 'a,b' is not valid: 1 to 64 characters"],
  ];
  for (const [path, init, message] of cases) {
    const res = await t.request(path, { method: "POST", ...init });
    assert.equal(res.status, 400, path);
    const body = ErrorBody.parse(await res.json());
    assert.equal(body.error.code, "invalid_tag", path);
    assert.ok(body.error.message.startsWith(message), body.error.message);
    assert.ok(!body.error.message.includes("\n"));
  }
  const json = await t.request("/payloads", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ payload: "x", tags: ["has space"] }),
  });
  assert.equal(json.status, 400);
  await json.body?.cancel();
  assert.deepEqual((await t.store.listPayloads(10)).rows, []);
});
