/**
 * Signed peer records: what peer exchange (PEERS) passes on about a peer, signed by
 * the peer it describes with its Ed25519 identity key, so nobody can make up or
 * alter where another peer lives.
 *
 * ```text
 * record     { peerId, publicKey, host, ports, seq, name?, signature }   (WirePeer in messages.ts)
 * signed     transcript("p2p peer record v1",
 *              [peerId, publicKey, host, "chunk,pingback,http,app", seq, name])
 * ```
 *
 * The transcript is `network_key.ts`'s: each field with a 4-byte length, so no two
 * field lists give the same bytes; ports absent are 0, a missing name is "". `seq` is
 * the signer's clock in ms when it signed (kept increasing): a newer record replaces
 * an older one of the same peer. A record counts only when every signed field is
 * there, its public key hashes to its peerId, the signature verifies and `seq` is not
 * more than `MAX_FUTURE_MS` ahead of the receiver's clock. A record only ever makes
 * an address *learned*: it is used once a handshake there proved the peer's id.
 *
 * Pure computation (WebCrypto), no I/O.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signPeerRecord, verifyPeerRecord } from "./peer_record.ts";
 * import { peerIdFromPublicKey } from "./signature.ts";
 * import { toBase64Url } from "./ids.ts";
 *
 * const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
 * const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
 * const sign = async (b: Uint8Array) =>
 *   new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, b as BufferSource));
 * const record = await signPeerRecord(sign, {
 *   peerId: await peerIdFromPublicKey(raw),
 *   publicKey: toBase64Url(raw),
 *   host: "192.168.1.20",
 *   ports: { chunk: 5801, pingback: 5800 },
 *   seq: 1,
 * });
 * assert.equal((await verifyPeerRecord(record)).ok, true);
 * assert.equal((await verifyPeerRecord({ ...record, host: "10.0.0.9" })).ok, false);
 * ```
 *
 * @module
 */
import { fromBase64Url, toBase64Url } from "./ids.ts";
import type { WirePeer, WirePorts } from "./messages.ts";
import { transcript } from "./network_key.ts";
import { peerIdFromPublicKey, verifySignature } from "./signature.ts";

/** The label of the record transcript. */
export const PEER_RECORD_LABEL = "p2p peer record v1";
/** How far ahead of the receiver's clock a record's `seq` may be: 10 minutes. */
export const MAX_FUTURE_MS = 10 * 60_000;

/** A record with every signed field: what `verifyPeerRecord()` accepts. */
export type PeerRecord = WirePeer & { publicKey: string; seq: number; signature: string };

/** The fields a peer signs about itself. */
export interface PeerRecordFields {
  peerId: string;
  publicKey: string;
  host: string;
  ports: WirePorts;
  seq: number;
  name?: string;
}

/** The bytes a record's signature covers. */
export function peerRecordBytes(r: PeerRecordFields): Uint8Array {
  const p = r.ports;
  const ports = [p.chunk, p.pingback ?? 0, p.http ?? 0, p.app ?? 0].join(",");
  return transcript(PEER_RECORD_LABEL, [
    r.peerId,
    r.publicKey,
    r.host,
    ports,
    String(r.seq),
    r.name ?? "",
  ]);
}

/** Signs a record of this peer with its identity key (`sign`: Ed25519 over bytes). */
export async function signPeerRecord(
  sign: (bytes: Uint8Array) => Promise<Uint8Array>,
  fields: PeerRecordFields,
): Promise<PeerRecord> {
  const signature = toBase64Url(await sign(peerRecordBytes(fields)));
  const { chunk, pingback, http, app } = fields.ports;
  const ports = {
    chunk,
    ...(pingback ? { pingback } : {}),
    ...(http ? { http } : {}),
    ...(app ? { app } : {}),
  };
  return {
    peerId: fields.peerId,
    publicKey: fields.publicKey,
    host: fields.host,
    ports,
    seq: fields.seq,
    ...(fields.name ? { name: fields.name } : {}),
    signature,
  };
}

/** The outcome of `verifyPeerRecord()`: the record, or why it does not count. */
export type RecordCheck = { ok: true; record: PeerRecord } | { ok: false; reason: string };

/**
 * Checks a record as received: every signed field present, the public key hashes to
 * the peerId, the signature verifies over `peerRecordBytes()`, `seq` at most
 * `MAX_FUTURE_MS` ahead of `now`. Never throws.
 */
export async function verifyPeerRecord(r: WirePeer, now = Date.now()): Promise<RecordCheck> {
  const no = (reason: string): RecordCheck => ({ ok: false, reason });
  if (r.publicKey === undefined || r.seq === undefined || r.signature === undefined) {
    return no(`the record of '${r.peerId}' is not signed`);
  }
  let raw: Uint8Array;
  try {
    raw = fromBase64Url(r.publicKey);
  } catch {
    return no(`the public key of '${r.peerId}' is not base64url`);
  }
  if (await peerIdFromPublicKey(raw) !== r.peerId) {
    return no(`peerId '${r.peerId}' does not belong to the record's public key`);
  }
  if (r.seq > now + MAX_FUTURE_MS) {
    return no(`the record of '${r.peerId}' has seq '${r.seq}' from the future`);
  }
  const record = r as PeerRecord;
  const ok = await verifySignature(
    record.publicKey,
    peerRecordBytes(record),
    fromBase64Url(record.signature),
  );
  return ok
    ? { ok: true, record }
    : no(`the signature of the record of '${r.peerId}' does not verify`);
}
