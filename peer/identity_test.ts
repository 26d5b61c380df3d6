import assert from "node:assert/strict";
import { loadIdentity, peerIdFromPublicKey, verifySignature } from "./identity.ts";
import { fromBase64Url } from "../proto/ids.ts";

Deno.test("loadIdentity() makes a key pair once and keeps the same peerId across restarts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-identity-" });
  try {
    const first = await loadIdentity(dir);
    assert.match(first.peerId, /^[0-9a-f]{40}$/);
    assert.equal(first.peerId, await peerIdFromPublicKey(fromBase64Url(first.publicKey)));
    const again = await loadIdentity(dir);
    assert.equal(again.peerId, first.peerId);
    const stat = await Deno.stat(`${dir}/identity.json`);
    assert.equal((stat.mode ?? 0) & 0o077, 0, "identity file is private");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Identity.sign() signatures verify with the public key and fail when tampered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-identity-" });
  try {
    const id = await loadIdentity(dir);
    const other = await loadIdentity(`${dir}/other`);
    const data = new TextEncoder().encode("nonce|peerId|ports");
    const sig = await id.sign(data);
    assert.equal(sig.length, 64);
    assert.equal(await verifySignature(id.publicKey, data, sig), true);
    assert.equal(await verifySignature(other.publicKey, data, sig), false);
    const tampered = data.slice();
    tampered[0] ^= 1;
    assert.equal(await verifySignature(id.publicKey, tampered, sig), false);
    assert.equal(await verifySignature("not*base64", data, sig), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdentity() refuses a corrupt identity file instead of replacing it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-identity-" });
  try {
    await Deno.writeTextFile(`${dir}/identity.json`, "{broken");
    await assert.rejects(loadIdentity(dir), /Cannot read identity .*move the file away/);
    assert.equal(await Deno.readTextFile(`${dir}/identity.json`), "{broken");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
