import assert from "node:assert/strict";
import { mergeHits, searchNetwork } from "./federated.ts";
import type { LocalHit } from "../../proto/search.ts";
import { InvalidInputError } from "../../proto/errors.ts";

const ID = (c: string) => c.repeat(64);
const P = (c: string) => c.repeat(40);
const hit = (id: string, score: number, extra: Partial<LocalHit> = {}): LocalHit => ({
  payloadId: ID(id),
  type: "text/plain",
  tags: [],
  size: 10,
  score,
  snippet: [{ text: "x" }],
  ...extra,
});

Deno.test("mergeHits() keeps one hit per payload with all its holders, the best score and the union of tags", () => {
  const merged = mergeHits([
    { holder: { peerId: P("a") }, hits: [hit("1", 1, { tags: ["x"] }), hit("2", 0.5)] },
    { holder: { peerId: P("b") }, hits: [hit("1", 0.4, { name: "one", tags: ["y", "x"] })] },
    { holder: { peerId: P("c") }, hits: [hit("2", 0.5), hit("1", 0.9)] },
    { holder: { peerId: P("c") }, hits: [hit("1", 0.9)] },
  ], 10);
  assert.deepEqual(merged.map((h) => [h.payloadId[0], h.holders.map((x) => x.peerId[0])]), [
    ["1", ["a", "b", "c"]],
    ["2", ["a", "c"]],
  ]);
  assert.equal(merged[0].score, 1);
  assert.equal(merged[0].name, "one");
  assert.deepEqual(merged[0].tags, ["x", "y"]);
  assert.equal(
    mergeHits([{ holder: { peerId: P("a") }, hits: [hit("1", 1), hit("2", 1)] }], 1).length,
    1,
  );
});

Deno.test("searchNetwork() merges the peers that answer and names those that fail or miss the deadline", async () => {
  const never = Promise.withResolvers<LocalHit[]>();
  const answer = await searchNetwork(
    {
      self: { peerId: P("a"), name: "me" },
      local: () => Promise.resolve([hit("1", 1)]),
      peers: () => [{ peerId: P("b"), name: "bee" }, { peerId: P("c") }, { peerId: P("d") }],
      ask: (peer, _q, _limit, signal) => {
        if (peer.peerId === P("b")) return Promise.resolve([hit("1", 1), hit("2", 0.3)]);
        if (peer.peerId === P("c")) return Promise.reject(new Error("Peer went away"));
        // d: answers only when aborted by the deadline.
        signal.addEventListener("abort", () => never.reject(signal.reason), { once: true });
        return never.promise;
      },
      deadlineMs: 50,
    },
    "cats",
    10,
  );
  assert.equal(answer.asked, 3);
  assert.deepEqual(answer.hits.map((h) => [h.payloadId[0], h.holders.length]), [["1", 2], [
    "2",
    1,
  ]]);
  assert.deepEqual(answer.missing.map((m) => [m.peerId[0], m.message]).sort(), [
    ["c", "Peer went away"],
    ["d", "Did not answer within the deadline"],
  ]);
  await assert.rejects(
    () =>
      searchNetwork(
        {
          self: { peerId: P("a") },
          local: () => Promise.resolve([]),
          peers: () => [],
          ask: () => Promise.resolve([]),
        },
        '"open',
        10,
      ),
    InvalidInputError,
  );
});
