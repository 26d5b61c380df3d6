/**
 * The MANIFEST message's body codec: a manifest travels as its size and chunk size in
 * the header and the 32-byte SHA-256 of each chunk, back to back, in the body. Pure
 * functions both ways; the message schema (`messages.ts`) checks the body's length.
 *
 * ```ts
 * import { manifestFrom, manifestMessage } from "./manifest_body.ts";
 *
 * const manifest = { size: 5, chunkSize: 4, chunks: ["ab".repeat(32), "cd".repeat(32)] };
 * const msg = manifestMessage(7, "ef".repeat(32), manifest, "notes.txt");
 * console.assert(msg.body.length === 64 && msg.header.name === "notes.txt");
 * const back = manifestFrom(msg);
 * console.assert(back.manifest.chunks[1] === "cd".repeat(32) && back.name === "notes.txt");
 * ```
 *
 * @module
 */
import { fromHex, toHex } from "./ids.ts";
import type { Manifest } from "./manifest.ts";
import type { ManifestHeader } from "./messages.ts";

/** Bytes of one chunk hash in a MANIFEST body. */
export const HASH_BYTES = 32;

/** A MANIFEST message, as `manifestMessage()` builds and `manifestFrom()` reads it. */
export interface ManifestMessage {
  type: "MANIFEST";
  requestId: number;
  header: ManifestHeader;
  body: Uint8Array;
}

/** The MANIFEST answer (to request `requestId`) that carries a payload's manifest and name. */
export function manifestMessage(
  requestId: number,
  payloadId: string,
  m: Manifest,
  name?: string,
): ManifestMessage {
  const body = new Uint8Array(m.chunks.length * HASH_BYTES);
  m.chunks.forEach((h, i) => body.set(fromHex(h), i * HASH_BYTES));
  return {
    type: "MANIFEST",
    requestId,
    header: { payloadId, size: m.size, chunkSize: m.chunkSize, ...(name ? { name } : {}) },
    body,
  };
}

/**
 * The manifest and name a MANIFEST message carries. The manifest is not verified
 * here: check it against the payload id (`verifyManifest`) before use.
 */
export function manifestFrom(
  msg: { header: ManifestHeader; body: Uint8Array },
): { manifest: Manifest; name?: string } {
  const chunks: string[] = [];
  for (let i = 0; i + HASH_BYTES <= msg.body.length; i += HASH_BYTES) {
    chunks.push(toHex(msg.body.subarray(i, i + HASH_BYTES)));
  }
  const manifest = { size: msg.header.size, chunkSize: msg.header.chunkSize, chunks };
  return msg.header.name ? { manifest, name: msg.header.name } : { manifest };
}
