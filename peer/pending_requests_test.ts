import assert from "node:assert/strict";
import { PendingRequests } from "./pending_requests.ts";
import { RemoteError } from "../proto/answers.ts";
import { PeerTimeoutError, ProtocolError } from "../proto/errors.ts";

const empty = new Uint8Array(0);
const pong = (requestId: number) => ({ type: "PONG" as const, requestId, header: {}, body: empty });

Deno.test("PendingRequests.takeId() counts from 1, wraps past 2^32-1 to 1 and skips ids still pending", () => {
  const pending = new PendingRequests();
  assert.equal(pending.takeId(), 1);
  const two = pending.takeId();
  pending.wait(two, "PING", 1000).catch(() => {});
  for (let i = 3; i < 5; i++) assert.equal(pending.takeId(), i);
  pending.rejectAll(new Error("done"));
});

Deno.test("PendingRequests.settle() resolves the matching request, typed by the request, once", async () => {
  const pending = new PendingRequests();
  const a = pending.wait(7, "PING", 1000);
  assert.equal(pending.size, 1);
  assert.ok(pending.settle(pong(7)));
  assert.equal((await a).type, "PONG");
  assert.ok(!pending.settle(pong(7)), "a second answer finds no request");
  assert.equal(pending.size, 0);
});

Deno.test("PendingRequests.settle() rejects with RemoteError for ERROR and ProtocolError for another type", async () => {
  const pending = new PendingRequests();
  const a = pending.wait(1, "PING", 1000);
  const b = pending.wait(2, "PING", 1000);
  pending.settle({
    type: "ERROR",
    requestId: 1,
    header: { code: "busy", message: "Busy" },
    body: empty,
  });
  pending.settle({ type: "PEERS", requestId: 2, header: { peers: [] }, body: empty });
  await assert.rejects(a, (err) => err instanceof RemoteError && err.code === "busy");
  await assert.rejects(
    b,
    (err) => err instanceof ProtocolError && err.code === "unexpected_answer",
  );
});

Deno.test("PendingRequests.wait() rejects with PeerTimeoutError after its time limit, and with the signal's reason", async () => {
  const pending = new PendingRequests();
  await assert.rejects(
    pending.wait(1, "LOG_REQ", 10),
    (err) =>
      err instanceof PeerTimeoutError && /'LOG_REQ' request '1' within '10' ms/.test(err.message),
  );
  const abort = new AbortController();
  const b = pending.wait(2, "PING", 1000, abort.signal);
  abort.abort(new Error("stop"));
  await assert.rejects(b, /stop/);
  assert.equal(pending.size, 0);
  assert.ok(!pending.settle(pong(2)), "a late answer is ignored");
});

Deno.test("PendingRequests.rejectAll() rejects every waiting request and clears their timers", async () => {
  const pending = new PendingRequests();
  const all = [1, 2, 3].map((id) => pending.wait(id, "PING", 60_000));
  pending.rejectAll(new Error("Connection is closed"));
  for (const p of all) await assert.rejects(p, /Connection is closed/);
  assert.equal(pending.size, 0);
});
