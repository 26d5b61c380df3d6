import assert from "node:assert/strict";
import { InvalidInputError } from "./errors.ts";
import {
  formatNetworkKey,
  isOpenNetwork,
  keyProof,
  NETWORK_KEY_PREFIX,
  networkName,
  newNetworkKey,
  OPEN_NETWORK_KEY,
  parseNetworkKey,
  transcript,
  verifyKeyProof,
} from "./network_key.ts";

Deno.test("parseNetworkKey() reads what formatNetworkKey() writes, white space around ignored", () => {
  const key = newNetworkKey();
  const text = formatNetworkKey(key);
  assert.match(text, /^p2pkey1-[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(parseNetworkKey(`  ${text}\n`), key);
});

Deno.test("parseNetworkKey() refuses a wrong prefix, length or alphabet without echoing the text", () => {
  const good = formatNetworkKey(newNetworkKey());
  for (
    const bad of [
      "",
      "hello",
      good.slice(0, -1),
      good + "A",
      good.replace(/.$/, "!"),
      good.slice(8),
    ]
  ) {
    assert.throws(() => parseNetworkKey(bad), (err) => {
      assert.ok(err instanceof InvalidInputError);
      if (bad.length > 10) {
        assert.ok(!(err as Error).message.includes(bad.slice(NETWORK_KEY_PREFIX.length)));
      }
      return true;
    });
  }
});

Deno.test("newNetworkKey() gives different keys; the open key is recognised", () => {
  assert.notDeepEqual(newNetworkKey(), newNetworkKey());
  assert.ok(isOpenNetwork(OPEN_NETWORK_KEY));
  assert.ok(!isOpenNetwork(newNetworkKey()));
});

Deno.test("networkName() is stable per key, differs between keys, and says open for none", async () => {
  const a = newNetworkKey();
  assert.equal(await networkName(a), await networkName(a.slice()));
  assert.notEqual(await networkName(a), await networkName(newNetworkKey()));
  assert.match(await networkName(a), /^[0-9a-f]{12}$/);
  assert.equal(await networkName(OPEN_NETWORK_KEY), "open");
});

Deno.test("transcript() is unambiguous: moving bytes between fields changes it", () => {
  const a = transcript("l", ["ab", "c"]);
  const b = transcript("l", ["a", "bc"]);
  assert.notDeepEqual(a, b);
  assert.notDeepEqual(transcript("l", []), transcript("l", [""]));
});

Deno.test("transcript() is the label and each field as a 4-byte big-endian length and its UTF-8 or raw bytes", () => {
  const got = transcript("lé", ["a😀", new Uint8Array([0, 255]), "", "\ud800"]);
  const want = [
    [0, 0, 0, 3, 0x6c, 0xc3, 0xa9],
    [0, 0, 0, 5, 0x61, 0xf0, 0x9f, 0x98, 0x80],
    [0, 0, 0, 2, 0, 255],
    [0, 0, 0, 0],
    [0, 0, 0, 3, 0xef, 0xbf, 0xbd], // a lone surrogate is U+FFFD, as TextEncoder writes it
  ].flat();
  assert.deepEqual([...got], want);
});

Deno.test("keyProof() verifies only with the same key, label and fields", async () => {
  const key = newNetworkKey();
  const proof = await keyProof(key, "test v1", ["x", new Uint8Array([1])]);
  assert.equal(proof.byteLength, 32);
  assert.ok(await verifyKeyProof(key, "test v1", ["x", new Uint8Array([1])], proof));
  assert.ok(!await verifyKeyProof(newNetworkKey(), "test v1", ["x", new Uint8Array([1])], proof));
  assert.ok(!await verifyKeyProof(key, "test v2", ["x", new Uint8Array([1])], proof));
  assert.ok(!await verifyKeyProof(key, "test v1", ["x", new Uint8Array([2])], proof));
  assert.ok(!await verifyKeyProof(key, "test v1", ["x", new Uint8Array([1])], proof.slice(1)));
  assert.ok(!await verifyKeyProof(OPEN_NETWORK_KEY, "test v1", ["x", new Uint8Array([1])], proof));
});
