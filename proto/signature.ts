/**
 * Ed25519 identities as others see them: the peerId a public key stands for and the
 * check of a signature. A peerId is the first 40 hex digits of SHA-256 over the raw
 * 32-byte public key, so anyone holding the key can check the id. Signing stays with
 * the holder of the private key (`peer/identity.ts`); the tracker and the peer both
 * verify with these functions.
 *
 * Pure computation (WebCrypto), no I/O.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peerIdFromPublicKey, verifySignature } from "./signature.ts";
 * import { toBase64Url } from "./ids.ts";
 *
 * const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
 * const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
 * const data = new TextEncoder().encode("hello");
 * const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, data));
 * assert.ok(await verifySignature(toBase64Url(raw), data, sig));
 * assert.equal((await peerIdFromPublicKey(raw)).length, 40);
 * ```
 *
 * @module
 */
import { fromBase64Url, toHex } from "./ids.ts";

/** The peerId belonging to a raw Ed25519 public key: 40 hex digits of its SHA-256. */
export async function peerIdFromPublicKey(raw: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", raw as BufferSource);
  return toHex(new Uint8Array(digest)).slice(0, 40);
}

/** Imported public keys, most recently used last; a tracker sees the same keys all day. */
const keys = new Map<string, Promise<CryptoKey>>();
const MAX_KEYS = 4096;

function importPublicKey(publicKey: string): Promise<CryptoKey> {
  let key = keys.get(publicKey);
  if (key) {
    keys.delete(publicKey);
  } else {
    key = crypto.subtle.importKey(
      "raw",
      fromBase64Url(publicKey) as BufferSource,
      { name: "Ed25519" },
      false,
      ["verify"],
    );
    key.catch(() => keys.delete(publicKey));
    if (keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value!);
  }
  keys.set(publicKey, key);
  return key;
}

/**
 * Whether `signature` over `data` was made by the holder of `publicKey` (raw Ed25519
 * key in base64url). A key or signature that cannot be read is `false`, never a throw.
 * Imported keys are kept (the last 4,096), as importing costs more than verifying.
 */
export async function verifySignature(
  publicKey: string,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  try {
    return await crypto.subtle.verify(
      "Ed25519",
      await importPublicKey(publicKey),
      signature as BufferSource,
      data as BufferSource,
    );
  } catch {
    return false;
  }
}
