/**
 * The network key: 256 random bits that every member of a protected network holds
 * (`p2p keygen`). Its text form is `p2pkey1-` followed by the 32 bytes in base64url
 * (43 characters), easy to copy into a file or an environment variable.
 *
 * The key never travels. Members prove they hold it with an HMAC-SHA256 over what
 * the proof is for (`keyProof()`): a label naming the context, then the fields that
 * bind it (nonces from both sides, identities, a request's hash). A network without
 * a key is open: its proofs use {@linkcode OPEN_NETWORK_KEY}, a public constant, so
 * the code path is the same and a keyed peer never mistakes an open one for a member.
 *
 * Pure computation (WebCrypto), no I/O.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatNetworkKey, keyProof, newNetworkKey, parseNetworkKey, verifyKeyProof } from "./network_key.ts";
 *
 * const key = newNetworkKey();
 * assert.deepEqual(parseNetworkKey(formatNetworkKey(key)), key);
 * const proof = await keyProof(key, "example v1", ["nonce", new Uint8Array([1, 2])]);
 * assert.ok(await verifyKeyProof(key, "example v1", ["nonce", new Uint8Array([1, 2])], proof));
 * ```
 *
 * @module
 */
import { InvalidInputError } from "./errors.ts";
import { concatBytes } from "./bytes.ts";
import { fromBase64Url, toBase64Url, toHex } from "./ids.ts";

/** Bytes of a network key. */
export const NETWORK_KEY_BYTES = 32;
/** What a network key's text form starts with. */
export const NETWORK_KEY_PREFIX = "p2pkey1-";
/** The key whose proofs an open network (no key given) uses: public, all zeros. */
export const OPEN_NETWORK_KEY: Uint8Array = new Uint8Array(NETWORK_KEY_BYTES);

/** A new network key: 32 bytes from the system's secure random source. */
export function newNetworkKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NETWORK_KEY_BYTES));
}

/** The text form of a network key: `p2pkey1-` and 43 base64url characters. */
export function formatNetworkKey(key: Uint8Array): string {
  if (key.byteLength !== NETWORK_KEY_BYTES) {
    throw new RangeError(`A network key has ${NETWORK_KEY_BYTES} bytes, not ${key.byteLength}`);
  }
  return NETWORK_KEY_PREFIX + toBase64Url(key);
}

/**
 * Reads a network key's text form (surrounding white space ignored). Throws
 * `InvalidInputError` naming what is wrong; the message never repeats the text, which
 * may be a mistyped secret.
 */
export function parseNetworkKey(text: string): Uint8Array {
  const t = text.trim();
  if (!t.startsWith(NETWORK_KEY_PREFIX)) {
    throw new InvalidInputError(
      "bad_network_key",
      `A network key starts with '${NETWORK_KEY_PREFIX}' (make one with: p2p keygen)`,
    );
  }
  const body = t.slice(NETWORK_KEY_PREFIX.length);
  if (!/^[A-Za-z0-9_-]{43}$/.test(body)) {
    throw new InvalidInputError(
      "bad_network_key",
      `A network key has 43 base64url characters after '${NETWORK_KEY_PREFIX}', this one has ${body.length} or a character out of that set`,
    );
  }
  const key = fromBase64Url(body);
  if (key.byteLength !== NETWORK_KEY_BYTES) {
    throw new InvalidInputError(
      "bad_network_key",
      `A network key holds ${NETWORK_KEY_BYTES} bytes`,
    );
  }
  return key;
}

/** Whether `key` is the open network's (no key given). */
export function isOpenNetwork(key: Uint8Array): boolean {
  return key.byteLength === NETWORK_KEY_BYTES && key.every((b) => b === 0);
}

const encoder = new TextEncoder();

/**
 * A public name for the network a key protects: 12 hex digits of SHA-256 over a
 * label and the key. Safe to print (start-up line, status): it tells two networks
 * apart without revealing the key. `open` for the open network.
 */
export async function networkName(key: Uint8Array): Promise<string> {
  if (isOpenNetwork(key)) return "open";
  const data = concatBytes(encoder.encode("p2p network name v1\0"), key);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return toHex(digest).slice(0, 12);
}

/** One field of a proof: text (UTF-8) or bytes. */
export type ProofField = string | Uint8Array;

/**
 * The unambiguous byte string a proof or signature covers: `label`, then each field
 * as a 4-byte big-endian length and its bytes, so that no two field lists give the
 * same bytes.
 */
export function transcript(label: string, fields: ProofField[]): Uint8Array {
  // One buffer of the most the fields can take (UTF-8: at most 3 bytes per UTF-16
  // unit), filled in place: a heartbeat's check spent 4% of the tracker's time in
  // encoding each field apart and joining the parts.
  let most = 4 + 3 * label.length;
  for (const f of fields) most += 4 + (typeof f === "string" ? 3 * f.length : f.byteLength);
  const out = new Uint8Array(most);
  const view = new DataView(out.buffer);
  let at = 0;
  const put = (f: ProofField) => {
    let n: number;
    if (typeof f === "string") n = encoder.encodeInto(f, out.subarray(at + 4)).written;
    else {
      out.set(f, at + 4);
      n = f.byteLength;
    }
    view.setUint32(at, n);
    at += 4 + n;
  };
  put(label);
  for (const f of fields) put(f);
  return out.subarray(0, at);
}

const keyCache = new WeakMap<Uint8Array, Promise<CryptoKey>>();

function hmacKey(key: Uint8Array): Promise<CryptoKey> {
  let k = keyCache.get(key);
  if (!k) {
    k = crypto.subtle.importKey(
      "raw",
      key as BufferSource,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keyCache.set(key, k);
  }
  return k;
}

/** HMAC-SHA256 with the network key over `transcript(label, fields)`: 32 bytes. */
export async function keyProof(
  key: Uint8Array,
  label: string,
  fields: ProofField[],
): Promise<Uint8Array> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(key),
    transcript(label, fields) as BufferSource,
  );
  return new Uint8Array(mac);
}

/** Whether `proof` is `keyProof(key, label, fields)` (compared in constant time by WebCrypto). */
export async function verifyKeyProof(
  key: Uint8Array,
  label: string,
  fields: ProofField[],
  proof: Uint8Array,
): Promise<boolean> {
  if (proof.byteLength !== 32) return false;
  return await crypto.subtle.verify(
    "HMAC",
    await hmacKey(key),
    proof as BufferSource,
    transcript(label, fields) as BufferSource,
  );
}
