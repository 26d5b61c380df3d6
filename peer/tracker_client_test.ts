import assert from "node:assert/strict";
import { P2pError } from "../proto/errors.ts";
import { TrackerClient, TrackerError } from "./tracker_client.ts";

/** A fake tracker on 127.0.0.1 answering every request with `answer`. */
function fakeTracker(answer: (req: Request) => Response) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("TrackerClient keeps the tracker's error code and status in a TrackerError", async () => {
  await using tracker = fakeTracker(() =>
    Response.json({ error: { code: "unknown_peer", message: "No live peer" } }, { status: 404 })
  );
  const client = new TrackerClient(tracker.url);
  const err = await client.peers().catch((e) => e);
  assert.ok(err instanceof TrackerError && err instanceof P2pError);
  assert.equal(err.code, "unknown_peer");
  assert.equal(err.httpStatus, 404);
  assert.match(err.message, /404 to GET \/peers: No live peer/);
  await client.unregister("a".repeat(40)); // a peer the tracker no longer knows is fine
});

Deno.test("TrackerClient refuses an answer that does not fit its schema", async () => {
  await using tracker = fakeTracker(() => Response.json({ peers: [{ peerId: "x" }] }));
  const err = await new TrackerClient(tracker.url).peers().catch((e) => e);
  assert.ok(err instanceof TrackerError);
  assert.equal(err.code, "tracker_bad_answer");
  assert.equal(err.httpStatus, 200);
});

Deno.test("TrackerClient says a tracker that does not answer is unreachable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const err = await new TrackerClient(`http://127.0.0.1:${port}`).peers().catch((e) => e);
  assert.ok(err instanceof TrackerError);
  assert.equal(err.code, "tracker_unreachable");
  assert.equal(err.httpStatus, 0);
});
