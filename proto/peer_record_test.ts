import assert from "node:assert/strict";
import { MAX_FUTURE_MS, peerRecordBytes, signPeerRecord, verifyPeerRecord } from "./peer_record.ts";
import { peerIdFromPublicKey } from "./signature.ts";
import { toBase64Url } from "./ids.ts";

/** A fresh Ed25519 identity: its id, public key and signer. */
async function identity() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return {
    peerId: await peerIdFromPublicKey(raw),
    publicKey: toBase64Url(raw),
    sign: async (b: Uint8Array) =>
      new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, b as BufferSource)),
  };
}

Deno.test("verifyPeerRecord() accepts a record signed by the peer it describes", async () => {
  const me = await identity();
  const r = await signPeerRecord(me.sign, {
    peerId: me.peerId,
    publicKey: me.publicKey,
    host: "127.0.0.5",
    ports: { chunk: 5801, http: 5805 },
    seq: 1000,
    name: "alice",
  });
  const check = await verifyPeerRecord({ ...r, lastSeen: 5 }, 2000);
  assert.ok(check.ok);
  assert.equal(check.record.host, "127.0.0.5");
});

Deno.test("verifyPeerRecord() drops a changed field, another peer's id, an unsigned record and one from the future", async () => {
  const me = await identity();
  const other = await identity();
  const r = await signPeerRecord(me.sign, {
    peerId: me.peerId,
    publicKey: me.publicKey,
    host: "127.0.0.5",
    ports: { chunk: 5801 },
    seq: 1000,
  });
  const bad = [
    { ...r, host: "127.0.0.66" },
    { ...r, ports: { chunk: 5802 } },
    { ...r, ports: { chunk: 5801, http: 80 } },
    { ...r, seq: 1001 },
    { ...r, name: "mallory" },
    // A stranger's key with the victim's id, signed by the stranger.
    await signPeerRecord(other.sign, {
      peerId: me.peerId,
      publicKey: other.publicKey,
      host: "127.0.0.66",
      ports: { chunk: 1 },
      seq: 2000,
    }),
    { peerId: me.peerId, host: "127.0.0.66", ports: { chunk: 1 } },
    { ...r, signature: r.signature.slice(0, -2) + (r.signature.endsWith("AA") ? "BA" : "AA") },
  ];
  for (const b of bad) {
    const check = await verifyPeerRecord(b, 2000);
    assert.equal(check.ok, false, JSON.stringify(b));
    assert.ok(!check.ok && check.reason.includes(me.peerId));
  }
  const future = await signPeerRecord(me.sign, {
    peerId: me.peerId,
    publicKey: me.publicKey,
    host: "127.0.0.5",
    ports: { chunk: 5801 },
    seq: 2000 + MAX_FUTURE_MS + 1,
  });
  assert.match((await verifyPeerRecord(future, 2000) as { reason: string }).reason, /future/);
});

Deno.test("peerRecordBytes() is unambiguous: moving text between host and name changes the bytes", () => {
  const base = { peerId: "a".repeat(40), publicKey: "k", ports: { chunk: 1 }, seq: 1 };
  const x = peerRecordBytes({ ...base, host: "10.0.0.1", name: "ab" });
  const y = peerRecordBytes({ ...base, host: "10.0.0.1a", name: "b" });
  assert.notDeepEqual(x, y);
});
