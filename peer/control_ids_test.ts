import assert from "node:assert/strict";
import { AmbiguousIdError, matches, pick, resolvePayload, resolvePeer } from "./control_ids.ts";
import { InvalidInputError, NotFoundError } from "../proto/errors.ts";

const A = "abcdef01".padEnd(64, "1");
const B = "abcdef02".padEnd(64, "2");
const C = "cd".repeat(32);

/** A peer's id sources: two payloads here sharing a 6-digit prefix, one on the network. */
function sources(network: { payloadId: string; name?: string }[] = []) {
  let asked = 0;
  return {
    asked: () => asked,
    store: { list: () => [{ payloadId: A, name: "a.bin" }, { payloadId: B, name: "same" }] },
    table: {
      list: () => [
        { peerId: "b2".repeat(20), name: "bob" },
        { peerId: "b3".repeat(20), name: "bob" },
        { peerId: "c4".repeat(20) },
      ],
    },
    status: () => ({ peerId: "a1".repeat(20), name: "alice" }),
    networkPayloads: () => (asked++, Promise.resolve({ payloads: network })),
  };
}

Deno.test("matches() takes the whole id, else a prefix of 6+ hex digits, else a name", () => {
  const all = [{ id: A, name: "a.bin" }, { id: B, name: A.slice(0, 7) }];
  assert.deepEqual(matches(all, A).map((c) => c.id), [A]);
  assert.deepEqual(matches(all, "ABCDEF0").map((c) => c.id), [A, B], "a prefix, any case");
  assert.deepEqual(matches(all, "abcdef01").map((c) => c.id), [A]);
  assert.deepEqual(matches(all, "abcde"), [], "5 digits are not a prefix");
  assert.deepEqual(matches(all, "a.bin").map((c) => c.id), [A]);
});

Deno.test("pick() names the matches of an ambiguous reference in their short form, and says what is wrong with none", () => {
  const many = Array.from({ length: 7 }, (_, i) => ({ id: `${i}`.repeat(64), name: `n${i}` }));
  assert.throws(() => pick(many, "x", "payload"), (err) => {
    assert.ok(err instanceof AmbiguousIdError);
    assert.equal(err.code, "ambiguous_id");
    assert.equal(err.status, 409);
    assert.match(
      err.message,
      /^'x' matches 7 payloads: 000000000000 \(n0\), .* and 2 more; give more/,
    );
    return true;
  });
  assert.throws(() => pick([], "abc", "payload"), InvalidInputError);
  assert.throws(() => pick([], "zzz", "peer"), (err) => {
    assert.ok(err instanceof NotFoundError);
    assert.equal(err.code, "unknown_peer");
    return true;
  });
});

Deno.test("resolvePayload() looks here first, then on the network, and never for a whole id", async () => {
  const s = sources([{ payloadId: C, name: "far.bin" }]);
  assert.equal(await resolvePayload(s, "a.bin"), A);
  assert.equal(await resolvePayload(s, "abcdef02"), B);
  await assert.rejects(resolvePayload(s, "abcdef"), AmbiguousIdError);
  assert.equal(s.asked(), 0, "found here: the network is not asked");
  assert.equal(await resolvePayload(s, "far.bin"), C);
  assert.equal(await resolvePayload(s, "cdcdcdcd"), C);
  await assert.rejects(resolvePayload(s, "far.bin", false), NotFoundError);
  const asked = s.asked();
  assert.equal(await resolvePayload(s, "ef".repeat(32)), "ef".repeat(32));
  assert.equal(s.asked(), asked);
  await assert.rejects(resolvePayload(s, " "), InvalidInputError);
});

Deno.test("resolvePeer() finds this peer and known peers by prefix or unique name", () => {
  const s = sources();
  assert.equal(resolvePeer(s, "alice"), "a1".repeat(20));
  assert.equal(resolvePeer(s, "c4c4c4"), "c4".repeat(20));
  assert.throws(() => resolvePeer(s, "bob"), /'bob' matches 2 peers: b2b2b2b2b2b2 \(bob\)/);
  assert.throws(() => resolvePeer(s, "carol"), NotFoundError);
});
